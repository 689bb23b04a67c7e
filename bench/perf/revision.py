"""A folder of this repository as it was at a git revision, for A/B benches that run the old
code beside the work tree (`git archive`, so no work tree or checkout is touched)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tree_at(rev: str, path: str, into: Path) -> Path:
    """`path` (relative to the repository) as it was at `rev`, unpacked under `into`."""
    data = subprocess.run(  # noqa: S603 - git on our own repository
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, path],  # noqa: S607
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / path
