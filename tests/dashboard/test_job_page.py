"""The job page in a real headless Chromium against the `service` stack: its duration,
the job's own log lines, the worker's system figures, epochs counted for people, a
queued job that has not started, lineage both ways with the parent's curve drawn up to
the fork step, and the attempts of a preempted-and-resumed job.

Each figure the page shows is checked against the API (or the worker's own log), read
by the test. Screenshots go to docs/screenshots/ for a human look."""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime

import pytest
from support import (
    ROOT,
    long_spec,
    plain_spec,
    small_spec,
    wait_done,
    wait_epoch,
    wait_for,
    wait_job,
    wait_status,
)

pytestmark = pytest.mark.service

SHOTS = ROOT / "docs" / "screenshots"


def el(drv, sel: str):
    return drv.find_element("css selector", sel)


# One atomic read of the elements a selector matches: a page that re-renders (a running
# job's timeline ticks every second) cannot leave a stale element between two reads.
SNAP = """
return [...document.querySelectorAll(arguments[0])].map((e) => ({
  text: e.innerText, title: e.getAttribute("title"), cls: e.className,
  ended: e.dataset.ended || null, id: e.dataset.id || null}));
"""


def snap(drv, sel: str) -> list[dict]:
    return drv.execute_script(SNAP, sel)


def one(drv, sel: str) -> dict | None:
    got = snap(drv, sel)
    return got[0] if got else None


def points(drv, sel: str) -> int:
    return int(el(drv, sel).get_attribute("data-points") or 0)


def full_page_shot(drv, name: str) -> None:
    """The whole page, not only the window: the window grows to the page's height."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = drv.get_window_size()
    height = drv.execute_script("return document.documentElement.scrollHeight")
    drv.set_window_size(size["width"], min(int(height) + 140, 6000))
    try:
        time.sleep(0.5)  # screenshots are for a human look: let the charts resize and paint
        drv.save_screenshot(str(SHOTS / name))
    finally:
        drv.set_window_size(size["width"], size["height"])


def open_job(drv, base: str, job_id: str) -> None:
    drv.get(f"{base}/#/jobs/{job_id}")
    wait_for(lambda: el(drv, "#job-name").text, what="the job page")


@pytest.fixture(scope="module")
def finished(service) -> dict:
    """A small 3-epoch job that has finished (succeeded), as the API has it; it keeps a
    checkpoint at every epoch end, so it can be forked from any."""
    spec = small_spec(epochs=3, device="cpu", checkpoint_every=1)
    with service.client() as c:
        r = c.post("/jobs", json={**spec, "name": "job page e2e"})
        assert r.status_code == 201, r.text
        done = wait_done(c, r.json()["id"])
        assert done["status"] == "succeeded", done["error"]
        return done


def test_finished_job_shows_duration_log_system_and_epochs(browser, service, finished):
    drv, job_id = browser, finished["id"]
    with service.client() as c:
        api_lines = c.get(f"/jobs/{job_id}/logs", params={"limit": 5000}).json()["lines"]
        sys_pts = c.get(
            f"/jobs/{job_id}/curves", params={"metrics": "sys_samples_per_s,sys_rss_mib"}
        ).json()
    # a line the worker always writes when a run ends (worker/runner.py)
    want = f"job {job_id}: ending as succeeded after 66 steps"
    assert any(ln["msg"] == want for ln in api_lines), [ln["msg"] for ln in api_lines]

    open_job(drv, service.api_url, job_id)
    total = wait_for(lambda: el(drv, "#dur-total").text, what="the duration")
    # "ran 1.4s" (tenths below 10 s): started_at → finished_at, as the record has them
    t0, t1 = (datetime.fromisoformat(finished[k]) for k in ("started_at", "finished_at"))
    m = re.fullmatch(r"ran (\d+(\.\d)?)s", total)
    assert m, total
    assert abs(float(m.group(1)) - (t1 - t0).total_seconds()) <= (0.06 if m.group(2) else 0.51)
    assert one(drv, "#dur-queued")["text"].startswith("queued ")

    # the log: every line of the API (fewer than the 1,000 the panel keeps), in order
    wait_for(lambda: want in el(drv, "#job-log").text, what="the end line in the log panel")
    shown = drv.find_elements("css selector", "#job-log .log-line")
    assert [e.get_attribute("data-id") for e in shown] == [ln["id"] for ln in api_lines]
    assert drv.find_elements("css selector", "#job-log .log-line.level-info")
    assert el(drv, "#log-follow").is_selected()

    # the system panel draws every sys_samples_per_s point of the API
    n = len(sys_pts["series"]["sys_samples_per_s"]["step"])
    assert n > 0
    rate, mem = el(drv, "#chart-sys-rate"), el(drv, "#chart-sys-mem")
    wait_for(lambda: rate.get_attribute("data-samples") == str(n), what=f"{n} samples/s points")
    # RSS: every point of the API too (one per write interval at most)
    assert mem.get_attribute("data-samples") == str(len(sys_pts["series"]["sys_rss_mib"]["step"]))
    assert points(drv, "#chart-sys-rate") > n  # uPlot has them (and the y = 0 anchor)
    assert "samples/s" in el(drv, "#sys-summary").text

    # epochs for people (1-based), the API's 0-based value in the tooltip
    assert one(drv, "#stat-epoch")["text"] == "3/3 done"
    best, shown_best = finished["best"]["epoch"], one(drv, "#best-epoch")
    assert f"(epoch {best + 1})" in shown_best["text"]
    assert shown_best["title"] == f"best.epoch = {best} in the API (0-based)"

    # one attempt, from step 0, succeeded
    (li,) = snap(drv, "#job-attempts li")
    assert li["ended"] == "succeeded"
    assert "started at step 0" in li["text"] and "on cpu" in li["text"]
    wait_for(lambda: points(drv, "#chart-loss") > 0, what="the loss curve")
    full_page_shot(drv, "job-page.png")


def test_a_queued_job_has_not_started(browser, service, cleanup):
    """No worker serves the gpu queue here: a cuda job stays queued."""
    with service.client() as c:
        r = c.post("/jobs", json=plain_spec(device="cuda", epochs=200))
        assert r.status_code == 201, r.text
        job_id = cleanup.job(r.json())["id"]
    drv = browser
    open_job(drv, service.api_url, job_id)
    stat = wait_for(lambda: one(drv, "#stat-epoch"), what="the epoch stat")
    assert stat["text"] == "—/200" and stat["title"] == "not started"
    assert one(drv, "#dur-queued")["text"].startswith("queued for ")
    assert not snap(drv, "#job-attempts li")
    wait_for(lambda: el(drv, "#pending-reason").text, what="the pending reason, kept")

    # 1,500 lines reach its log (as a worker's handler writes them): the panel keeps the
    # newest 1,000, in order, coloured by level, and follows the end
    r = service.redis.client()
    levels = ["INFO", "WARNING", "ERROR"]
    with r.pipeline(transaction=False) as pipe:
        for i in range(1500):
            fields = {"ts": "2026-01-01T00:00:00Z", "level": levels[i % 3], "logger": "t"}
            pipe.xadd(f"tl:job:{job_id}:log", {**fields, "msg": f"line {i}", "attempt": "1"})
        pipe.execute()
    wait_for(
        lambda: el(drv, "#job-log .log-line:last-child").text.endswith("line 1499"),
        what="the newest line",
    )
    shown = drv.find_elements("css selector", "#job-log .log-line")
    assert len(shown) == 1000 and shown[0].text.endswith("line 500")
    assert "the 500 before not shown" in one(drv, "#log-count")["text"]
    assert shown[-1].get_attribute("class") == "log-line level-error"
    assert shown[-2].get_attribute("class") == "log-line level-warning"
    box = el(drv, "#job-log")
    at_end = "return arguments[0].scrollHeight - arguments[0].scrollTop - arguments[0].clientHeight"
    assert drv.execute_script(at_end, box) < 8  # following: the newest line in view
    drv.execute_script("arguments[0].scrollTop = 0", box)  # scrolling up to read ...
    wait_for(lambda: not el(drv, "#log-follow").is_selected(), what="follow off")


def test_lineage_links_both_ways_and_draws_the_parent_up_to_the_fork(browser, service, finished):
    parent_id = finished["id"]
    with service.client() as c:
        r = c.post(f"/jobs/{parent_id}/fork", json={"from_epoch": 1, "name": "the fork"})
        assert r.status_code == 201, r.text
        child = wait_done(c, r.json()["id"])
        assert child["status"] == "succeeded", child["error"]
        from_step = child["lineage"]["from_step"]
        ps = c.get(f"/jobs/{parent_id}/curves", params={"metrics": "train_loss,val_loss"}).json()[
            "series"
        ]
    before = [s for n in ("train_loss", "val_loss") for s in ps[n]["step"] if s < from_step]
    assert from_step == 22 and before  # one epoch of 22 steps

    drv = browser
    open_job(drv, service.api_url, child["id"])
    # the link shows the id until the parent's name is read, then re-renders
    wait_for(lambda: el(drv, "a.lineage-parent").text == "job page e2e", what="the parent link")
    link = el(drv, "a.lineage-parent")
    assert link.get_attribute("data-id") == parent_id
    assert "after epoch 1 (step 22)" in el(drv, "#lineage-parent-row").text
    loss = el(drv, "#chart-loss")
    wait_for(
        lambda: loss.get_attribute("data-parent-points") == str(len(before)),
        what="the parent's points before the fork",
    )
    assert loss.get_attribute("data-parent-last-step") == str(max(before)) == str(from_step - 1)
    assert "parent train_loss" in loss.text  # the legend
    full_page_shot(drv, "job-lineage.png")

    link.click()
    wait_for(lambda: el(drv, "a.lineage-child").text == "the fork", what="the fork, on the parent")
    assert el(drv, "a.lineage-child").get_attribute("data-id") == child["id"]
    assert parent_id in drv.current_url


def _holder(service, job_id: str):
    name = service.redis.client().hget(f"tl:job:{job_id}", "worker") or ""
    for w in service.workers:
        if name.startswith(w.args[w.args.index("-n") + 1].split("@")[0] + "@"):
            return w
    raise AssertionError(f"no worker named {name}")


def _epoch_steps(lines: list[dict], attempt: int) -> list[int]:
    """Steps of the reporter's epoch lines ("epoch 2/200 step 179 ...") of one attempt."""
    return [
        int(m.group(1))
        for ln in lines
        if ln["attempt"] == attempt and (m := re.match(r"epoch \d+/\d+ step (\d+) ", ln["msg"]))
    ]


@pytest.mark.slow
def test_a_preempted_and_resumed_job_shows_two_attempts(browser, service, cleanup):
    """SIGTERM to the worker holding a job (as tests/service/test_control does): it
    checkpoints and is re-queued, and a second worker resumes it."""
    spare = service.add_worker("w2")
    try:
        with service.client() as c:
            job_id = cleanup.job(c.post("/jobs", json=long_spec()).json())["id"]
            wait_epoch(c, job_id, 1)  # a whole epoch first: the resume step is past it
            holder = _holder(service, job_id)
            holder.signal(signal.SIGTERM)
            holder.proc.wait(30)
            wait_job(c, job_id, lambda j: j["attempts"] >= 2, 60, "the second attempt")
            hist = wait_for(
                lambda: (
                    (h := c.get(f"/jobs/{job_id}?include=attempts").json()["attempt_history"])
                    and h[-1]["resumed_from_step"] is not None
                    and h
                ),
                30,
                what="the second attempt's start",
            )
            resumed = hist[1]["resumed_from_step"]
            wait_for(
                lambda: _epoch_steps(c.get(f"/jobs/{job_id}/logs").json()["lines"], 2),
                60,
                what="an epoch of the second attempt in the log",
            )
            lines = c.get(f"/jobs/{job_id}/logs", params={"limit": 5000}).json()["lines"]
        # the worker's own log bounds the resume step: past attempt 1's last epoch end,
        # not past attempt 2's first
        assert max(_epoch_steps(lines, 1)) < resumed <= min(_epoch_steps(lines, 2))

        drv = browser
        open_job(drv, service.api_url, job_id)
        items = wait_for(
            lambda: len(li := snap(drv, "#job-attempts li")) == 2 and li,
            what="two attempts on the timeline",
        )
        assert items[0]["ended"] == "preempted"
        assert "preempted" in items[0]["text"] and "started at step 0" in items[0]["text"]
        assert items[1]["ended"] == "running"
        assert f"resumed from step {resumed}" in items[1]["text"]
        assert [seg["cls"] for seg in snap(drv, "#attempt-bar .seg")] == [
            "seg preempted",
            "seg running",
        ]
        assert re.fullmatch(r"epoch \d+/1000", one(drv, "#stat-epoch")["text"])
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        drv.save_screenshot(str(ROOT / "test-artifacts" / "job-attempts.png"))
        with service.client() as c:
            c.post(f"/jobs/{job_id}/cancel")
            wait_status(c, job_id, "cancelled", timeout=30)
    finally:
        # keep a live w1 for the rest of the session whichever worker was stopped
        if service.workers[0].proc.poll() is not None:
            service.workers[0] = service.add_worker("w1")
            service.workers.pop()
        if spare.proc.poll() is None:
            spare.stop()
        if spare in service.workers:
            service.workers.remove(spare)
