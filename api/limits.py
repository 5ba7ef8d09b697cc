"""Refuse oversize request bodies by their Content-Length before reading them."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

# Multipart framing (boundaries, part headers, the name field) on top of the file itself.
MULTIPART_SLACK = 64 * 1024


class BodyLimit:
    """413 in the error shape when Content-Length is above the limit (uploads get their own)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"content-length")
        if raw is not None:
            ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
            upload = ctype.startswith("multipart/form-data")
            limit = self.max_upload + MULTIPART_SLACK if upload else self.max_body
            try:
                length = int(raw)
            except ValueError:
                length = -1
            if length < 0:
                resp = error_response(400, "bad_request", "Content-Length is not a number")
                await resp(scope, receive, send)
                return
            if length > limit:
                what = "upload" if upload else "request body"
                resp = error_response(
                    413,
                    "payload_too_large",
                    f"the {what} is {length} bytes, above the {limit} byte limit",
                    {"limit": limit, "length": length},
                )
                await resp(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, headers)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, headers: dict) -> None:
        """No Content-Length (chunked): count the bytes as they stream; 413 past the limit."""
        ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
        upload = ctype.startswith("multipart/form-data")
        limit = self.max_upload + MULTIPART_SLACK if upload else self.max_body
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    what = "upload" if upload else "request body"
                    raise _TooLarge(413, f"the {what} is above the {limit} byte limit")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge as e:
            if started:
                raise
            resp = error_response(413, "payload_too_large", str(e.detail), {"limit": limit})
            await resp(scope, receive, send)


class _TooLarge(HTTPException):
    """An HTTPException so that FastAPI's body parsing re-raises it (as a 413) unchanged."""
