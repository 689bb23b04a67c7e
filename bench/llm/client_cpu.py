"""What one whole (not streamed) LLM call costs the client: `Llm.complete` on each transport
(`LLM_HTTP`: aiohttp, httpx) against a bare aiohttp POST of the same JSON (the baseline) and
the openai SDK's `chat.completions.create` (what the calls went through before), in CPU
milliseconds per call of this process. The fake OpenAI-compatible server runs in a child
process, so its work is not counted; the variants run interleaved, `--reps` times.

    uv run python bench/llm/client_cpu.py [--calls 40] [--reps 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace

from seoblog_runtime.llm import Llm, LlmServiceSettings

SERVER = """
import sys
from seoblog_testing.fake_llm import FakeLLM
text = " ".join(f"word{i % 97}" for i in range(int(sys.argv[1])))
with FakeLLM(responder=lambda body: text) as fake:
    print(fake.base_url, fake.api_key, flush=True)
    sys.stdin.read()
"""
# A translation segment's size: a system prompt and about 2,400 characters.
MESSAGES = [
    {"role": "system", "content": "Translate into Korean."},
    {"role": "user", "content": "The moons of Jupiter are many. " * 80},
]


async def measure(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    await call()  # warm: connection, first-use imports
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
    closers: list[Callable[[], Awaitable[Any]]] = []
    try:
        variants: dict[str, Callable[[], Awaitable[Any]]] = {}
        import aiohttp

        session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"})
        closers.append(session.close)
        body = {"model": "fake-llm", "messages": MESSAGES}

        async def bare() -> None:
            async with session.post(f"{base_url}/chat/completions", json=body) as response:
                json.loads(await response.read())["choices"][0]["message"]["content"]

        variants["baseline"] = bare
        for kind in ("aiohttp", "httpx"):
            settings = LlmServiceSettings(
                _env_file=None,
                llm_base_url=base_url,
                llm_api_key=api_key,
                llm_model="fake-llm",
                llm_http=kind,
            )
            llm = Llm(settings, trace.get_tracer("bench"))
            closers.append(llm.close)

            async def complete(llm: Llm = llm) -> None:
                await llm.complete(MESSAGES, purpose="bench")

            variants[f"llm.{kind}"] = complete
        import openai

        sdk = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        closers.append(sdk.close)

        async def openai_sdk() -> None:
            await sdk.chat.completions.create(model="fake-llm", messages=MESSAGES)  # type: ignore[arg-type]

        variants["openai_sdk"] = openai_sdk
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.reps):  # interleaved, so drift hits every variant alike
            for name, call in variants.items():
                samples[name].append(await measure(call, args.calls))
    finally:
        for close in closers:
            await close()
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    base = statistics.median(samples["baseline"])
    return [
        {
            "name": f"llm_http.{name}.cpu_ms_per_call",
            "value": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "baseline": round(base, 3),
            "ratio": round(statistics.median(values) / base, 3),
            "unit": f"ms CPU per whole call ({args.words}-word answer), median of {args.reps}",
        }
        for name, values in samples.items()
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=300, help="words in the answer")
    parser.add_argument("--calls", type=int, default=40, help="calls per measurement")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    options = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for row in asyncio.run(main(options)):
        if options.json:
            print(json.dumps(row))  # noqa: T201 - the bench's output
        else:
            print(  # noqa: T201
                f"{row['name']:<36} {row['value']:>7.2f} ms  min {row['min']:>7.2f}"
                f"  baseline {row['baseline']:>6.2f}  ratio {row['ratio']:.2f}"
            )
