"""`python -m seoblog_devstack` runs the `seoblog` command."""

from seoblog_devstack.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
