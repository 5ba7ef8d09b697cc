"""Every dashboard page and /docs load with the network off: a real Chromium in which no
host name but the API's resolves, against the real service.

Each page must render its view (no error box), and every resource it fetched (scripts,
styles, fonts, images, API calls) must come from the API's own origin."""

from __future__ import annotations

import shutil
import tempfile

import pytest
from support import plain_spec, submit, wait_done, wait_for

from tests.dashboard.conftest import FLAGS, find_chromium

pytestmark = pytest.mark.service

# every host name fails to resolve: what a machine without internet sees
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@pytest.fixture(scope="module")
def offline_browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    found = find_chromium()
    if not found:
        pytest.skip("no Chromium: apt-get install -y chromium chromium-driver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service as ChromeService

    profile = tempfile.mkdtemp(prefix="tricklab-chromium-offline-")
    opts = Options()
    opts.binary_location = found[0]
    for f in [*FLAGS, OFFLINE, f"--user-data-dir={profile}"]:
        opts.add_argument(f)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=ChromeService(executable_path=found[1]), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_the_resolver_really_is_offline(offline_browser):
    """The oracle of the test below: an outside host cannot be reached from this browser."""
    drv = offline_browser
    drv.get("about:blank")
    status = drv.execute_async_script(
        "const done = arguments[0];"
        "fetch('https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui.css', {mode: 'no-cors'})"
        ".then(() => done('reached'), (e) => done('failed: ' + e));"
    )
    assert status.startswith("failed"), status


def test_every_page_and_docs_load_from_the_api_alone(offline_browser, service):
    drv = offline_browser
    drv.get_log("browser")  # drain: the probe above failed on purpose
    base = service.api_url  # an IP literal: the resolver rules leave it alone
    with service.client() as c:
        job = submit(c, plain_spec(epochs=1))
        assert wait_done(c, job["id"])["status"] == "succeeded"
    jid = job["id"]
    pages = [
        "/#/",
        f"/#/jobs/{jid}",
        "/#/new",
        f"/#/compare?ids={jid}",
        "/#/sweeps",
        "/#/sweeps/new",
        "/#/searches",
        "/#/datasets",
        "/#/datasets/digits",
    ]
    for page in pages:
        drv.get("about:blank")
        drv.get(base + page)

        def rendered():
            return drv.execute_script(
                "const v = document.getElementById('view');"
                "return v && v.children.length > 0 &&"
                " ![...v.querySelectorAll('.formerror')].some((e) => e.textContent.trim());"
            )

        wait_for(rendered, 20, 0.2, what=f"{page} to render")
        wait_for(
            lambda: drv.execute_script("return document.readyState") == "complete",
            20,
            0.2,
            what=f"{page} to finish loading",
        )
        fetched = drv.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert fetched, page  # the page did load its modules
        foreign = [u for u in fetched if not u.startswith(base)]
        assert not foreign, f"{page} fetched from elsewhere: {foreign}"
    drv.get(base + "/docs")
    wait_for(
        lambda: drv.execute_script("return !!document.querySelector('.swagger-ui .info')"),
        30,
        0.2,
        what="Swagger UI to render /openapi.json",
    )
    fetched = drv.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(u.endswith("/openapi.json") for u in fetched), fetched
    assert all(u.startswith(base) for u in fetched), fetched
    errors = [
        e["message"]
        for e in drv.get_log("browser")
        if e.get("level") == "SEVERE" and "ERR_NAME_NOT_RESOLVED" in e["message"]
    ]
    assert not errors, errors
