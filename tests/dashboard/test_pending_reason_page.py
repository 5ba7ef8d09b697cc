"""The dashboard shows why a queued job waits (`pending_reason`): on its row in the jobs
list and on its page. A real headless Chromium against the `service` stack, whose one
worker serves only the cpu queue, so a `device: cuda` job waits for a GPU worker."""

from __future__ import annotations

import httpx
import pytest
from support import plain_spec, wait_for

pytestmark = pytest.mark.service

WANT = "no live worker serves the gpu queue"


def test_list_and_job_page_show_the_pending_reason(browser, service, cleanup):
    with httpx.Client(base_url=service.api_url, timeout=30) as c:
        r = c.post("/jobs", json=plain_spec(device="cuda"))
        assert r.status_code == 201, r.text
        job_id = cleanup.job(r.json())["id"]
        wait_for(
            lambda: WANT in (c.get(f"/jobs/{job_id}").json()["pending_reason"] or ""),
            30,
            0.2,
            what="the API to give the reason",
        )
    drv = browser
    drv.get(f"{service.api_url}/#/jobs")
    row = wait_for(
        lambda: drv.find_element("css selector", f'#jobs-table tr[data-id="{job_id}"]'),
        what="the job's row in the list",
    )
    wait_for(
        lambda: WANT in row.find_element("css selector", ".pending-reason").text,
        what="the reason on the row",
    )
    drv.get(f"{service.api_url}/#/jobs/{job_id}")
    wait_for(
        lambda: WANT in drv.find_element("id", "pending-reason").text,
        what="the reason on the job page",
    )
