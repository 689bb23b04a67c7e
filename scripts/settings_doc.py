"""Print every setting as a Markdown table (for the README) or as .env.example lines."""

import sys

from seoblog_runtime.settings_doc import all_settings


def main() -> None:
    docs = all_settings()
    if sys.argv[1:] == ["--env"]:
        for doc in docs:
            note = f"  # {doc.description}" if doc.description else ""
            sys.stdout.write(f"# {doc.env}={doc.default}{note}\n")
        return
    sys.stdout.write("| variable | default | meaning |\n|---|---|---|\n")
    for doc in docs:
        sys.stdout.write(f"| `{doc.env}` | `{doc.default}` | {doc.description} |\n")


if __name__ == "__main__":
    main()
