"""Errors of the HTTP client: every non-2xx answer as ApiError, whose str() is one line
(`422 validation_error: schedule.warmup.epochs: ...`); ConnectionError when the API
cannot be reached."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """A non-2xx answer, built from `{"error": {"code", "message", "details"}}`."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, *, hint: str = ""
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        super().__init__(self._line())

    @classmethod
    def from_response(cls, resp: httpx.Response) -> ApiError:
        try:
            body = resp.json()
        except ValueError:
            body = None
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            return cls(
                resp.status_code,
                str(err.get("code") or "error"),
                str(err.get("message") or ""),
                err.get("details"),
            )
        # Not our error shape (a proxy, or FastAPI's own {"detail": ...}): keep what we can.
        if isinstance(body, dict) and "detail" in body:
            detail = body["detail"]
            if isinstance(detail, list):
                return cls(resp.status_code, "validation_error", "invalid request", detail)
            return cls(resp.status_code, "error", str(detail))
        text = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
        return cls(resp.status_code, "http_error", text or resp.reason_phrase)

    def _line(self) -> str:
        head = f"{self.status} {self.code}" if self.status else self.code
        parts = _detail_lines(self.details)
        if parts:
            body = "; ".join(parts)
        else:
            body = self.message
        line = f"{head}: {body}" if body else head
        if self.hint:
            line += f" ({self.hint})"
        return " ".join(line.split())  # one line, whatever the server sent


def _detail_lines(details: Any) -> list[str]:
    """`loc.path: msg` for each entry of a validation-error details list."""
    if not isinstance(details, list):
        return []
    out = []
    for d in details:
        if not isinstance(d, dict) or "msg" not in d:
            continue
        loc = d.get("loc") or []
        if isinstance(loc, list | tuple):
            # FastAPI prefixes request-body errors with "body"; users think in spec paths.
            loc = [p for i, p in enumerate(loc) if not (i == 0 and p == "body")]
            path = ".".join(str(p) for p in loc)
        else:
            path = str(loc)
        out.append(f"{path}: {d['msg']}" if path else str(d["msg"]))
    return out


class ConnectionError(ApiError):  # noqa: A001 - the name users expect; subclass of ApiError
    """The API did not answer at all (refused, DNS, timeout)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            0,
            "connection_error",
            f"cannot reach {url}: {reason}",
            hint="is the API running? start it with `make up`, or set TRICKLAB_URL",
        )
        self.url = url
