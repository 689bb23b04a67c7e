"""Optional py-spy profiles of the services while the pipeline runs (`bench/run.py --profile
DIR`): one raw (collapsed-stack) file per service and a summary of where its samples went."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy: uv pip install py-spy")
    return found


class Profiles:
    """py-spy record on each pid (children included) until stop(); non-blocking sampling."""

    def __init__(self, out: Path, pids: dict[str, int]) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        binary = py_spy()
        for name, pid in pids.items():
            self.running[name] = subprocess.Popen(  # noqa: S603 - py-spy on our own processes
                [
                    binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--subprocesses",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--rate",
                    "50",
                    "-o",
                    str(out / f"{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        for proc in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for proc in self.running.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for name in self.running:
            raw = self.out / f"{name}.txt"
            if raw.exists():
                (self.out / f"{name}.top.txt").write_text(summary(raw))


# Innermost frames that mean "waiting": uvloop polls in C, so its wait shows as Runner.run.
IDLE = ("Runner.run (", "select (selectors.py", "_PollLikeSelector.select", "EpollSelector.select")


def summary(raw: Path, top: int = 15) -> str:
    """Share of the busy samples (the event loop's own waiting left out) per innermost frame
    (self) and per frame anywhere on the stack."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = idle_samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any(frames[-1].startswith(idle) or idle in frames[-1] for idle in IDLE):
            idle_samples += n
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            anywhere[frame] += n
    if not total:
        return "no samples\n"
    lines = [f"{total} busy samples ({idle_samples} waiting left out)", "", "self:"]
    lines += [f"{100 * n / total:5.1f} %  {f}" for f, n in own.most_common(top)]
    lines += ["", "on the stack:"]
    lines += [f"{100 * n / total:5.1f} %  {f}" for f, n in anywhere.most_common(top * 2)]
    return "\n".join(lines) + "\n"
