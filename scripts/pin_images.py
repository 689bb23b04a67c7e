"""Pin every third-party image of compose.yaml, k8s/ and the NATS Helm values by digest.

    uv run --with pyyaml python scripts/pin_images.py            # list the images, and pin
    uv run --with pyyaml python scripts/pin_images.py --check    # fail on an image without one

Each `name:tag` is resolved with `docker buildx imagetools inspect` (or `crane digest`) and
rewritten in place as `name:tag@sha256:...`, so a rebuild can never pull other bytes under
the same tag. Needs a registry that answers: where none does (this project's machines reach
package registries only), it says so and changes nothing. The seoblog images themselves are
pinned at deploy time (kustomize `images:` with a digest) by whoever pushes them.
"""

# ruff: noqa: S603, S607 - runs fixed tools (kubectl, node, npm, uv, docker) with our arguments

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILES = [
    REPO / "compose.yaml",
    *sorted((REPO / "k8s").rglob("*.yaml")),
    REPO / "Dockerfile",
]
# image: name:tag   |   repository: x / tag: y (Helm values)   |   FROM / COPY --from=
IMAGE = re.compile(r"^(\s*(?:-\s*)?image:\s*)([\w./-]+:[\w.-]+)(@sha256:[0-9a-f]{64})?\s*$", re.M)
FROM = re.compile(
    r"^((?:FROM|COPY --from=|ARG PYTHON_IMAGE=)\s*)([\w./-]+:[\w.-]+)(@sha256:[0-9a-f]{64})?", re.M
)


def ours(ref: str) -> bool:
    return ref.startswith(("seoblog/", "registry.example.com/")) or "${" in ref


def resolver() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "buildx", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [
                "docker",
                "buildx",
                "imagetools",
                "inspect",
                "--format",
                "{{json .Manifest.Digest}}",
            ]
    if shutil.which("crane"):
        return ["crane", "digest"]
    return None


def digest(tool: list[str], ref: str) -> str | None:
    run = subprocess.run([*tool, ref], capture_output=True, text=True, timeout=60, check=False)
    value = run.stdout.strip().strip('"')
    return value if run.returncode == 0 and value.startswith("sha256:") else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail on any image without digest")
    args = parser.parse_args(argv)
    found: dict[Path, list[tuple[str, str | None]]] = {}
    for path in FILES:
        text = path.read_text()
        refs = [(m.group(2), m.group(3)) for p in (IMAGE, FROM) for m in p.finditer(text)]
        refs = [(ref, pin) for ref, pin in refs if not ours(ref)]
        if refs:
            found[path] = refs
    unpinned = sorted({ref for refs in found.values() for ref, pin in refs if not pin})
    for ref in unpinned:
        sys.stdout.write(f"  {ref}\n")
    if args.check:
        return 1 if unpinned else 0
    tool = resolver()
    if tool is None:
        sys.stdout.write("no docker buildx or crane here: digests cannot be resolved\n")
        return 2
    pins: dict[str, str] = {}
    for ref in unpinned:
        pin = digest(tool, ref)
        if pin is None:
            sys.stdout.write(f"cannot resolve {ref} (registry unreachable?); nothing changed\n")
            return 2
        pins[ref] = pin
    for path in found:
        text = path.read_text()
        for ref, pin in pins.items():
            text = re.sub(rf"(?<![\w./-]){re.escape(ref)}(?!@)", f"{ref}@{pin}", text)
        path.write_text(text)
    sys.stdout.write(f"pinned {len(pins)} images\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
