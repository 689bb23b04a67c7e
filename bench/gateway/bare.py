"""The ceiling: a bare ASGI app answering the same routes with a fixed JSON body, no work."""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn

BODY = json.dumps({"id": "0" * 32, "state": "queued", "links": {"self": "/v1/jobs/x"}}).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while True:  # read the request body whole, as the gateway does
        message = await receive()
        if not message.get("more_body"):
            break
    status = 202 if scope["method"] == "POST" else 200
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    # The same uvicorn settings as seoblog_runtime.serve uses for every service.
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
