"""What a service loads at start-up: nats-py would import aiohttp (for a WebSocket transport
nobody here uses) in every service; only the LLM client needs it, on first use."""

import subprocess
import sys


def run_fresh(probe: str) -> None:
    """Run `probe` in a new interpreter (what a service process imports is the question)."""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_runtime_and_nats_load_no_aiohttp_until_the_llm_client_needs_it():
    probe = (
        "import sys, seoblog_runtime, nats, faststream.nats\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp loaded at import'\n"
        "from seoblog_runtime.llm import Llm, LlmServiceSettings\n"
        "from opentelemetry import trace\n"
        "import asyncio\n"
        "async def main():\n"
        "    llm = Llm(LlmServiceSettings(_env_file=None, llm_base_url='http://127.0.0.1:9/v1',"
        " llm_api_key='k', llm_model='m'), trace.get_tracer('t'))\n"
        "    await llm.close()\n"
        "asyncio.run(main())\n"
        "assert 'aiohttp' in sys.modules, 'the LLM client runs on aiohttp'\n"
    )
    run_fresh(probe)


def test_a_service_process_freezes_its_start_up_heap_and_collects_less_often():
    probe = (
        "import gc\n"
        "from seoblog_runtime import tune_gc\n"
        "from seoblog_runtime.service import GC_THRESHOLDS\n"
        "assert gc.get_freeze_count() == 0\n"
        "tune_gc()\n"
        "assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()\n"
        "assert gc.get_threshold() == GC_THRESHOLDS\n"
        "assert GC_THRESHOLDS[0] > 700\n"
    )
    run_fresh(probe)


def test_an_llm_client_on_httpx_never_loads_aiohttp_and_still_answers(fake_llm):
    probe = (
        "import sys, asyncio\n"
        "from opentelemetry import trace\n"
        "from seoblog_runtime.llm import Llm, LlmServiceSettings\n"
        "async def main():\n"
        f"    s = LlmServiceSettings(_env_file=None, llm_base_url={fake_llm.base_url!r},"
        f" llm_api_key={fake_llm.api_key!r}, llm_model='fake-llm', llm_http='httpx')\n"
        "    llm = Llm(s, trace.get_tracer('t'))\n"
        "    out = await llm.complete([{'role': 'user', 'content': 'hi'}], purpose='test')\n"
        "    assert out.text\n"
        "    await llm.close()\n"
        "asyncio.run(main())\n"
        "assert 'aiohttp' not in sys.modules\n"
    )
    run_fresh(probe)


def test_chat_calls_load_no_openai_sdk_on_either_transport(fake_llm):
    """The SDK (0.5-1.2 s and 26 MB of start-up) is for the Batch API only: chat calls, whole and
    streamed, are plain HTTP."""
    probe = (
        "import sys, asyncio\n"
        "from opentelemetry import trace\n"
        "from seoblog_runtime.llm import Llm, LlmServiceSettings\n"
        "async def progress(percent): pass\n"
        "async def main():\n"
        "    for kind in ('httpx', 'aiohttp'):\n"
        f"        s = LlmServiceSettings(_env_file=None, llm_base_url={fake_llm.base_url!r},"
        f" llm_api_key={fake_llm.api_key!r}, llm_model='fake-llm', llm_http=kind,"
        " llm_stream_after_s=0, llm_batch=False)\n"
        "        llm = Llm(s, trace.get_tracer('t'))\n"
        "        msgs = [{'role': 'user', 'content': 'hi'}]\n"
        "        assert (await llm.complete(msgs, purpose='test')).text\n"
        "        assert (await llm.complete(msgs, purpose='t', on_progress=progress)).text\n"
        "        await llm.close()\n"
        "asyncio.run(main())\n"
        "assert 'openai' not in sys.modules, 'openai loaded'\n"
        "assert 'aiohttp' in sys.modules\n"
    )
    run_fresh(probe)


def test_the_first_batch_loads_the_sdk_without_stopping_the_event_loop(fake_llm):
    """Imported on the loop, the SDK stopped every other job's work for over a second."""
    probe = (
        "import sys, asyncio, time\n"
        "from opentelemetry import trace\n"
        "from seoblog_runtime.llm import Llm, LlmServiceSettings\n"
        "async def main():\n"
        f"    s = LlmServiceSettings(_env_file=None, llm_base_url={fake_llm.base_url!r},"
        f" llm_api_key={fake_llm.api_key!r}, llm_model='fake-llm', llm_batch=True,"
        " llm_batch_max_age_s=0.1, llm_batch_poll_s=0.05)\n"
        "    llm = Llm(s, trace.get_tracer('t'))\n"
        "    assert 'openai' not in sys.modules\n"
        "    gaps, running = [], True\n"
        "    async def tick():\n"
        "        last = time.perf_counter()\n"
        "        while running:\n"
        "            await asyncio.sleep(0.005)\n"
        "            now = time.perf_counter(); gaps.append(now - last); last = now\n"
        "    ticker = asyncio.create_task(tick())\n"
        "    await asyncio.sleep(0.05)  # ticking\n"
        "    msgs = [{'role': 'user', 'content': 'hi'}]\n"
        "    out = await llm.complete(msgs, purpose='test', low_priority=True)\n"
        "    running = False; await ticker\n"
        "    assert out.batched and 'openai' in sys.modules\n"
        "    assert max(gaps) < 0.25, max(gaps)  # the import alone takes 0.5-1.2 s\n"
        "    await llm.close()\n"
        "asyncio.run(main())\n"
    )
    run_fresh(probe)
