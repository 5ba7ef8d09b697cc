"""Chart controls in a real headless Chromium, against the real API, Redis and worker.

One tiny digits job (3 epochs) per module. On its page: the smoothing slider draws
the debiased EMA of the train loss (checked against an EMA computed here from the
curves API's values), log y switches the scale's distribution, the epoch axis ticks
whole epochs and puts the val points at 1, 2, 3, a drag on one panel zooms every
panel of the page and a double-click resets them, and the state round-trips through
the URL. The diverged and empty cases are drawn with known values through charts.js
itself. The pure helpers (chartmath.js) are checked in node against values worked out
by hand (chartmath.test.mjs). Screenshot: docs/screenshots/charts-job.png.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from datetime import datetime

import httpx
import pytest
from support import ROOT, plain_spec, submit, wait_for
from support.waiting import wait_done

SHOTS = ROOT / "docs" / "screenshots"
EPOCHS = 3
STEPS_PER_EPOCH = 22  # digits: 1438 training samples // batch 64

DATA_JS = """
const u = document.querySelector(arguments[0]).uplot;
return {labels: u.series.map((s) => s.label), data: u.data.map((a) => Array.from(a)),
        x: [u.scales.x.min, u.scales.x.max], y: [u.scales.y.min, u.scales.y.max],
        distr: u.scales.y.distr, xticks: u.axes[0]._splits, yvalues: u.axes[1]._values};
"""


@pytest.fixture(scope="module")
def base_url(service) -> str:
    r = httpx.get(f"{service.api_url}/", timeout=10)
    if r.status_code == 404:
        pytest.skip("GET / is 404: the dashboard is not mounted")
    return service.api_url.rstrip("/")


@pytest.fixture(scope="module")
def job(service, browser) -> dict:
    """After `browser`, so a missing Chromium skips before training anything."""
    with service.client() as c:
        spec = plain_spec(epochs=EPOCHS)
        spec["name"] = "charts e2e"
        done = wait_done(c, submit(c, spec)["id"], timeout=180)
    assert done["status"] == "succeeded", done
    return done


def chart(drv, sel: str) -> dict:
    return drv.execute_script(DATA_JS, sel)


def column(c: dict, label: str) -> list[float]:
    """The non-null values of the series with that label."""
    return [v for v in c["data"][c["labels"].index(label)] if v is not None]


def debiased_ema(ys: list[float], alpha: float) -> list[float]:
    """TensorBoard's smoothing, written out: s = a*s + (1-a)*y, shown as s / (1 - a^t)."""
    out, s = [], 0.0
    for t, y in enumerate(ys, start=1):
        s = alpha * s + (1 - alpha) * y
        out.append(s / (1 - alpha**t))
    return out


def test_chartmath_in_node():
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not on PATH")
    test = ROOT / "tests" / "dashboard" / "chartmath.test.mjs"
    r = subprocess.run([node, "--test", str(test)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "# fail 0" in r.stdout


def test_job_page_controls(base_url, browser, job):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    drv = browser
    raw = httpx.get(
        f"{base_url}/jobs/{job['id']}/curves?metrics=train_loss,val_loss&max_points=2000"
    ).json()["series"]
    drv.get(f"{base_url}/#/jobs/{job['id']}")
    n = len(raw["train_loss"]["value"]) + len(raw["val_loss"]["value"])
    wait_for(
        lambda: int(drv.find_element("id", "chart-loss").get_attribute("data-points")) == n,
        what="the loss chart's points",
    )
    assert chart(drv, "#chart-loss")["distr"] == 1

    # --- smoothing: the drawn train loss is the debiased EMA, the raw one stays behind
    drv.execute_script(
        "const s = document.querySelector('.chart-toolbar .chart-smooth');"
        "s.value = '0.6'; s.dispatchEvent(new Event('input'));"
    )
    wait_for(lambda: "smooth=0.6" in drv.current_url, what="smooth=0.6 in the URL")
    c = chart(drv, "#chart-loss")
    want = debiased_ema(raw["train_loss"]["value"], 0.6)
    got = column(c, "train_loss")
    assert len(got) == len(want)
    assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(got, want, strict=True))
    assert column(c, "train_loss (raw)") == raw["train_loss"]["value"]
    assert got != raw["train_loss"]["value"]

    # --- the epoch axis: whole-epoch ticks, val points at the end of epochs 1..3
    Select(drv.find_element("css selector", ".chart-toolbar select.chart-x")).select_by_value(
        "epoch"
    )
    wait_for(lambda: "x=epoch" in drv.current_url, what="x=epoch in the URL")
    for sel in ("#chart-loss", "#chart-acc", "#chart-lr"):
        ticks = chart(drv, sel)["xticks"]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), (sel, ticks)
    c = chart(drv, "#chart-loss")
    val_y = c["data"][c["labels"].index("val_loss")]
    val_x = [x for x, v in zip(c["data"][0], val_y, strict=True) if v is not None]
    assert val_x == [1.0, 2.0, 3.0]
    assert 1 / STEPS_PER_EPOCH - 1e-9 <= c["data"][0][0]

    # --- wall time: seconds since the claim, by the clock the worker writes (sys_time)
    clock = httpx.get(f"{base_url}/jobs/{job['id']}/curves?metrics=sys_time&max_points=2000")
    clock = clock.json()["series"]["sys_time"]
    started = datetime.fromisoformat(job["started_at"]).timestamp()
    Select(drv.find_element("css selector", ".chart-toolbar select.chart-x")).select_by_value(
        "wall"
    )
    wait_for(lambda: "x=wall" in drv.current_url, what="x=wall in the URL")
    c = chart(drv, "#chart-loss")
    train_y = c["data"][c["labels"].index("train_loss")]
    xs = [x for x, v in zip(c["data"][0], train_y, strict=True) if v is not None]
    t0 = min(started, clock["value"][0])
    want = [t - t0 for t in clock["value"]]  # train_loss sits at the log points' steps
    assert len(xs) == len(want), (xs, want)
    # JS parses started_at to the millisecond
    assert all(math.isclose(a, b, abs_tol=2e-3) for a, b in zip(xs, want, strict=True)), (xs, want)
    assert xs == sorted(xs) and xs[0] >= 0
    Select(drv.find_element("css selector", ".chart-toolbar select.chart-x")).select_by_value(
        "epoch"
    )
    wait_for(lambda: "x=epoch" in drv.current_url, what="x=epoch in the URL again")

    # --- a drag on the loss panel zooms the accuracy panel too; double-click resets both
    over = drv.find_element("css selector", "#chart-loss .u-over")
    w = over.size["width"]
    ActionChains(drv).move_to_element_with_offset(
        over, int(-0.3 * w), 0
    ).click_and_hold().move_by_offset(int(0.3 * w), 0).release().perform()
    loss, acc = chart(drv, "#chart-loss"), chart(drv, "#chart-acc")
    assert loss["x"][1] - loss["x"][0] < 0.6 * EPOCHS, loss["x"]
    assert acc["x"] == pytest.approx(loss["x"])
    ActionChains(drv).double_click(drv.find_element("css selector", "#chart-acc .u-over")).perform()
    loss, acc = chart(drv, "#chart-loss"), chart(drv, "#chart-acc")
    assert loss["x"] == pytest.approx([loss["data"][0][0], loss["data"][0][-1]])
    assert acc["x"] == pytest.approx([acc["data"][0][0], acc["data"][0][-1]])

    # --- log y on the loss panel only
    drv.find_element("css selector", "#chart-loss .chart-logy").click()
    wait_for(lambda: chart(drv, "#chart-loss")["distr"] == 3, what="a log y scale")
    assert "logy=loss" in drv.current_url
    assert chart(drv, "#chart-acc")["distr"] == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.3)  # let the last frame paint
    drv.execute_script(  # the toolbar just under the sticky top bar
        "const t = document.querySelector('.chart-toolbar');"
        "window.scrollTo(0, t.getBoundingClientRect().top + window.scrollY - 60);"
    )
    time.sleep(0.2)
    drv.save_screenshot(str(SHOTS / "charts-job.png"))

    # --- the state comes back from the URL
    drv.get(f"{base_url}/#/jobs/{job['id']}?smooth=0.3&logy=acc&x=fraction")
    wait_for(
        lambda: drv.find_element("id", "chart-acc").get_attribute("data-x-mode") == "fraction",
        what="x by fraction from the URL",
    )
    wait_for(
        lambda: int(drv.find_element("id", "chart-loss").get_attribute("data-points")) == n,
        what="the loss chart's points again",
    )
    assert drv.find_element("css selector", ".chart-smooth").get_attribute("value") == "0.3"
    assert chart(drv, "#chart-acc")["distr"] == 3
    assert chart(drv, "#chart-loss")["distr"] == 1
    assert max(chart(drv, "#chart-loss")["data"][0]) == pytest.approx(1.0)


MAKE_CHART_JS = """
const [id, ys, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
import("/static/js/charts.js").then(({ Chart }) => {
  const el = document.createElement("div");
  el.id = id;
  el.style.width = "600px";
  document.getElementById("view").append(el);
  const c = new Chart(el, { title: id, series: [{ label: "loss" }] });
  c.set([{ x: ys.map((_, i) => i), y: ys }]);
  done(true);
}).catch((e) => done(String(e)));
"""


def test_diverged_and_empty_charts(base_url, browser):
    """Values written here: a bulk within 0.1..2.3 and one point at 1e24."""
    drv = browser
    drv.get(f"{base_url}/#/compare")
    wait_for(lambda: drv.find_element("css selector", "#view h1"), what="a page")
    ys = [2.3, 1.5, 1.0, 0.7, 0.5, 0.4, 1e24, 0.3, 0.2, 0.1]
    assert drv.execute_async_script(MAKE_CHART_JS, "chart-diverged", ys) is True
    c = chart(drv, "#chart-diverged")
    lo, hi = c["y"]
    assert math.isfinite(lo) and math.isfinite(hi)
    assert lo <= 0.1 and 2.3 <= hi < 10, c["y"]
    assert not any("e+" in str(v) for v in c["yvalues"]), c["yvalues"]
    el = drv.find_element("id", "chart-diverged")
    assert el.get_attribute("data-diverged") == "1"
    assert "diverged point off-scale" in el.find_element("css selector", ".chart-note").text
    # the line leaves the plot at the diverged step: drawn above the range, not at 1e24
    drawn = column(c, "loss")
    assert hi < drawn[6] < 1e3
    assert not el.find_element("css selector", ".chart-empty").is_displayed()

    assert drv.execute_async_script(MAKE_CHART_JS, "chart-nodata", []) is True
    empty = drv.find_element("css selector", "#chart-nodata .chart-empty")
    assert empty.is_displayed() and empty.text == "no data"
