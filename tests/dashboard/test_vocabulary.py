"""The dashboard takes the spec's vocabulary from GET /openapi.json, not from a copy of its own.

In a real headless Chromium against the real API (no worker: nothing trains). The
expected values are read here from the document the API serves, by hand (a
component, its oneOf, its discriminator mapping), not through the dashboard's code:

- the designer's selects list exactly the schema's values: the decay kinds of the
  ScheduleSpec.decay discriminator, model archs, optimizer names, plain enums;
- its number inputs carry the schema's bounds (min/max) and defaults, and the help
  under a field is the schema's description;
- picking a decay kind shows exactly that kind's parameters; picking another
  optimizer gives lr and weight_decay that optimizer's schema defaults;
- the jobs list's status filter lists the JobStatus enum.

Then the page is fed a document with a decay kind and a job status that no JS file
names (its fetch of /openapi.json answered with an edited copy): the new kind is in
the decay select, picking it shows its own parameter with the bounds and default the
edited schema gives, and the status filter lists the new status.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import httpx
import pytest
from support import ApiProc, launch_api, wait_for

DB = 12  # 0 service, 1 api, 5/6 security, 7 dashboard auth, 11 submit path
REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def vocab_api(browser, redis_server, tmp_path_factory) -> Iterator[ApiProc]:
    """After `browser`, so a missing Chromium skips before any process starts."""
    p = launch_api(redis_server.port, tmp_path_factory, DB, "dashboard-vocab-api")
    yield p
    p.proc.stop()


@pytest.fixture(scope="module")
def doc(vocab_api) -> dict:
    r = httpx.get(f"{vocab_api.url}/openapi.json", timeout=10)
    assert r.status_code == 200
    return r.json()


# ----------------------------------------------------- the document, read by hand


def component(doc: dict, name: str) -> dict:
    return doc["components"]["schemas"][name]


def prop(doc: dict, name: str, field: str) -> dict:
    """A property of a component; a nullable one (anyOf [x, null]) as its x."""
    node = component(doc, name)["properties"][field]
    alts = [a for a in node.get("anyOf", []) if a.get("type") != "null"]
    return alts[0] if len(alts) == 1 else node


def union(doc: dict, name: str, field: str) -> tuple[list[str], dict[str, str]]:
    """A discriminated union property: its tags in oneOf order, and tag -> component name."""
    node = component(doc, name)["properties"][field]
    tag = node["discriminator"]["propertyName"]
    mapping = {k: v.removeprefix(REF) for k, v in node["discriminator"]["mapping"].items()}
    order = [
        component(doc, a["$ref"].removeprefix(REF))["properties"][tag]["const"]
        for a in node["oneOf"]
    ]
    assert sorted(order) == sorted(mapping), "oneOf and the discriminator mapping disagree"
    return order, mapping


# ------------------------------------------------------------------- the page


def field(drv, key: str):
    return drv.find_element("css selector", f'.field[data-key="{key}"]')


def options(drv, select_id: str) -> list[str]:
    sel = drv.find_element("id", select_id)
    return [o.get_attribute("value") for o in sel.find_elements("css selector", "option")]


def pick(drv, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(drv.find_element("id", select_id)).select_by_value(value)


VISIBLE_PATHS_JS = """
return [...document.querySelectorAll('#designer-form .field')]
  .filter((f) => f.offsetParent !== null).map((f) => f.dataset.path);
"""


def visible_paths(drv, prefix: str) -> set[str]:
    """The spec paths of the designer's fields that are rendered now (in one round trip)."""
    return {p for p in drv.execute_script(VISIBLE_PATHS_JS) if p.startswith(prefix)}


def assert_number_field(drv, key: str, schema: dict) -> None:
    """The input's min/max are the schema's bounds (inclusive or exclusive); its value the default."""
    el = field(drv, key).find_element("css selector", "input")
    for attr, names in (
        ("min", ("minimum", "exclusiveMinimum")),
        ("max", ("maximum", "exclusiveMaximum")),
    ):
        want = next((schema[n] for n in names if n in schema), None)
        got = el.get_attribute(attr)
        if want is None:
            assert got is None, f"{key}: {attr}={got!r}, the schema has no bound"
        else:
            assert got is not None and float(got) == pytest.approx(want), (
                f"{key}: {attr}={got!r}, schema {want}"
            )
    if "default" in schema:
        assert float(el.get_property("value")) == pytest.approx(schema["default"]), key


def open_designer(drv, url: str) -> None:
    drv.get(url)
    wait_for(lambda: drv.find_element("id", "f-schedule-decay-kind"), what="the designer")


def test_designer_and_jobs_list_use_the_openapi_vocabulary(browser, vocab_api, doc):
    drv = browser
    open_designer(drv, f"{vocab_api.url}/#/new")

    kinds, kind_schema = union(doc, "ScheduleSpec", "decay")
    assert options(drv, "f-schedule-decay-kind") == kinds
    archs, _ = union(doc, "JobSpec", "model")
    assert options(drv, "f-model-arch") == archs
    optimizers, opt_schema = union(doc, "JobSpec", "optimizer")
    assert options(drv, "f-optimizer-name") == optimizers
    for select_id, (name, f) in {
        "f-schedule-per": ("ScheduleSpec", "per"),
        "f-training-device": ("TrainingSpec", "device"),
        "f-training-precision": ("TrainingSpec", "precision"),
        "f-es-metric": ("EarlyStoppingSpec", "metric"),
    }.items():
        assert options(drv, select_id) == prop(doc, name, f)["enum"], select_id

    # bounds and defaults, the optimizer's and the decay's for the ones picked at the start
    opt = opt_schema[drv.find_element("id", "f-optimizer-name").get_property("value")]
    decay = kind_schema[drv.find_element("id", "f-schedule-decay-kind").get_property("value")]
    for key, (name, f) in {
        "optimizer.lr": (opt, "lr"),
        "optimizer.weight_decay": (opt, "weight_decay"),
        "decay.min_lr": (decay, "min_lr"),
        "data.val_fraction": ("DataSpec", "val_fraction"),
        "training.epochs": ("TrainingSpec", "epochs"),
        "training.batch_size": ("TrainingSpec", "batch_size"),
        "training.grad_clip": ("TrainingSpec", "grad_clip"),
        "reg.dropout": ("RegularizationSpec", "dropout"),
        "reg.label_smoothing": ("RegularizationSpec", "label_smoothing"),
        "schedule.warmup.epochs": ("WarmupSpec", "epochs"),
        "lr_range.steps": ("LRRangeSpec", "steps"),
        "lr_range.max_lr": ("LRRangeSpec", "max_lr"),
    }.items():
        assert_number_field(drv, key, prop(doc, name, f))
    lr_help = field(drv, "optimizer.lr").find_element("css selector", ".help").text
    assert lr_help == prop(doc, opt, "lr")["description"]

    # each decay kind shows exactly its own parameters, with its bounds
    for kind in kinds:
        pick(drv, "f-schedule-decay-kind", kind)
        params = set(component(doc, kind_schema[kind])["properties"]) - {"kind"}
        assert visible_paths(drv, "schedule.decay.") == {"schedule.decay.kind"} | {
            f"schedule.decay.{p}" for p in params
        }, kind
    pick(drv, "f-schedule-decay-kind", "step")
    assert_number_field(drv, "step.step_epochs", prop(doc, kind_schema["step"], "step_epochs"))

    # another optimizer: its own defaults, bounds and help
    other = next(
        o
        for o in optimizers
        if prop(doc, opt_schema[o], "lr")["default"] != prop(doc, opt, "lr")["default"]
    )
    pick(drv, "f-optimizer-name", other)
    for key, f in (("optimizer.lr", "lr"), ("optimizer.weight_decay", "weight_decay")):
        assert_number_field(drv, key, prop(doc, opt_schema[other], f))
    params = set(component(doc, opt_schema[other])["properties"]) - {"name"}
    assert visible_paths(drv, "optimizer.") == {"optimizer.name"} | {
        f"optimizer.{p}" for p in params
    }

    # the jobs list's status filter
    drv.get(f"{vocab_api.url}/#/")
    wait_for(lambda: drv.find_element("id", "status-filter"), what="the jobs list")
    assert options(drv, "status-filter") == ["", *component(doc, "JobStatus")["enum"]]


# Answers the page's own fetch of /openapi.json with `doc`; every other request goes out.
FEED_JS = """
const doc = %s;
const realFetch = window.fetch.bind(window);
window.fetch = (input, init) => {
  const url = new URL(typeof input === "string" ? input : input.url, location.href);
  if (url.origin === location.origin && url.pathname === "/openapi.json")
    return Promise.resolve(new Response(JSON.stringify(doc), { headers: { "Content-Type": "application/json" } }));
  return realFetch(input, init);
};
"""

SHARP = {
    "properties": {
        "kind": {"type": "string", "const": "sharp", "title": "Kind", "default": "sharp"},
        "sharpness": {
            "type": "number",
            "minimum": 0.5,
            "exclusiveMaximum": 8.0,
            "title": "Sharpness",
            "description": "How fast the lr falls off the cliff.",
            "default": 2.5,
        },
        "min_lr": {"type": "number", "minimum": 0.0, "maximum": 100.0, "default": 0.0},
    },
    "additionalProperties": False,
    "type": "object",
    "title": "SharpDecay",
}


def test_a_decay_kind_and_a_status_new_to_the_js_show_up(browser, vocab_api, doc):
    drv = browser
    edited = copy.deepcopy(doc)
    edited["components"]["schemas"]["SharpDecay"] = SHARP
    decay = edited["components"]["schemas"]["ScheduleSpec"]["properties"]["decay"]
    decay["oneOf"].append({"$ref": f"{REF}SharpDecay"})
    decay["discriminator"]["mapping"]["sharp"] = f"{REF}SharpDecay"
    edited["components"]["schemas"]["JobStatus"]["enum"].append("stopped_early")

    script = drv.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": FEED_JS % json.dumps(edited)}
    )
    try:
        # a query string: a real page load (a hash change alone would keep the old page)
        open_designer(drv, f"{vocab_api.url}/?edited=1#/new")
        kinds, _ = union(edited, "ScheduleSpec", "decay")
        assert options(drv, "f-schedule-decay-kind") == kinds and "sharp" in kinds
        assert not visible_paths(drv, "schedule.decay.sharpness")

        pick(drv, "f-schedule-decay-kind", "sharp")
        assert visible_paths(drv, "schedule.decay.") == {
            "schedule.decay.kind",
            "schedule.decay.sharpness",
            "schedule.decay.min_lr",
        }
        sharp = drv.find_element("css selector", '.field[data-path="schedule.decay.sharpness"]')
        assert sharp.find_element("css selector", "label").text == "Sharpness"
        assert (
            sharp.find_element("css selector", ".help").text
            == SHARP["properties"]["sharpness"]["description"]
        )
        key = sharp.get_attribute("data-key")
        assert_number_field(drv, key, SHARP["properties"]["sharpness"])

        drv.get(f"{vocab_api.url}/?edited=2#/")
        wait_for(lambda: drv.find_element("id", "status-filter"), what="the jobs list")
        assert options(drv, "status-filter")[-1] == "stopped_early"
    finally:
        drv.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", script)
