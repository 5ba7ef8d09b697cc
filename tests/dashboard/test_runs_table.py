"""The jobs list as a runs table, in a real headless Chromium against the real API and
Redis (no worker: jobs are finished through the Store as a worker would).

Loads the page with ?cols=optimizer.lr&sort=-best.val_acc, sees the column and the
rows in that order (the order written out by hand here), re-sorts by clicking a
header (server-side: the URL says sort=spec.optimizer.lr), filters by a text search
and by status, groups by sweep, then opens a job, adds a tag, removes another and
saves notes (PATCH), and finds it with ?tag= in the list. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from support import ROOT, ApiProc, launch_api, minimal_spec, submit, wait_for

from tricklab.server.connection import connect
from tricklab.server.store import Store

DB = 15  # 0 service, 1 api, 5/6 security, 7 dashboard auth, 11 submit path, 12 vocab, 13 disk, 14 cli
ARTIFACTS = ROOT / "test-artifacts"
# name, lr, best val_acc (None: queued, no value)
RUNS = [("alpha", 0.1, 0.91), ("bravo", 0.3, 0.97), ("charlie", 0.05, 0.84), ("delta", 0.2, None)]


@pytest.fixture(scope="module")
def runs_api(browser, redis_server, tmp_path_factory) -> Iterator[ApiProc]:
    """After `browser`, so a missing Chromium skips before any process starts."""
    p = launch_api(redis_server.port, tmp_path_factory, DB, "dashboard-runs-api")
    yield p
    p.proc.stop()


@pytest.fixture(scope="module")
def jobs(runs_api) -> dict[str, str]:
    """name -> id of the RUNS jobs, finished with their best val_acc (delta stays queued)."""
    store = Store(connect(runs_api.redis_url), "tl")
    ids = {}
    with httpx.Client(base_url=runs_api.url, timeout=30) as c:
        for name, lr, acc in RUNS:
            spec = {**minimal_spec(), "name": f"run {name}", "optimizer": {"lr": lr}}
            ids[name] = submit(c, spec)["id"]
            if acc is not None:
                a, _ = store.claim(ids[name], "w", lease_s=60, max_attempts=3)
                store.heartbeat(ids[name], a, lease_s=60, best={"val_acc": acc, "epoch": 2})
                store.finish(ids[name], a, "succeeded")
            time.sleep(0.002)  # distinct creation milliseconds: ids in creation order
    return ids


def order(drv) -> list[str]:
    return [
        tr.get_attribute("data-id")
        for tr in drv.find_elements("css selector", "#jobs-table tbody tr[data-id]")
    ]


def test_columns_and_sort_from_the_url_then_click_filter_and_group(runs_api, jobs, browser):
    from selenium.webdriver.support.ui import Select

    drv = browser
    ARTIFACTS.mkdir(exist_ok=True)
    drv.get(f"{runs_api.url}/#/?cols=optimizer.lr&sort=-best.val_acc")
    by_acc = [jobs["bravo"], jobs["alpha"], jobs["charlie"], jobs["delta"]]  # missing last
    wait_for(lambda: order(drv) == by_acc, what="rows by best val acc, descending")
    th = drv.find_element("css selector", '#jobs-table th[data-col="optimizer.lr"]')
    assert th.text.startswith("optimizer.lr")
    best_th = drv.find_element("css selector", '#jobs-table th[data-sort="best.val_acc"]')
    assert "▼" in best_th.text
    cells = [
        td.text
        for td in drv.find_elements("css selector", '#jobs-table tbody td[data-col="optimizer.lr"]')
    ]
    assert cells == ["0.3", "0.1", "0.05", "0.2"]
    drv.save_screenshot(str(ARTIFACTS / "dashboard-runs-table.png"))

    # click the lr header: ascending, server-side, and in the URL
    th.click()
    by_lr = [jobs["charlie"], jobs["alpha"], jobs["delta"], jobs["bravo"]]
    wait_for(lambda: order(drv) == by_lr, what="rows by lr, ascending")
    assert "sort=spec.optimizer.lr" in drv.current_url and "cols=optimizer.lr" in drv.current_url
    drv.find_element("css selector", '#jobs-table th[data-col="optimizer.lr"]').click()
    wait_for(lambda: order(drv) == by_lr[::-1], what="rows by lr, descending")
    assert "sort=-spec.optimizer.lr" in drv.current_url

    # a column from the picker: final val acc (metrics.val_acc) is empty here, duration is not
    drv.find_element("css selector", "#column-picker summary").click()
    drv.find_element("css selector", '#column-picker input[data-col="duration_s"]').click()
    wait_for(
        lambda: (
            len(drv.find_elements("css selector", '#jobs-table td[data-col="duration_s"]')) == 4
        ),
        what="the duration column",
    )
    assert "cols=optimizer.lr%2Cduration_s" in drv.current_url or (
        "cols=optimizer.lr,duration_s" in drv.current_url
    )
    drv.find_element("css selector", "#column-picker summary").click()

    # text search and status filter, both in the URL
    q = drv.find_element("id", "search-q")
    q.send_keys("CHAR")
    wait_for(lambda: order(drv) == [jobs["charlie"]], what="the search to leave charlie")
    assert "q=CHAR" in drv.current_url
    q.clear()
    q.send_keys(" ")  # clear() fires no input event
    wait_for(lambda: len(order(drv)) == 4, what="all rows back")
    Select(drv.find_element("id", "status-filter")).select_by_value("queued")
    wait_for(lambda: order(drv) == [jobs["delta"]], what="only the queued job")
    assert "status=queued" in drv.current_url
    Select(drv.find_element("id", "status-filter")).select_by_value("")

    # group by sweep: a real sweep's children (queued: no worker) under their sweep's row
    body = {
        "name": "runs sweep",
        "base": minimal_spec(),
        "grid": {"optimizer.lr": [0.01, 0.02]},
        "seeds": 1,
    }
    sweep = httpx.post(f"{runs_api.url}/sweeps", json=body, timeout=30).json()
    Select(drv.find_element("id", "group-by")).select_by_value("sweep")
    group = wait_for(
        lambda: drv.find_element("css selector", f'tr.group-row[data-group="{sweep["id"]}"]'),
        what="the sweep's group row",
    )
    assert "2 jobs" in group.text
    assert "group=sweep" in drv.current_url
    drv.save_screenshot(str(ARTIFACTS / "dashboard-runs-grouped.png"))

    # the shared URL rebuilds the same view in a fresh load
    url = drv.current_url
    drv.get("about:blank")
    drv.get(url)
    wait_for(
        lambda: drv.find_elements("css selector", f'tr.group-row[data-group="{sweep["id"]}"]'),
        what="the grouped view from the URL",
    )
    assert Select(drv.find_element("id", "group-by")).first_selected_option.get_attribute(
        "value"
    ) == ("sweep")
    assert drv.find_elements("css selector", '#jobs-table th[data-col="duration_s"]')
    httpx.post(f"{runs_api.url}/sweeps/{sweep['id']}/cancel", timeout=30)


def test_tags_and_notes_on_the_job_page(runs_api, jobs, browser):
    drv = browser
    job_id = jobs["alpha"]
    httpx.patch(
        f"{runs_api.url}/jobs/{job_id}", json={"tags": ["old"]}, timeout=30
    ).raise_for_status()
    drv.get(f"{runs_api.url}/#/jobs/{job_id}")
    wait_for(
        lambda: drv.find_element("css selector", '#job-tags .tag[data-tag="old"]'),
        what="the stored tag",
    )
    box = drv.find_element("id", "tag-input")
    box.send_keys("keeper\n")
    wait_for(
        lambda: drv.find_elements("css selector", '#job-tags .tag[data-tag="keeper"]'),
        what="the new tag's chip",
    )
    drv.find_element("css selector", '#job-tags .tag[data-tag="old"] button').click()
    wait_for(
        lambda: not drv.find_elements("css selector", '#job-tags .tag[data-tag="old"]'),
        what="the removed tag to go",
    )
    box.send_keys("a,b\n")  # a comma is refused: the 422 is shown, nothing is added
    wait_for(lambda: "comma" in drv.find_element("id", "tags-error").text, what="the 422")
    notes = drv.find_element("id", "job-notes")
    notes.send_keys("lr 0.1 is the baseline")
    drv.find_element("id", "save-notes").click()
    wait_for(
        lambda: (
            httpx.get(f"{runs_api.url}/jobs/{job_id}", timeout=10).json()["notes"]
            == "lr 0.1 is the baseline"
        ),
        what="the notes saved",
    )
    assert httpx.get(f"{runs_api.url}/jobs/{job_id}", timeout=10).json()["tags"] == ["keeper"]
    drv.save_screenshot(str(ARTIFACTS / "dashboard-job-tags.png"))

    # the list shows the tag and filters by it
    drv.get(f"{runs_api.url}/#/?tag=keeper")
    wait_for(lambda: order(drv) == [job_id], what="only the tagged job")
    row = drv.find_element("css selector", f'#jobs-table tr[data-id="{job_id}"]')
    assert row.find_element("css selector", ".tag").text == "keeper"
    assert drv.find_element("id", "tag-filter").get_attribute("value") == "keeper"
