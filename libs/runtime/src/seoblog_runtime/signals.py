"""Ending long-lived streams when the process is told to stop."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType


def on_stop_signal(callback: Callable[[], object]) -> Callable[[], None]:
    """Run `callback` on the event loop at SIGTERM or SIGINT, then uvicorn's own handler.

    uvicorn runs the lifespan's shutdown only after open connections close, so a server with
    live streams (SSE, WebSocket) must end them first or it waits out its clients. Returns
    what puts the previous handlers back; off the main thread (tests) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        before = previous.get(signal.Signals(sig))
        if callable(before):
            before(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, before in previous.items():
            signal.signal(sig, before)

    return restore
