"""What reading a streamed LLM answer costs the client: `Llm.complete(on_progress=...)` against
the bare openai stream iterated doing nothing, in CPU milliseconds per call of this process.

The fake OpenAI-compatible server runs in a child process (one chunk per word), so its work is
not counted. `--before REV` also measures llm.py as it was at git revision REV, in the same run.
`--whole` also measures `Llm.complete` without progress: the same answer in one response.

    uv run python bench/llm_stream/run.py [--words 2000] [--calls 20] [--reps 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
from opentelemetry import trace

import seoblog_runtime
from seoblog_runtime.llm import Llm, LlmServiceSettings

ROOT = Path(__file__).resolve().parents[2]
LLM_PY = "libs/runtime/src/seoblog_runtime/llm.py"
MESSAGES = [{"role": "user", "content": "Write a long post about the moons of Jupiter."}]

SERVER = """
import sys, threading
from seoblog_testing.fake_llm import FakeLLM
words = int(sys.argv[1])
text = " ".join(f"word{i % 97}" for i in range(words))
with FakeLLM(responder=lambda body: text) as fake:
    print(fake.base_url, fake.api_key, flush=True)
    sys.stdin.read()
"""


def llm_module_at(rev: str) -> ModuleType:
    """llm.py as it was at `rev`, loaded beside the current runtime package."""
    command = ["git", "show", f"{rev}:{LLM_PY}"]
    source = subprocess.run(  # noqa: S603 - git with our own arguments
        command,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("seoblog_runtime._llm_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = seoblog_runtime.__name__
    sys.modules[spec.name] = module
    exec(compile(source, f"{rev}:{LLM_PY}", "exec"), module.__dict__)  # noqa: S102
    return module


async def measure(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    """CPU milliseconds of this process per call."""
    await call()  # warm: connection, imports
    began = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - began) * 1000 / calls


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    server = subprocess.Popen(  # noqa: S603, ASYNC220 - our interpreter, started once
        [sys.executable, "-c", SERVER, str(args.words)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    base_url, api_key = server.stdout.readline().split()
    try:
        settings = LlmServiceSettings(
            _env_file=None, llm_base_url=base_url, llm_api_key=api_key, llm_model="fake-llm"
        )
        tracer = trace.get_tracer("bench")
        client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        progress: list[int] = []

        async def on_progress(percent: int) -> None:
            progress.append(percent)

        async def raw() -> None:
            stream = await client.chat.completions.create(
                model="fake-llm",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _ in stream:
                pass

        def streamed(llm: Any) -> Callable[[], Awaitable[Any]]:
            async def run() -> None:
                result = await llm.complete(
                    MESSAGES,
                    purpose="bench",
                    on_progress=on_progress,
                    expected_tokens=args.words,
                )
                assert result.text.count(" ") == args.words - 1

            return run

        whole_llm = Llm(settings, tracer)

        async def whole() -> None:
            result = await whole_llm.complete(MESSAGES, purpose="bench")
            assert result.text.count(" ") == args.words - 1

        variants: dict[str, Callable[[], Awaitable[Any]]] = {
            "baseline": raw,
            "now": streamed(Llm(settings, tracer)),
        }
        if args.whole:
            variants["whole"] = whole
        if args.before:
            before = llm_module_at(args.before)
            variants["before"] = streamed(before.Llm(settings, tracer))
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.reps):  # interleaved, so drift hits every variant alike
            for name, call in variants.items():
                samples[name].append(await measure(call, args.calls))
        await asyncio.sleep(0.1)  # let the last fire-and-forget progress report finish
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)

    base = statistics.median(samples["baseline"])
    rows = [
        {
            "name": f"llm_stream.{name}.cpu_ms_per_call",
            "value": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "baseline": round(base, 3),
            "ratio": round(statistics.median(values) / base, 3),
            "unit": f"ms CPU per streamed call of {args.words} chunks",
        }
        for name, values in samples.items()
    ]
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=2000, help="chunks in the answer")
    parser.add_argument("--calls", type=int, default=20, help="calls per measurement")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--before", help="git revision whose llm.py to measure too")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--whole", action="store_true", help="also the same answer not streamed (no progress)"
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(main(options))
    for row in results:
        if options.json:
            print(json.dumps(row))  # noqa: T201 - the bench's output
        else:
            print(  # noqa: T201
                f"{row['name']:<40} {row['value']:>9.3f} ms  min {row['min']:>9.3f}"
                f"  baseline {row['baseline']:>9.3f}  ratio {row['ratio']:.2f}"
            )
