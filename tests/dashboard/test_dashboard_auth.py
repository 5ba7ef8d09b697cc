"""The dashboard in a real headless Chromium against an API with TRICKLAB_AUTH=required.

A key made by the real `tricklab keys create`, a job submitted with it (no worker: it
stays queued). The browser loads `/`, meets the 401, gets the in-page key prompt
(a <dialog>), the key is typed into it as a user would, and the jobs list shows the
job. A reload lists it again without a prompt (the key is kept in localStorage). A
wrong key set through the "API key" button brings the prompt back on the next poll;
dismissing it with Escape leaves the jobs page with the error (not stuck), and the
prompt returns so the right key can be entered. Screenshots: test-artifacts/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from support import ROOT, ApiProc, launch_api, minimal_spec, wait_for

ARTIFACTS = ROOT / "test-artifacts"
DB = 7  # 0 service, 1 api, 5/6 security
SPEC = {"name": "auth dashboard job", **minimal_spec()}
WRONG_KEY = "tl_000000000000_" + "0" * 48


@pytest.fixture(scope="module")
def auth_api(browser, redis_server, tmp_path_factory) -> Iterator[ApiProc]:
    """After `browser`, so a missing Chromium skips before any process starts."""
    p = launch_api(
        redis_server.port, tmp_path_factory, DB, "dashboard-auth-api", TRICKLAB_AUTH="required"
    )
    yield p
    p.proc.stop()


def make_key(api: ApiProc, name: str) -> str:
    """`tricklab keys create NAME --json` through the real console entry point."""
    res = subprocess.run(
        [sys.executable, "-c", "import sys; from tricklab.client.cli import main; sys.exit(main())",
         "keys", "create", name, "--json"],
        env=api.env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["key"]


def jobs_polls(drv) -> int:
    """How many GET /jobs the page has sent since it loaded (its resource timing entries)."""
    return drv.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter((e) => e.name.includes('/jobs?')).length"
    )


def dialog_open(drv) -> bool:
    return drv.execute_script("return document.getElementById('key-dialog').open")


def enter_key(drv, key: str) -> None:
    """Type into the prompt's field and press its Save button, as a user would."""
    field = drv.find_element("id", "key-input")
    assert field.is_displayed()
    field.clear()
    field.send_keys(key)
    drv.find_element("css selector", '#key-form button[type="submit"]').click()
    wait_for(lambda: not dialog_open(drv), what="the prompt to close")


def test_key_prompt_on_401_then_kept_across_reloads(browser, auth_api):
    from selenium.webdriver.common.keys import Keys

    drv = browser
    ARTIFACTS.mkdir(exist_ok=True)
    url = auth_api.url
    key = make_key(auth_api, "dashboard-e2e")
    assert httpx.get(f"{url}/jobs", timeout=10).status_code == 401
    r = httpx.post(f"{url}/jobs", json=SPEC, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    row = f'#jobs-table tr[data-id="{job_id}"]'

    # ------------------------------------------- first visit: 401 → the prompt
    drv.get(f"{url}/")
    wait_for(lambda: dialog_open(drv), what="the key prompt after the API's 401")
    assert "401" in drv.find_element("id", "key-reason").text
    assert not drv.find_elements("css selector", row)
    drv.save_screenshot(str(ARTIFACTS / "dashboard-auth-prompt.png"))
    enter_key(drv, key)
    listed = wait_for(lambda: drv.find_element("css selector", row), what="the job in the list")
    assert SPEC["name"] in listed.text and "queued" in listed.text
    assert drv.execute_script("return localStorage.getItem('tricklab.apiKey')") == key

    # ------------------------------------------------ reload: no prompt
    drv.refresh()
    wait_for(lambda: drv.find_element("css selector", row), what="the job after a reload")
    assert not dialog_open(drv)
    # Two more polls with the kept key, still no prompt: the second is sent only once the
    # first has been handled (a 401 would have held it behind the prompt).
    polled = jobs_polls(drv)
    wait_for(lambda: jobs_polls(drv) >= polled + 2, what="two more polls of the jobs list")
    assert not dialog_open(drv) and drv.find_elements("css selector", row)

    # ---------------------- a wrong key: the prompt again, Escape is not a dead end
    drv.find_element("id", "api-key-button").click()
    wait_for(lambda: dialog_open(drv), what="the prompt from the API key button")
    enter_key(drv, WRONG_KEY)
    wait_for(lambda: dialog_open(drv), what="the prompt again after the wrong key's 401", timeout=6)
    assert "401" in drv.find_element("id", "key-reason").text
    drv.find_element("id", "key-input").send_keys(Keys.ESCAPE)
    wait_for(lambda: not dialog_open(drv), what="Escape to close the prompt")
    note = wait_for(
        lambda: (
            "unknown, malformed or revoked"
            in (t := drv.find_element("css selector", ".formerror").text)
            and t
        ),
        what="the 401's message on the jobs page",
    )
    assert note.startswith("Could not load jobs")
    assert drv.find_element("id", "jobs-table").is_displayed()
    # the next poll asks again (the prompt is not left waiting forever)
    wait_for(lambda: dialog_open(drv), what="the prompt on the next poll", timeout=6)
    enter_key(drv, key)
    wait_for(
        lambda: (
            not drv.find_element("css selector", ".formerror").text
            and drv.find_element("css selector", row)
        ),
        what="the list back with the right key",
    )
    assert not dialog_open(drv)
    time.sleep(0.3)  # screenshots are for a human look: let the last frame paint
    drv.save_screenshot(str(ARTIFACTS / "dashboard-auth.png"))
