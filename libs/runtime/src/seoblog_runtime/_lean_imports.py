"""nats-py imports aiohttp, when it is installed, for a WebSocket transport (ws:// servers)
this project does not use. aiohttp is here for the LLM client (openai's aiohttp transport), so
every service would load it at start-up for nothing: about 0.15 s of CPU and 8-11 MB each.
nats' transport module is imported first with aiohttp hidden; aiohttp itself stays importable
for whoever needs it later (the openai client, in the translator and the generator)."""

from __future__ import annotations

import sys


def import_nats_without_aiohttp() -> None:
    if "nats.aio.transport" in sys.modules or "aiohttp" in sys.modules:
        return  # too late, or aiohttp is loaded anyway: nothing to save
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # makes `import aiohttp` fail
    try:
        import nats.aio.transport  # noqa: F401
    finally:
        del sys.modules["aiohttp"]


import_nats_without_aiohttp()
