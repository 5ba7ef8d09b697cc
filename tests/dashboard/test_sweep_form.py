"""A sweep launched from the dashboard, in a real headless Chromium against the real API,
Redis and worker: the "New sweep" link on the sweeps list, the form (the designer's fields
as the base, one axis of two values), a 422 shown beside the axis row it names, then a
2-variant sweep that lands on its page; and a base pasted as JSON.

Needs Debian's chromium + chromium-driver and selenium; skipped with the reason when they are
missing. TRICKLAB_DASHBOARD_URL runs it against an already running stack instead.
"""

from __future__ import annotations

import json
import os
import re

import httpx
import pytest
from support import ROOT, plain_spec, wait_for

pytestmark = [pytest.mark.service, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
DONE = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def base_url(request) -> str:
    url = os.environ.get("TRICKLAB_DASHBOARD_URL")
    if not url:
        url = request.getfixturevalue("service").api_url
    r = httpx.get(f"{url}/", timeout=10)
    if r.status_code == 404:
        pytest.skip("GET / is 404: the API serves no dashboard")
    return url.rstrip("/")


def set_input(el, value: str) -> None:
    el.clear()
    el.send_keys(value)


def stop_sweep(base_url: str, sid: str) -> None:
    """After a test, pass or fail: leave no child running on the session's one worker."""
    s = httpx.get(f"{base_url}/sweeps/{sid}", timeout=10).json()
    if s["status"] not in DONE:
        httpx.post(f"{base_url}/sweeps/{sid}/cancel", timeout=30)

    def done():
        return httpx.get(f"{base_url}/sweeps/{sid}", timeout=10).json()["status"] in DONE

    wait_for(done, 180, interval=0.5, what=f"sweep {sid} to stop")


def open_form(drv, base_url: str):
    from selenium.webdriver.support.ui import Select

    drv.get(f"{base_url}/#/sweeps")
    link = wait_for(lambda: drv.find_element("id", "new-sweep-link"), what="the New sweep link")
    link.click()
    wait_for(lambda: "#/sweeps/new" in drv.current_url, what="the form's route")
    dataset = wait_for(lambda: drv.find_element("id", "f-data-dataset"), what="the base fields")
    wait_for(
        lambda: "digits" in [o.get_attribute("value") for o in Select(dataset).options],
        what="datasets",
    )
    return drv.find_element("id", "sweep-form")


def first_child(base_url: str, sid: str) -> dict:
    """A child job the sweep has made (it makes max_concurrent at a time)."""

    def one():
        rows = httpx.get(f"{base_url}/jobs", params={"sweep_id": sid}, timeout=10).json()["data"]
        return rows[0] if rows else None

    return wait_for(one, 60, interval=0.3, what=f"a child of sweep {sid}")


def launched(drv):
    if m := re.search(r"#/sweeps/(s[0-9a-f]+)$", drv.current_url):
        return m.group(1)
    msg = drv.find_element("id", "sweep-form-error").text
    assert not msg, [e.text for e in drv.find_elements("css selector", "#sweep-form .err")]
    return None


def test_a_two_variant_sweep_from_the_form(base_url, browser):
    from selenium.webdriver.support.ui import Select

    drv = browser
    ARTIFACTS.mkdir(exist_ok=True)
    form = open_form(drv, base_url)
    Select(drv.find_element("id", "f-data-dataset")).select_by_value("digits")
    epochs = form.find_element("css selector", '.field[data-key="training.epochs"] input')
    set_input(epochs, "1")
    set_input(drv.find_element("id", "sweep-f-name"), "form sweep")
    set_input(drv.find_element("id", "sweep-f-concurrent"), "1")
    row = form.find_element("css selector", ".axis-row")
    # a warm-up of 5 epochs in a 1-epoch run: every variant is a 422 at that axis' path
    set_input(row.find_element("css selector", ".axis-path"), "schedule.warmup.epochs")
    set_input(row.find_element("css selector", ".axis-values"), "5, 6")
    drv.find_element("id", "launch-sweep").click()
    err = wait_for(
        lambda: row.find_element("css selector", ".err").text, what="the 422 by the axis"
    )
    assert "schedule.warmup" in err and "invalid" in row.get_attribute("class"), err
    assert "#/sweeps/new" in drv.current_url

    # the values are not JSON: caught before any request
    set_input(row.find_element("css selector", ".axis-values"), "0.5, oops")
    drv.find_element("id", "launch-sweep").click()
    wait_for(
        lambda: "comma-separated JSON" in row.find_element("css selector", ".err").text,
        what="the values error",
    )

    set_input(row.find_element("css selector", ".axis-path"), "optimizer.lr")
    set_input(row.find_element("css selector", ".axis-values"), "0.02, 0.2")
    drv.save_screenshot(str(ARTIFACTS / "dashboard-sweep-form.png"))
    drv.find_element("id", "launch-sweep").click()
    sid = wait_for(lambda: launched(drv), what="the sweep's page")
    try:
        s = httpx.get(f"{base_url}/sweeps/{sid}", timeout=10).json()
        assert s["name"] == "form sweep" and len(s["variants"]) == 2, s
        assert [v["change"] for v in s["variants"]] == [
            {"optimizer.lr": 0.02},
            {"optimizer.lr": 0.2},
        ]
        # the base is the form's designer fields (max_concurrent 1: one child made so far)
        spec = first_child(base_url, sid)["spec"]
        assert spec["data"]["dataset"] == "digits" and spec["training"]["epochs"] == 1
        assert spec["optimizer"]["lr"] in (0.02, 0.2)
        wait_for(lambda: drv.find_elements("css selector", "h1"), what="the sweep page")
        assert "form sweep" in drv.find_element("css selector", "h1").text
    finally:
        stop_sweep(base_url, sid)


def test_a_sweep_from_pasted_json_with_a_bad_seed_field(base_url, browser):
    drv = browser
    form = open_form(drv, base_url)
    drv.find_element("id", "sweep-base-mode-json").click()
    text = drv.find_element("id", "sweep-base-json")
    # switching carries the designer's spec over as JSON
    assert json.loads(text.get_attribute("value"))["data"]["dataset"] == "digits"
    set_input(text, json.dumps(plain_spec(epochs=1)))
    set_input(drv.find_element("id", "sweep-f-seeds"), "two")
    row = form.find_element("css selector", ".axis-row")
    set_input(row.find_element("css selector", ".axis-path"), "schedule.decay.kind")
    set_input(row.find_element("css selector", ".axis-values"), '"constant", "cosine"')
    drv.find_element("id", "launch-sweep").click()
    seeds = form.find_element("css selector", '.field[data-path="seeds"]')
    wait_for(lambda: seeds.find_element("css selector", ".err").text, what="the 422 by seeds")
    assert "invalid" in seeds.get_attribute("class")
    set_input(drv.find_element("id", "sweep-f-seeds"), "1")
    drv.find_element("id", "launch-sweep").click()
    sid = wait_for(lambda: launched(drv), what="the sweep's page")
    try:
        s = httpx.get(f"{base_url}/sweeps/{sid}", timeout=10).json()
        assert [v["change"] for v in s["variants"]] == [
            {"schedule.decay.kind": "constant"},
            {"schedule.decay.kind": "cosine"},
        ]
        # the base is the pasted JSON, not the designer's defaults
        spec = first_child(base_url, sid)["spec"]
        assert spec["model"]["hidden"] == [32] and spec["training"]["log_every"] == 5
    finally:
        stop_sweep(base_url, sid)
