"""tricklab.server.logs pieces against a real Redis: formatter, context, the buffered job handler."""

from __future__ import annotations

import io
import json
import logging
import threading

import redis
from support.promtext import parse, value

from api.observability import Exposition, LatencyHistograms, render_latencies
from tricklab.server.joblog import job_log, read_job_log
from tricklab.server.logs import JsonFormatter, log_context, setup_logging


def record(msg: str, level: int = logging.INFO, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("tricklab.test", level, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_json_line_has_the_keys_and_the_context():
    fmt = JsonFormatter("worker")
    plain = json.loads(fmt.format(record("hello there")))
    assert plain == {
        "ts": plain["ts"],
        "level": "INFO",
        "logger": "tricklab.test",
        "msg": "hello there",
        "component": "worker",
    }
    assert plain["ts"].endswith("Z") and "T" in plain["ts"]
    with log_context(job_id="j1", attempt=2, worker="w@h"):
        tagged = json.loads(fmt.format(record("x", route="/jobs/{job_id}")))
    assert (tagged["job_id"], tagged["attempt"], tagged["worker"]) == ("j1", 2, "w@h")
    assert tagged["route"] == "/jobs/{job_id}"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert "ValueError: boom" in json.loads(fmt.format(rec))["exc"]


def test_setup_logging_honours_format_and_level(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        monkeypatch.setenv("TRICKLAB_LOG_FORMAT", "text")
        monkeypatch.setenv("TRICKLAB_LOG_LEVEL", "warning")
        buf = io.StringIO()
        setup_logging("api", stream=buf)
        logging.getLogger("tricklab.x").info("hidden")
        logging.getLogger("tricklab.x").warning("shown")
        out = buf.getvalue()
        assert "hidden" not in out and "WARNING" in out and "shown" in out
        assert not out.startswith("{")
        monkeypatch.setenv("TRICKLAB_LOG_FORMAT", "json")
        buf2 = io.StringIO()
        setup_logging("api", stream=buf2)  # replaces its own handler, no duplicates
        logging.getLogger("tricklab.x").error("once")
        assert buf.getvalue() == out
        assert json.loads(buf2.getvalue())["msg"] == "once"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_job_handler_batches_writes_and_keeps_other_jobs_out(redis_server):
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    lg = logging.getLogger("tricklab.jobtest")
    lg.setLevel(logging.INFO)
    key = "obs:job:jA:log"
    r.delete(key)
    with job_log(r, "obs", "jA", worker="w", flush_lines=50, flush_s=3600) as h:
        for i in range(10):
            lg.info("line %d", i)
        lg.debug("below INFO: not kept")
        # A thread without the job's context logs too: not this job's line.
        t = threading.Thread(target=lambda: lg.info("someone else"))
        t.start()
        t.join()
        assert r.exists(key) == 0, "written before a batch filled: a round trip per line"
        for i in range(10, 50):
            lg.info("line %d", i)
        assert r.xlen(key) == 50  # the 50th line filled the batch
        lg.warning("last")
    assert h.dropped == 0
    lines, nxt = read_job_log(r, "obs", "jA", limit=1000)
    assert [ln["msg"] for ln in lines] == [f"line {i}" for i in range(50)] + ["last"]
    assert lines[-1]["level"] == "WARNING" and lines[0]["attempt"] is None
    assert nxt == lines[-1]["id"]
    assert h not in logging.getLogger().handlers


def test_latency_histogram_renders_cumulative_buckets():
    hist = LatencyHistograms((0.1, 1.0))
    for s in (0.05, 0.5, 0.5, 3.0):
        hist.observe(("GET", "/jobs/{job_id}", "2xx"), s)
    out = Exposition()
    render_latencies(out, hist)
    _, samples = parse(out.text())
    name = "tricklab_http_request_duration_seconds"
    lb = {"method": "GET", "route": "/jobs/{job_id}", "status": "2xx"}
    assert [value(samples, f"{name}_bucket", le=le, **lb) for le in ("0.1", "1.0", "+Inf")] == [
        1,
        3,
        4,
    ]
    assert value(samples, f"{name}_sum", **lb) == 4.05
