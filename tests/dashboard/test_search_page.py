"""The search pages in a real headless Chromium, against the real API (whose driver samples
with Optuna), Redis and worker: a small random search made over HTTP, then its page (trials
table, parallel coordinates, best-so-far curve, importance bars, confirm table); and a search
launched from the designer's Search… dialog (a 422 beside the row it names, then the search
page and its Cancel button).

Needs Debian's chromium + chromium-driver and selenium; skipped with the reason when they are
missing. TRICKLAB_DASHBOARD_URL runs it against an already running stack instead.
"""

from __future__ import annotations

import os
import re
import time

import httpx
import pytest
from support import ROOT, plain_spec, wait_for

pytestmark = [pytest.mark.service, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
DONE = ("succeeded", "failed", "cancelled")

# How many lines of a cell's text the browser laid out (1 = it did not wrap).
TEXT_LINES_JS = """
const r = document.createRange();
r.selectNodeContents(arguments[0]);
const tops = new Set([...r.getClientRects()].map((x) => Math.round(x.top)));
return tops.size;
"""


@pytest.fixture(scope="module")
def base_url(request) -> str:
    url = os.environ.get("TRICKLAB_DASHBOARD_URL")
    if not url:
        url = request.getfixturevalue("service").api_url
    r = httpx.get(f"{url}/", timeout=10)
    if r.status_code == 404:
        pytest.skip("GET / is 404: the API serves no dashboard")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    return url.rstrip("/")


def severe_logs(drv, expected: str | None = None) -> list[str]:
    """The browser console's errors since the last call (reading the log empties it), but
    for the network errors matching `expected` (Chromium logs every 4xx answer)."""
    out = []
    for e in drv.get_log("browser"):
        if e.get("level") != "SEVERE":
            continue
        if expected and re.search(expected, e["message"]):
            continue
        out.append(e["message"])
    return out


def wait_search(base_url: str, sid: str, timeout: float = 400) -> dict:
    def done():
        s = httpx.get(f"{base_url}/searches/{sid}", timeout=10).json()
        return s if s["status"] in DONE else None

    return wait_for(done, timeout, interval=0.5, what=f"search {sid} to finish")


def cancel_quietly(base_url: str, sid: str) -> None:
    """After a test, pass or fail: leave no trial running on the session's one worker."""
    s = httpx.get(f"{base_url}/searches/{sid}", timeout=10).json()
    if s["status"] not in DONE:
        httpx.post(f"{base_url}/searches/{sid}/cancel", timeout=30)
    wait_search(base_url, sid, 120)


SPACE = {
    "optimizer.lr": {"loguniform": [1e-3, 1.0]},
    "regularization.label_smoothing": {"uniform": [0.0, 0.2]},
    "regularization.mixup": {"choice": [None, {"alpha": 0.2}]},
}


def test_search_page_shows_trials_plot_importance_and_confirm(base_url, browser):
    drv = browser
    ARTIFACTS.mkdir(exist_ok=True)
    body = {
        "name": f"dashboard search {int(time.time())}",
        "base": plain_spec(epochs=2),
        "space": SPACE,
        "algorithm": "random",
        "trials": 4,
        "max_concurrent": 2,
        "seed": 3,
        "metric": "val_acc",
        "mode": "max",
        "confirm": {"top_k": 2, "seeds": 2},
    }
    r = httpx.post(f"{base_url}/searches", json=body, timeout=30)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        s = wait_search(base_url, sid)
    finally:
        cancel_quietly(base_url, sid)
    assert s["status"] == "succeeded", s
    assert len(s["trials"]) == 4 and s["confirm"]["winner"], s

    drv.get(f"{base_url}/#/searches")
    wait_for(lambda: drv.find_element("id", "searches-table"), what="the searches list")
    severe_logs(drv)  # from here on, the console must stay clean
    link = wait_for(
        lambda: drv.find_element(
            "css selector", f'#searches-table tr[data-id="{sid}"] a.search-link'
        ),
        what="the search in the list",
    )
    assert "active" in drv.find_element("id", "nav-searches").get_attribute("class")
    link.click()
    wait_for(lambda: sid in drv.current_url, what="the search page")
    wait_for(
        lambda: drv.find_element("css selector", "#view .badge").text == "succeeded",
        what="the search's status",
    )

    # the trials table: 4 rows, each linking to its job
    rows = wait_for(
        lambda: (
            (rs := drv.find_elements("css selector", "#search-trials-table tbody tr"))
            and len(rs) == 4
            and rs
        ),
        what="4 trial rows",
    )
    links = drv.find_elements("css selector", '#search-trials-table a[href^="#/jobs/"]')
    assert sorted(a.get_attribute("href").rsplit("/", 1)[1] for a in links) == sorted(
        t["job_id"] for t in s["trials"]
    )
    assert all("succeeded" in row.text for row in rows)
    heads = drv.find_element("css selector", "#search-trials-table thead").text
    assert all(p in heads for p in SPACE)

    # parallel coordinates: one axis per dimension and the metric, one coloured line per trial
    axes = drv.find_elements("css selector", "#search-parallel svg g.axis")
    assert len(axes) == len(SPACE) + 1
    assert drv.find_elements("css selector", "#search-parallel svg g.axis.log")
    assert drv.find_elements("css selector", "#search-parallel svg g.axis.choice")
    lines = drv.find_elements("css selector", '#search-parallel polyline[data-finished="1"]')
    assert len(lines) == 4
    for line in lines:  # each line crosses every axis
        assert len(line.get_attribute("points").split()) == len(SPACE) + 1
    # the choice axis labels its values
    choice_text = drv.find_element("css selector", "#search-parallel g.axis.choice").text
    assert "null" in choice_text and "alpha" in choice_text

    # best so far over trial numbers: every scored trial and the running best
    scored = sum(1 for t in s["trials"] if t["metric"] is not None)
    wait_for(
        lambda: (
            int(drv.find_element("id", "search-best-chart").get_attribute("data-points") or 0)
            == 2 * scored
        ),
        what="the best-so-far curve",
    )

    # importance bars, widest first, as the API ranks them
    imp = s["importance"]
    assert imp, s
    bars = drv.find_elements("css selector", "#search-importance .imp-row")
    assert [b.get_attribute("data-path") for b in bars] == sorted(imp, key=imp.get, reverse=True)
    widths = [b.find_element("css selector", ".imp-bar").size["width"] for b in bars]
    assert widths[0] > 0 and widths == sorted(widths, reverse=True)

    # the confirm table: mean ± std on one line per row, and Welch's sentence
    cells = drv.find_elements("css selector", "#search-confirm-table td.pm")
    assert len(cells) == 2
    for cell, row in zip(cells, s["confirm"]["rows"], strict=True):
        assert "±" in cell.text
        assert f"{row['mean'] * 100:.2f}" in cell.text
        assert drv.execute_script(TEXT_LINES_JS, cell) == 1, cell.text
    verdict = drv.find_element("id", "search-verdict").text
    assert s["confirm"]["winner"]["sentence"] in verdict
    assert "beyond seed noise" in verdict

    time.sleep(0.3)  # screenshots are for a human look: let the last frame paint
    drv.save_screenshot(str(ARTIFACTS / "dashboard-search.png"))
    drv.execute_script("arguments[0].scrollIntoView()", cells[0])
    time.sleep(0.3)
    drv.save_screenshot(str(ARTIFACTS / "dashboard-search-confirm.png"))
    assert severe_logs(drv) == []

    # a trial's link opens its job
    links[0].click()
    wait_for(lambda: "#/jobs/" in drv.current_url, what="a trial's job page")


def set_input(el, value: str) -> None:
    el.clear()
    el.send_keys(value)


def test_designer_search_dialog_posts_a_search(base_url, browser):
    from selenium.webdriver.support.ui import Select

    drv = browser
    ARTIFACTS.mkdir(exist_ok=True)
    drv.get(f"{base_url}/#/new")
    dataset = wait_for(lambda: drv.find_element("id", "f-data-dataset"), what="the designer")
    wait_for(
        lambda: "digits" in [o.get_attribute("value") for o in Select(dataset).options],
        what="datasets",
    )
    severe_logs(drv)
    Select(dataset).select_by_value("digits")
    for key, value in (("name", "designer search"), ("training.epochs", "2")):
        set_input(drv.find_element("css selector", f'.field[data-key="{key}"] input'), value)
    lr = float(drv.find_element("id", "f-optimizer-lr").get_attribute("value"))

    drv.find_element("id", "search-button").click()
    dialog = wait_for(
        lambda: (d := drv.find_element("id", "search-dialog")).is_displayed() and d,
        what="the search dialog",
    )
    rows = dialog.find_elements("css selector", ".dim-row")
    assert rows[0].find_element("css selector", ".dim-path").get_attribute("value") == (
        "optimizer.lr"
    )
    assert Select(rows[0].find_element("css selector", ".dim-kind")).first_selected_option.text == (
        "loguniform"
    )
    # prefilled from the designer's lr: a decade either way
    lo = float(rows[0].find_element("css selector", ".dim-lo").get_attribute("value"))
    hi = float(rows[0].find_element("css selector", ".dim-hi").get_attribute("value"))
    assert lo == pytest.approx(lr / 10, rel=1e-3) and hi == pytest.approx(lr * 10, rel=1e-3)

    # a warm-up of up to 5 epochs in a 2-epoch run: 422, shown beside that row
    second = rows[1]
    set_input(second.find_element("css selector", ".dim-path"), "schedule.warmup.epochs")
    Select(second.find_element("css selector", ".dim-kind")).select_by_value("int")
    set_input(second.find_element("css selector", ".dim-lo"), "0")
    set_input(second.find_element("css selector", ".dim-hi"), "5")
    Select(dialog.find_element("id", "search-f-algorithm")).select_by_value("random")
    set_input(dialog.find_element("id", "search-f-trials"), "20")
    set_input(dialog.find_element("id", "search-f-concurrent"), "1")
    dialog.find_element("id", "search-f-confirm").click()  # no confirm stage
    dialog.find_element("id", "start-search").click()
    err = wait_for(
        lambda: second.find_element("css selector", ".err").text, what="the 422 beside the row"
    )
    assert "schedule.warmup.epochs" in err
    assert "invalid" in second.get_attribute("class")
    assert rows[0].find_element("css selector", ".err").text == ""
    assert "#/searches/" not in drv.current_url
    # an invalid choice list is caught before the request
    Select(second.find_element("css selector", ".dim-kind")).select_by_value("choice")
    set_input(second.find_element("css selector", ".dim-choices"), "0, oops")
    dialog.find_element("id", "start-search").click()
    wait_for(
        lambda: "comma-separated JSON" in second.find_element("css selector", ".err").text,
        what="the choices error",
    )
    set_input(second.find_element("css selector", ".dim-choices"), "0.5, 1")
    drv.save_screenshot(str(ARTIFACTS / "dashboard-search-dialog.png"))
    dialog.find_element("id", "start-search").click()

    def made():
        if m := re.search(r"#/searches/(q[0-9a-f]+)", drv.current_url):
            return m
        msg = drv.find_element("id", "search-form-error").text
        assert not msg, [e.text for e in drv.find_elements("css selector", "#search-dialog .err")]
        return None

    m = wait_for(made, what="the search page")
    sid = m.group(1)
    try:
        s = httpx.get(f"{base_url}/searches/{sid}", timeout=10).json()
        assert s["space"] == {
            "optimizer.lr": {"loguniform": [pytest.approx(lo), pytest.approx(hi)]},
            "schedule.warmup.epochs": {"choice": [0.5, 1]},
        }
        assert s["algorithm"] == "random" and s["trials_planned"] == 20
        assert s["max_concurrent"] == 1 and s["confirm"] is None
        # the base is the designer's spec: its trials are its jobs with the sampled values
        wait_for(
            lambda: drv.find_elements(
                "css selector", '#search-trials-table tbody a[href^="#/jobs/"]'
            ),
            timeout=60,
            what="a first trial on the page",
        )
        t = httpx.get(f"{base_url}/searches/{sid}", timeout=10).json()["trials"][0]
        job = httpx.get(f"{base_url}/jobs/{t['job_id']}", timeout=10).json()
        assert job["spec"]["name"] == "designer search"
        assert job["spec"]["data"]["dataset"] == "digits"
        assert job["spec"]["training"]["epochs"] == 2
        assert job["spec"]["optimizer"]["lr"] == pytest.approx(t["params"]["optimizer.lr"])

        # Cancel on the page: the search ends cancelled and its button goes away
        drv.find_element("id", "cancel-search").click()
        drv.switch_to.alert.accept()
        wait_for(
            lambda: drv.find_element("css selector", "#view .badge").text == "cancelled",
            timeout=120,
            what="the search to end cancelled",
        )
        assert not drv.find_elements("id", "cancel-search")
        assert httpx.get(f"{base_url}/searches/{sid}", timeout=10).json()["status"] == "cancelled"
        # the only errors: the 422s the test asked for, and the designer's preview answering
        # 422 while an input is cleared to be retyped
        expected = r"/(searches|schedules/preview) - Failed to load resource.* 422"
        assert severe_logs(drv, expected=expected) == []
    finally:
        cancel_quietly(base_url, sid)


# parallel.js's own layout (PAD, 900 × 320 by default): axis i at x = 60 + i * step, a
# position p in [0, 1] at y = 34 + (1 - p) * 260.
PLOT_JS = """
const done = arguments[arguments.length - 1];
Promise.all([import('/static/js/parallel.js'), import('/static/js/searches.js')]).then(([p, s]) => {
  const space = {
    'optimizer.lr': {loguniform: [0.001, 1.0]},
    'training.batch_size': {int: [16, 80]},
    'regularization.mixup': {choice: [null, {alpha: 0.2, kind: 'x'}, {alpha: 0.4}]},
  };
  const trials = [
    {number: 0, state: 'succeeded', metric: 0.5,
     params: {'optimizer.lr': 0.01, 'training.batch_size': 32, 'regularization.mixup': null}},
    {number: 1, state: 'succeeded', metric: 0.9,
     params: {'optimizer.lr': 0.1, 'training.batch_size': 80,
              'regularization.mixup': {kind: 'x', alpha: 0.2}}},
    {number: 2, state: 'failed', metric: null,
     params: {'optimizer.lr': 1.0, 'training.batch_size': 16, 'regularization.mixup': {alpha: 0.4}}},
  ];
  const svg = p.parallelPlot({trials, space, metric: 'val_loss', mode: 'min'});
  const lines = [...svg.querySelectorAll('polyline')].map((l) => ({
    trial: l.dataset.trial, finished: l.dataset.finished, stroke: l.getAttribute('stroke'),
    dash: l.getAttribute('stroke-dasharray'),
    points: l.getAttribute('points').split(' ').map((xy) => xy.split(',').map(Number)),
  }));
  const best = s.bestSoFar([
    {number: 2, metric: 0.4}, {number: 0, metric: 0.5}, {number: 1, metric: 0.3},
    {number: 3, metric: null}, {number: 4, metric: 0.35},
  ], 'min');
  done({lines, best, axes: [...svg.querySelectorAll('g.axis')].map((g) => g.getAttribute('class'))});
}).catch((e) => done({error: String(e)}));
"""


def test_parallel_plot_geometry_and_best_so_far(base_url, browser):
    """The plot's geometry against hand-computed positions, and the best-so-far series."""
    drv = browser
    drv.get(f"{base_url}/#/searches")
    wait_for(lambda: drv.find_element("id", "searches-table"), what="the dashboard")
    severe_logs(drv)
    drv.set_script_timeout(30)
    got = drv.execute_async_script(PLOT_JS)
    assert "error" not in got, got
    assert got["axes"] == ["axis log", "axis int", "axis choice", "axis metric"]
    step = (900 - 60 - 70) / 3

    def y(p: float) -> float:
        return 34 + (1 - p) * 260

    by = {ln["trial"]: ln for ln in got["lines"]}
    # lr 0.01 on a log axis over [1e-3, 1] sits a third of the way up; batch 32 of [16, 80]
    # a quarter; null is the first choice (bottom); val_loss 0.5 the worst (bottom)
    t0 = by["0"]["points"]
    assert [x for x, _ in t0] == pytest.approx(
        [60, 60 + step, 60 + 2 * step, 60 + 3 * step], abs=0.06
    )
    assert [v for _, v in t0] == pytest.approx([y(1 / 3), y(0.25), y(0), y(0)], abs=0.06)
    # lr 0.1: two thirds; batch 80: the top; the mixup object (keys in another order) is the
    # middle choice; val_loss 0.9 is the top of the metric axis
    t1 = by["1"]["points"]
    assert [v for _, v in t1] == pytest.approx([y(2 / 3), y(1), y(0.5), y(1)], abs=0.06)
    # mode min: the lower loss is the better line, drawn darker and on top (last)
    assert [ln["trial"] for ln in got["lines"]] == ["2", "1", "0"]
    assert by["0"]["stroke"] != by["1"]["stroke"]
    assert by["0"]["finished"] == "1" and by["0"]["dash"] is None
    # the failed trial: grey, dashed, and no metric so it ends at the last parameter axis
    t2 = by["2"]
    assert t2["finished"] == "0" and t2["dash"] and t2["stroke"] == "#9ca3af"
    assert [v for _, v in t2["points"]] == pytest.approx([y(1), y(0), y(1)], abs=0.06)
    # best so far (min) in trial order, trials without a metric left out
    assert got["best"] == [
        {"x": [0, 1, 2, 4], "y": [0.5, 0.3, 0.4, 0.35]},
        {"x": [0, 1, 2, 4], "y": [0.5, 0.3, 0.3, 0.3]},
    ]
    assert severe_logs(drv) == []
