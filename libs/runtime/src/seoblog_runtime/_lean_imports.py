"""nats-py imports aiohttp, when it is installed, for a WebSocket transport (ws:// servers)
this project does not use. aiohttp is here for the LLM client (openai's aiohttp transport), so
every service would load it at start-up for nothing: about 0.15 s of CPU and 8-11 MB each.
nats' transport module is imported first with aiohttp hidden; aiohttp itself stays importable
for whoever needs it later (the openai client, in the translator and the generator)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def aiohttp_hidden(*already: str) -> Iterator[None]:
    """While the block runs, `import aiohttp` fails (optional users such as nats-py and openai
    then go without it); nothing changes if aiohttp or any of the `already` modules is loaded."""
    if "aiohttp" in sys.modules or any(name in sys.modules for name in already):
        yield
        return
    sys.modules["aiohttp"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        del sys.modules["aiohttp"]


def import_nats_without_aiohttp() -> None:
    with aiohttp_hidden("nats.aio.transport"):
        import nats.aio.transport  # noqa: F401


import_nats_without_aiohttp()
