"""A headless Chromium for the dashboard tests, one fresh profile (own localStorage) per module.

Needs Debian's chromium + chromium-driver (`apt-get install -y chromium
chromium-driver`) and selenium; the tests that use `browser` skip with the reason
when they are missing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def find_chromium() -> tuple[str, str] | None:
    browser = next(
        (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
    )
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return (browser, driver) if browser and driver else None


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
