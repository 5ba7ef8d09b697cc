"""The "Use this lr" button of an LR range test's page opens the designer, submitting
nothing, with the test's base spec as a training job: its data, model, optimizer and
regularization, optimizer.lr = the suggestion to 2 significant digits, and the designer's defaults
for epochs and the schedule (not the test's 5 epochs). A real headless Chromium against
the `service` stack; the screenshot goes to docs/screenshots/ for a human look."""

from __future__ import annotations

import time

import pytest
from support import ROOT, wait_done, wait_for

from tricks.spec import JobSpec

pytestmark = pytest.mark.service

SHOTS = ROOT / "docs" / "screenshots"

# examples/lr_range_test.json, shorter, with a model and regularization of its own
RANGE = {
    "name": "LR range: handoff e2e",
    "task": "lr_range_test",
    "data": {"dataset": "digits", "val_fraction": 0.2},
    "model": {"arch": "mlp", "hidden": [48, 24], "batch_norm": False},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.8, "nesterov": True},
    "regularization": {"label_smoothing": 0.05},
    "lr_range": {"min_lr": 1e-4, "max_lr": 10.0, "steps": 60},
    "training": {"epochs": 5, "batch_size": 32, "seed": 0, "log_every": 5, "device": "cpu"},
}


def value(drv, key: str) -> str:
    return drv.find_element(
        "css selector", f'.field[data-key="{key}"] input, .field[data-key="{key}"] select'
    ).get_attribute("value")


def test_use_this_lr_opens_the_designer_with_the_base_spec_and_a_rounded_lr(browser, service):
    with service.client() as c:
        r = c.post("/jobs", json=RANGE)
        assert r.status_code == 201, r.text
        done = wait_done(c, r.json()["id"])
        assert done["status"] == "succeeded", done["error"]
        suggested = done["result"]["suggested_lr"]
        jobs_before = c.get("/jobs", params={"limit": 200}).json()["count"]

    drv = browser
    drv.get(f"{service.api_url}/#/jobs/{done['id']}")
    button = wait_for(lambda: drv.find_element("id", "use-lr"), what='"Use this lr"')
    rounded = float(f"{suggested:.2g}")  # 2 significant digits, by Python's formatting
    assert f"({rounded:g})" in button.text
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    drv.save_screenshot(str(ROOT / "test-artifacts" / "rangetest-page.png"))
    button.click()
    wait_for(lambda: "#/new" in drv.current_url, what="the designer")
    wait_for(
        lambda: value(drv, "optimizer.lr") and float(value(drv, "optimizer.lr")) == rounded,
        what=f"optimizer.lr = {rounded}",
    )
    assert value(drv, "optimizer.lr") == f"{rounded:g}"  # no 0.432876128108306 left in it

    # the range test's model, data, optimizer and regularization came along
    assert value(drv, "model.arch") == "mlp" and value(drv, "mlp.hidden") == "48, 24"
    assert value(drv, "data.dataset") == "digits"
    assert value(drv, "optimizer.name") == "sgd" and float(value(drv, "optimizer.momentum")) == 0.8
    assert float(value(drv, "reg.label_smoothing")) == 0.05
    assert value(drv, "training.batch_size") == "32"
    # epochs and the schedule are the designer's defaults (the schema's), not the test's
    defaults = JobSpec.model_validate({"data": {"dataset": "digits"}})
    assert value(drv, "training.epochs") == str(defaults.training.epochs) != "5"
    assert value(drv, "schedule.decay.kind") == defaults.schedule.decay.kind
    assert value(drv, "_warmup") == "none"
    assert value(drv, "name") == f"handoff e2e @ lr {rounded:g}"
    # the designer previews the new job; nothing was submitted
    wait_for(
        lambda: f"{defaults.training.epochs} epochs" in drv.find_element("id", "preview-info").text,
        what="the preview of the default epochs",
    )
    with service.client() as c:
        assert c.get("/jobs", params={"limit": 200}).json()["count"] == jobs_before
    assert "#/new" in drv.current_url
    SHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.3)  # screenshots are for a human look: let the last frame paint
    drv.save_screenshot(str(SHOTS / "rangetest-handoff.png"))
