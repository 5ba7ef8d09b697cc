"""plan.parameters (counted without torch) on POST and GET /jobs, and the image archs' 422s.

The counts are hand-computed oracles; tests/tricks/test_params.py checks the formula
against torch for every arch.
"""

from __future__ import annotations

import pytest
from support import assert_error, locs, minimal_spec

# digits: 1×8×8 images (64 features), 10 classes
CASES = [
    # the default MLP [256, 128] with BatchNorm: 64·256 + 2·256 + 256·128 + 2·128 + 128·10 + 10
    ({}, 16384 + 512 + 32768 + 256 + 1280 + 10),
    # ResNet-18 (CIFAR stem) is 11,173,962 for 3-channel inputs; 1 channel has 18·64 fewer weights
    ({"model": {"arch": "resnet18"}}, 11_173_962 - 18 * 64),
]


@pytest.mark.parametrize(("overrides", "parameters"), CASES)
def test_plan_reports_trainable_parameters(client, overrides, parameters):
    r = client.post("/jobs", json={**minimal_spec(), **overrides})
    assert r.status_code == 201, r.text
    assert r.json()["plan"]["parameters"] == parameters
    got = client.get(f"/jobs/{r.json()['id']}")
    assert got.status_code == 200 and got.json()["plan"]["parameters"] == parameters


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        (
            {**minimal_spec(), "model": {"arch": "wide_resnet", "depth": 27}},
            ["model", "depth"],
            "divisible by 6",
        ),
        (
            {"data": {"dataset": "moons"}, "model": {"arch": "resnet18"}},
            ["model", "arch"],
            "tabular",
        ),
        (
            {"data": {"dataset": "waves"}, "model": {"arch": "airbench"}},
            ["model", "arch"],
            "sequence",
        ),
        (
            {**minimal_spec(), "model": {"arch": "resnet34", "stem": "huge"}},
            ["model", "stem"],
            "cifar",
        ),
        (
            {**minimal_spec(), "model": {"arch": "airbench", "widths": [64, 256]}},
            ["model", "widths"],
            "at least 3",
        ),
    ],
)
def test_bad_image_models_are_422_naming_the_field(client, body, loc, words):
    err = assert_error(client.post("/jobs", json=body), 422, "validation_error")
    assert loc in locs(err), err
    detail = next(d for d in err["details"] if d["loc"] == loc)
    assert words.lower() in detail["msg"].lower(), detail


def test_new_model_fields_have_bounds_and_descriptions_in_openapi(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    wrn = schemas["WideResNetSpec"]["properties"]
    for name in ("depth", "widen_factor"):
        assert {"minimum", "maximum", "description"} <= set(wrn[name]), wrn[name]
    assert "description" in wrn["zero_init_residual"]
    assert schemas["ResNet18Spec"]["properties"]["stem"]["description"]
    widths = schemas["AirbenchSpec"]["properties"]["widths"]
    assert widths["minItems"] == widths["maxItems"] == 3 and widths["items"]["maximum"] == 1024
    assert "description" in schemas["Plan"]["properties"]["parameters"]
