"""The web dashboard in a real headless Chromium, against the real API, Redis and worker.

Designs a small digits job in the schedule designer (watching the lr preview
draw and a 422 land beside the field it names), submits it, finds it in the
jobs list, opens it and waits for its loss curve to draw. Screenshots go to
test-artifacts/ for a human look.

Needs Debian's chromium + chromium-driver (`apt-get install -y chromium
chromium-driver`) and selenium; skipped with the reason when they are missing.
TRICKLAB_DASHBOARD_URL runs it against an already running stack instead of the
`service` fixture.
"""

from __future__ import annotations

import os
import re
import time

import httpx
import pytest
from support import ROOT, plain_spec, wait_for

ARTIFACTS = ROOT / "test-artifacts"
# The first chart colour (charts.js PALETTE[0]): the preview's lr and the job's train_loss.
SERIES_RGB = (37, 99, 235)

COLOURED_PIXELS_JS = """
const [sel, r, g, b] = arguments;
const c = document.querySelector(sel + ' canvas');
if (!c || !c.width || !c.height) return -1;
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 0; i < d.length; i += 4)
  if (d[i + 3] > 128 && Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40) n++;
return n;
"""


@pytest.fixture(scope="module")
def base_url(request) -> str:
    url = os.environ.get("TRICKLAB_DASHBOARD_URL")
    if not url:
        url = request.getfixturevalue("service").api_url
    r = httpx.get(f"{url}/", timeout=10)
    if r.status_code == 404:
        pytest.skip(
            "GET / is 404: api/main.py does not include api.routes.dashboard "
            "(app.include_router(dashboard.router); dashboard.mount_static(app))"
        )
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    return url.rstrip("/")


def points(drv, sel: str) -> int:
    return int(drv.find_element("css selector", sel).get_attribute("data-points") or 0)


def set_value(drv, key: str, value: str) -> None:
    """Type into a designer input, as a user would."""
    el = drv.find_element("css selector", f'.field[data-key="{key}"] input')
    el.clear()
    el.send_keys(value)


def test_design_submit_and_watch_a_job(base_url, browser):
    from selenium.webdriver.support.ui import Select

    drv = browser
    ARTIFACTS.mkdir(exist_ok=True)
    drv.get(f"{base_url}/")
    wait_for(lambda: drv.find_element("id", "jobs-table"), what="the jobs list")

    # ----------------------------------------------------------- the designer
    drv.find_element("id", "new-job").click()
    dataset = wait_for(lambda: drv.find_element("id", "f-data-dataset"), what="the designer")
    wait_for(
        lambda: "digits" in [o.get_attribute("value") for o in Select(dataset).options],
        what="GET /datasets to fill the dataset select",
    )
    Select(dataset).select_by_value("digits")
    name = f"dashboard e2e {int(time.time())}"
    set_value(drv, "name", name)
    set_value(drv, "training.epochs", "2")
    set_value(drv, "training.log_every", "5")

    # digits: 1438 training samples // batch 64 = 22 steps per epoch, 2 epochs
    wait_for(
        lambda: "44 steps" in drv.find_element("id", "preview-info").text,
        what="the preview summary for 44 steps",
    )
    wait_for(lambda: points(drv, "#preview-chart") == 44, what="44 preview points")
    wait_for(
        lambda: drv.execute_script(COLOURED_PIXELS_JS, "#preview-chart", *SERIES_RGB) > 50,
        what="the preview lr line on the canvas",
    )

    # A warm-up longer than training: the preview, then POST /jobs, answer 422,
    # shown beside the field the error's loc names.
    Select(drv.find_element("css selector", '[data-key="_warmup"] select')).select_by_value(
        "epochs"
    )
    set_value(drv, "schedule.warmup.epochs", "3")
    warmup_err = '.field[data-path="schedule.warmup.epochs"] .err'
    wait_for(
        lambda: "longer than training" in drv.find_element("css selector", warmup_err).text,
        what="the preview's 422 beside schedule.warmup.epochs",
    )
    drv.find_element("id", "submit-job").click()
    wait_for(lambda: drv.find_element("id", "form-error").text, what="the submit's 422")
    assert "longer than training" in drv.find_element("css selector", warmup_err).text
    assert "#/jobs/" not in drv.current_url

    set_value(drv, "schedule.warmup.epochs", "0.5")
    wait_for(
        lambda: (
            not drv.find_element("css selector", warmup_err).text
            and "44 steps" in drv.find_element("id", "preview-info").text
        ),
        what="the field error to clear and the preview to come back",
    )
    drv.save_screenshot(str(ARTIFACTS / "dashboard-designer.png"))
    drv.find_element("id", "submit-job").click()
    m = wait_for(
        lambda: re.search(r"#/jobs/(j[0-9a-f]+)", drv.current_url),
        what="navigation to the new job",
    )
    job_id = m.group(1)

    # ------------------------------------------------------------ the list
    drv.find_element("css selector", '[data-nav="jobs"]').click()
    row = wait_for(
        lambda: drv.find_element("css selector", f'#jobs-table tr[data-id="{job_id}"]'),
        what="the job's row in the list",
    )
    assert name in row.text
    row.find_element("css selector", "a.job-link").click()

    # ------------------------------------------------------------- the job
    wait_for(lambda: job_id in drv.current_url, what="the job page")
    wait_for(lambda: points(drv, "#chart-loss") > 0, timeout=120, what="loss points")
    wait_for(
        lambda: drv.find_element("css selector", "#view .badge").text == "succeeded",
        timeout=120,
        what="the job to succeed",
    )
    # 2 epochs: train_loss every 5 steps plus 2 val_loss points; lr planned + actual
    wait_for(lambda: points(drv, "#chart-loss") >= 6, what="train and val loss points")
    wait_for(lambda: points(drv, "#chart-lr") >= 44, what="the planned lr curve")
    wait_for(
        lambda: drv.execute_script(COLOURED_PIXELS_JS, "#chart-loss", *SERIES_RGB) > 30,
        what="the train_loss line on the canvas",
    )
    assert drv.find_element("id", "job-name").text == name
    assert '"dataset": "digits"' in drv.find_element("id", "job-spec").text
    assert drv.find_element("id", "download-model").is_displayed()
    time.sleep(0.3)  # screenshots are for a human look: let the last frame paint
    drv.save_screenshot(str(ARTIFACTS / "dashboard-job.png"))

    # --------------------------------------------------------- compare view
    drv.get(f"{base_url}/#/compare?ids={job_id}&metric=val_acc&x=epoch")
    wait_for(lambda: points(drv, "#compare-chart") >= 2, what="val_acc points in compare")
    assert name in drv.find_element("id", "compare-table").text
    drv.save_screenshot(str(ARTIFACTS / "dashboard-compare.png"))


SUGGEST_RGB = (22, 163, 74)  # rangetest.js MARK: the suggested-lr line


def test_sweep_page_table_and_band_chart(base_url, browser):
    """A tiny real sweep (2 variants × 1 seed): list, status, results table, mean curves."""
    drv = browser
    ARTIFACTS.mkdir(exist_ok=True)
    body = {
        "name": f"dashboard sweep {int(time.time())}",
        "base": plain_spec(),
        "grid": {"regularization.label_smoothing": [0.0, 0.2]},
        "seeds": 1,
        "max_concurrent": 2,
    }
    r = httpx.post(f"{base_url}/sweeps", json=body, timeout=30)
    assert r.status_code == 201, r.text
    sweep = r.json()

    drv.get(f"{base_url}/#/sweeps")
    link = wait_for(
        lambda: drv.find_element(
            "css selector", f'#sweeps-table tr[data-id="{sweep["id"]}"] a.sweep-link'
        ),
        what="the sweep in the list",
    )
    assert "active" in drv.find_element("id", "nav-sweeps").get_attribute("class")
    link.click()
    wait_for(lambda: sweep["id"] in drv.current_url, what="the sweep page")
    wait_for(
        lambda: drv.find_element("css selector", "#view .badge").text == "succeeded",
        timeout=180,
        what="the sweep to succeed",
    )
    rows = wait_for(
        lambda: (
            (rs := drv.find_elements("css selector", "#sweep-results tbody tr"))
            and len(rs) == 2
            and all("1/1" in r.text for r in rs)
            and rs
        ),
        what="two finished rows in the results table",
    )
    assert "%" in drv.find_element("css selector", "#sweep-results thead").text
    # one seed: Welch's test needs two per side, so the row says so instead of a marker
    assert "needs ≥ 2 seeds" in rows[1].text
    # val_acc by step: 2 variants × (mean, max, min) × 2 epochs
    wait_for(lambda: points(drv, "#sweep-chart") >= 12, what="the mean curves and bands")
    wait_for(
        lambda: drv.execute_script(COLOURED_PIXELS_JS, "#sweep-chart", *SERIES_RGB) > 30,
        what="the first variant's mean line on the canvas",
    )
    # x by fraction of the schedule, and train_loss (many points per run)
    from selenium.webdriver.support.ui import Select

    Select(drv.find_element("id", "sweep-curve-x")).select_by_value("fraction")
    Select(drv.find_element("id", "sweep-curve-metric")).select_by_value("train_loss")
    wait_for(lambda: "x=fraction" in drv.current_url, what="x=fraction in the URL")
    wait_for(lambda: points(drv, "#sweep-chart") >= 40, what="train_loss curves by fraction")
    children = drv.find_elements("css selector", "a.sweep-child")
    assert len(children) == 2
    time.sleep(0.3)  # screenshots are for a human look: let the last frame paint
    drv.save_screenshot(str(ARTIFACTS / "dashboard-sweep.png"))

    # a child's job page links back to its sweep
    children[0].click()
    back = wait_for(lambda: drv.find_element("id", "job-sweep"), what="the sweep link on the job")
    assert back.text == sweep["id"]


def test_range_test_from_the_designer_and_use_this_lr(base_url, browser):
    """Designer → LR range test job → log-x loss vs lr with the suggestion → "Use this lr"."""
    from selenium.webdriver.support.ui import Select

    drv = browser
    ARTIFACTS.mkdir(exist_ok=True)
    drv.get(f"{base_url}/#/new")
    dataset = wait_for(lambda: drv.find_element("id", "f-data-dataset"), what="the designer")
    wait_for(
        lambda: "digits" in [o.get_attribute("value") for o in Select(dataset).options],
        what="datasets",
    )
    Select(dataset).select_by_value("digits")
    set_value(drv, "name", "range e2e")
    set_value(drv, "mlp.hidden", "64")
    set_value(drv, "training.log_every", "5")

    # a bad range first: the 422 lands beside the range field it names
    for key, value in (("lr_range.min_lr", "1"), ("lr_range.max_lr", "0.5")):
        set_value(drv, key, value)
    drv.find_element("id", "run-range-test").click()
    err = '.field[data-path="lr_range.max_lr"] .err'
    wait_for(lambda: drv.find_element("css selector", err).text, what="the range 422 beside max_lr")
    assert "#/jobs/" not in drv.current_url

    for key, value in (
        ("lr_range.min_lr", "0.0001"),
        ("lr_range.max_lr", "10"),
        ("lr_range.steps", "60"),
    ):
        set_value(drv, key, value)
    drv.find_element("id", "run-range-test").click()
    m = wait_for(lambda: re.search(r"#/jobs/(j[0-9a-f]+)", drv.current_url), what="the range job")
    job_id = m.group(1)

    lr_text = wait_for(
        lambda: drv.find_element("id", "suggested-lr").text, timeout=120, what="the suggestion"
    )
    job = httpx.get(f"{base_url}/jobs/{job_id}", timeout=10).json()
    assert job["spec"]["task"] == "lr_range_test"
    assert job["spec"]["lr_range"] == {**job["spec"]["lr_range"], "min_lr": 1e-4, "steps": 60}
    suggested = job["result"]["suggested_lr"]
    assert 1e-4 <= suggested <= 10
    assert float(lr_text) == pytest.approx(suggested, rel=1e-3)
    assert drv.find_element("id", "suggested-rule").text == job["result"]["rule"]

    chart = drv.find_element("id", "chart-range")
    assert chart.get_attribute("data-x-scale") == "log"
    # the full per-step curve (range_*): raw and smoothed, one point each per step
    n = len(job["result"]["lr_range"]["lrs"])
    wait_for(lambda: points(drv, "#chart-range") == 2 * n, what=f"{2 * n} range points")
    wait_for(
        lambda: drv.execute_script(COLOURED_PIXELS_JS, "#chart-range", *SERIES_RGB) > 30,
        what="the smoothed loss on the canvas",
    )
    wait_for(
        lambda: drv.execute_script(COLOURED_PIXELS_JS, "#chart-range", *SUGGEST_RGB) > 20,
        what="the suggested-lr marker on the canvas",
    )
    time.sleep(0.3)  # screenshots are for a human look: let the last frame paint
    drv.save_screenshot(str(ARTIFACTS / "dashboard-range-test.png"))

    drv.find_element("id", "use-lr").click()
    wait_for(lambda: "#/new" in drv.current_url, what="the designer")
    lr_input = wait_for(
        lambda: (el := drv.find_element("id", "f-optimizer-lr")).get_attribute("value") and el,
        what="optimizer.lr filled",
    )
    wait_for(
        lambda: float(lr_input.get_attribute("value")) == float(f"{suggested:.2g}"),
        what="optimizer.lr = the suggestion to 2 significant digits",
    )
    # the rest of the spec is cloned, as a training job
    assert (
        drv.find_element("css selector", '.field[data-key="mlp.hidden"] input').get_attribute(
            "value"
        )
        == "64"
    )
    assert (
        drv.find_element(
            "css selector", '.field[data-key="training.log_every"] input'
        ).get_attribute("value")
        == "5"
    )
    assert "range e2e" in drv.find_element(
        "css selector", '.field[data-key="name"] input'
    ).get_attribute("value")
    wait_for(lambda: points(drv, "#preview-chart") > 0, what="the preview with the new lr")
    drv.save_screenshot(str(ARTIFACTS / "dashboard-use-lr.png"))
