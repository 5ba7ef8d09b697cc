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
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1100",
]

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


def find_chromium() -> tuple[str, str] | None:
    browser = next(
        (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
    )
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return (browser, driver) if browser and driver else None


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


@pytest.fixture(scope="module")
def browser() -> Iterator:
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    found = find_chromium()
    if not found:
        pytest.skip("no Chromium: apt-get install -y chromium chromium-driver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service as ChromeService

    profile = tempfile.mkdtemp(prefix="tricklab-chromium-")
    opts = Options()
    opts.binary_location = found[0]
    for f in [*FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(f)
    drv = webdriver.Chrome(service=ChromeService(executable_path=found[1]), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        logs = []
        try:
            logs = drv.get_log("browser")
        except Exception:  # noqa: BLE001 - logs are a debugging aid only
            pass
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)
        severe = [e["message"] for e in logs if e.get("level") == "SEVERE"]
        if severe:
            print("browser console errors:\n" + "\n".join(severe))


def wait(pred, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


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
    wait(lambda: drv.find_element("id", "jobs-table"), what="the jobs list")

    # ----------------------------------------------------------- the designer
    drv.find_element("id", "new-job").click()
    dataset = wait(lambda: drv.find_element("id", "f-data-dataset"), what="the designer")
    wait(
        lambda: "digits" in [o.get_attribute("value") for o in Select(dataset).options],
        what="GET /datasets to fill the dataset select",
    )
    Select(dataset).select_by_value("digits")
    name = f"dashboard e2e {int(time.time())}"
    set_value(drv, "name", name)
    set_value(drv, "training.epochs", "2")
    set_value(drv, "training.log_every", "5")

    # digits: 1438 training samples // batch 64 = 22 steps per epoch, 2 epochs
    wait(
        lambda: "44 steps" in drv.find_element("id", "preview-info").text,
        what="the preview summary for 44 steps",
    )
    wait(lambda: points(drv, "#preview-chart") == 44, what="44 preview points")
    wait(
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
    wait(
        lambda: "longer than training" in drv.find_element("css selector", warmup_err).text,
        what="the preview's 422 beside schedule.warmup.epochs",
    )
    drv.find_element("id", "submit-job").click()
    wait(lambda: drv.find_element("id", "form-error").text, what="the submit's 422")
    assert "longer than training" in drv.find_element("css selector", warmup_err).text
    assert "#/jobs/" not in drv.current_url

    set_value(drv, "schedule.warmup.epochs", "0.5")
    wait(
        lambda: (
            not drv.find_element("css selector", warmup_err).text
            and "44 steps" in drv.find_element("id", "preview-info").text
        ),
        what="the field error to clear and the preview to come back",
    )
    drv.save_screenshot(str(ARTIFACTS / "dashboard-designer.png"))
    drv.find_element("id", "submit-job").click()
    m = wait(
        lambda: re.search(r"#/jobs/(j[0-9a-f]+)", drv.current_url),
        what="navigation to the new job",
    )
    job_id = m.group(1)

    # ------------------------------------------------------------ the list
    drv.find_element("css selector", '[data-nav="jobs"]').click()
    row = wait(
        lambda: drv.find_element("css selector", f'#jobs-table tr[data-id="{job_id}"]'),
        what="the job's row in the list",
    )
    assert name in row.text
    row.find_element("css selector", "a.job-link").click()

    # ------------------------------------------------------------- the job
    wait(lambda: job_id in drv.current_url, what="the job page")
    wait(lambda: points(drv, "#chart-loss") > 0, timeout=120, what="loss points")
    wait(
        lambda: drv.find_element("css selector", "#view .badge").text == "succeeded",
        timeout=120,
        what="the job to succeed",
    )
    # 2 epochs: train_loss every 5 steps plus 2 val_loss points; lr planned + actual
    wait(lambda: points(drv, "#chart-loss") >= 6, what="train and val loss points")
    wait(lambda: points(drv, "#chart-lr") >= 44, what="the planned lr curve")
    wait(
        lambda: drv.execute_script(COLOURED_PIXELS_JS, "#chart-loss", *SERIES_RGB) > 30,
        what="the train_loss line on the canvas",
    )
    assert drv.find_element("id", "job-name").text == name
    assert '"dataset": "digits"' in drv.find_element("id", "job-spec").text
    assert drv.find_element("id", "download-model").is_displayed()
    time.sleep(0.3)
    drv.save_screenshot(str(ARTIFACTS / "dashboard-job.png"))

    # --------------------------------------------------------- compare view
    drv.get(f"{base_url}/#/compare?ids={job_id}&metric=val_acc&x=epoch")
    wait(lambda: points(drv, "#compare-chart") >= 2, what="val_acc points in compare")
    assert name in drv.find_element("id", "compare-table").text
    drv.save_screenshot(str(ARTIFACTS / "dashboard-compare.png"))
