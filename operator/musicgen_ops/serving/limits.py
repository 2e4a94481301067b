"""Request body size limit: a pure ASGI middleware answering 413 before the body is parsed."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit"]


class BodySizeLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413 and a short ``ErrorBody``.

    A declared ``Content-Length`` over the limit is refused before any byte is read; a chunked body
    is counted while it streams and refused as soon as it passes the limit. Bodies are at most
    ``max_bytes`` (tens of KiB), so reading them before the app does costs nothing.
    Paths in ``streamed_paths`` (multipart uploads) pass untouched: their route limits each part itself.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, streamed_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed_paths = streamed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.streamed_paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        # Read the (bounded) body first, then replay it: the app never sees an over-long body, and a
        # limit hit mid-stream is answered here rather than as the framework's generic 400.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away: let the app see the disconnect
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_bytes:
                await self._refuse(send, received)
                return
            if not message.get("more_body", False):
                message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return message

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, size: int) -> None:
        body: dict[str, Any] = {
            "error": "PayloadTooLarge",
            "message": f"request body of {size} bytes or more is over the limit of {self.max_bytes} bytes "
            "(MUSICGEN_SERVE_MAX_BODY_BYTES)",
        }
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
