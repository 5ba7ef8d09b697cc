"""Request metrics and log context for the API, and the Prometheus text format.

`RequestObserver` is a plain ASGI middleware. Per request it adds one observation to
an in-process latency histogram keyed by (method, route template, status class) —
no Redis write per request — and, for /jobs/{id}..., tags the request's log records
with that job_id. Latency is measured to the start of the response (status and
headers sent): for an SSE stream or a file download that is time to first byte,
not the length of the stream.

Counts are per API process: with several uvicorn workers, scrape each, or sum.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tricklab.server.logs import log_context

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_PATH = re.compile(r"^/jobs/(j[0-9a-f]{20}(?:[0-9a-f]{8})?)(?:/|$)")  # new ids: 28 digits
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# One line per request, with route and duration (uvicorn's own access log is turned down
# by tricklab.server.logs.setup_logging("api"): this one says more). TRICKLAB_LOG_LEVEL=WARNING
# silences it.
access_log = logging.getLogger("tricklab.api.access")


class LatencyHistograms:
    """Thread-safe histograms by label tuple: cumulative at render time, not per observe."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._lock = threading.Lock()
        # labels -> [per-bucket counts (non-cumulative, +Inf last), sum]
        self._data: dict[tuple[str, ...], list[Any]] = {}

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        i = _bucket_index(self.buckets, seconds)
        with self._lock:
            row = self._data.get(labels)
            if row is None:
                row = self._data[labels] = [[0] * (len(self.buckets) + 1), 0.0]
            row[0][i] += 1
            row[1] += seconds

    def snapshot(self) -> dict[tuple[str, ...], tuple[list[int], float]]:
        with self._lock:
            return {k: (list(v[0]), v[1]) for k, v in self._data.items()}


def _bucket_index(buckets: tuple[float, ...], v: float) -> int:
    for i, le in enumerate(buckets):
        if v <= le:
            return i
    return len(buckets)


class RequestObserver:
    """ASGI middleware: latency histogram per (method, route, status class); job log context."""

    def __init__(self, app: ASGIApp, histograms: LatencyHistograms) -> None:
        self.app = app
        self.hist = histograms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status: list[int] = []

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and not status:
                status.append(int(message["status"]))
                self._observe(scope, status[0], time.perf_counter() - t0)
            await send(message)

        m = JOB_PATH.match(scope.get("path") or "")
        try:
            if m:
                with log_context(job_id=m.group(1)):
                    await self.app(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        except BaseException:
            if not status:  # the error handler outside us answers 500
                self._observe(scope, 500, time.perf_counter() - t0)
            raise

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        # The template, never the raw path: ids in paths would make one series per job.
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        self.hist.observe((method, template, f"{status // 100}xx"), seconds)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s %d %.1f ms",
                method,
                scope.get("path", ""),
                status,
                seconds * 1000,
                extra={
                    "method": method,
                    "path": scope.get("path", ""),
                    "route": template,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )


# ------------------------------------------------------------ text exposition
def escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def fmt_labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape(str(v))}"' for k, v in labels.items()) + "}"


def fmt_value(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    return repr(float(v))


def fmt_le(le: float | str) -> str:
    return le if isinstance(le, str) else fmt_value(float(le))


class Exposition:
    """Builds the text format: one HELP/TYPE header per family, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.lines.append(f"{name}{fmt_labels(labels or {})} {fmt_value(value)}")

    def histogram(
        self,
        name: str,
        labels: dict[str, str],
        cumulative: Iterable[tuple[float | str, int]],
        count: int,
        total: float,
    ) -> None:
        for le, n in cumulative:
            self.sample(f"{name}_bucket", n, {**labels, "le": fmt_le(le)})
        self.sample(f"{name}_sum", total, labels)
        self.sample(f"{name}_count", count, labels)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_latencies(out: Exposition, hist: LatencyHistograms) -> None:
    name = "tricklab_http_request_duration_seconds"
    out.family(name, "histogram", "API request latency to the response start, per process.")
    les: list[float | str] = [*hist.buckets, "+Inf"]
    for (method, route, status), (counts, total) in sorted(hist.snapshot().items()):
        cum, acc = [], 0
        for le, n in zip(les, counts, strict=True):
            acc += n
            cum.append((le, acc))
        out.histogram(name, {"method": method, "route": route, "status": status}, cum, acc, total)


# ------------------------------------------------------------------ wiring
def install(app: Any, settings: Any) -> None:
    """Latency middleware (outermost, so 413s and 500s count too) and what GET /metrics
    reads (api/routes/metrics.py); api/main.py registers the routers."""
    from tricklab.server.telemetry import Collector

    app.state.request_latency = LatencyHistograms()
    app.state.metrics_collector = Collector(app.state.store, settings.worker_ttl_s)
    app.add_middleware(RequestObserver, histograms=app.state.request_latency)
