"""Errors for the common mistakes say where and what to do, over HTTP against the real API.

A trailing comma, a body sent without a JSON content type and a misspelt field are what
people hit first; each 422 keeps the one error shape (docs/conventions.md, Errors) and its
loc, and its message names the spot and the fix.
"""

from __future__ import annotations

import json

import pytest
from support import assert_error, locs, minimal_spec


def test_trailing_comma_names_line_column_and_fix(client) -> None:
    text = '{\n  "data": {"dataset": "digits",},\n  "training": {"epochs": 3}\n}'
    offset = text.index(",}") + 1  # where the decoder stops: the '}' after the comma
    r = client.post("/jobs", content=text, headers={"content-type": "application/json"})
    err = assert_error(r, 422, "validation_error")
    assert locs(err) == [[offset]]
    msg = err["details"][0]["msg"]
    # counted by hand: 2 spaces, `"data": {` (9), `"dataset": "digits"` (19), `,` → the `}` is column 32
    assert f"line 2, column 32 (character {offset})" in msg, msg
    assert "trailing comma before '}'" in msg and "remove it" in msg, msg
    assert err["message"] == msg  # the summary does not repeat the offset as a field


def test_trailing_comma_in_a_list(client) -> None:
    text = '{"data": {"dataset": "digits"}, "model": {"arch": "mlp", "hidden": [64, ]}}'
    r = client.post("/jobs", content=text, headers={"content-type": "application/json"})
    msg = assert_error(r, 422, "validation_error")["details"][0]["msg"]
    assert "trailing comma before ']'" in msg and f"character {text.index(']')}" in msg, msg


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{'data': {'dataset': 'digits'}}", "double quotes"),
        ('{"data": {"dataset": "digits"}', "ends early"),
        ('{"data": {"dataset" "digits"}}', "Expecting ':' delimiter"),
    ],
)
def test_other_syntax_errors_keep_the_decoders_words_and_position(client, text, says) -> None:
    r = client.post("/jobs", content=text, headers={"content-type": "application/json"})
    err = assert_error(r, 422, "validation_error")
    (pos,) = locs(err)[0]
    try:
        json.loads(text)
    except json.JSONDecodeError as e:  # the oracle: Python's own decoder
        assert pos == e.pos
        assert f"line {e.lineno}, column {e.colno} (character {e.pos})" in err["message"]
    assert says in err["message"], err["message"]


@pytest.mark.parametrize("content_type", [None, "text/plain"])
def test_body_without_json_content_type_says_to_send_json(api, content_type) -> None:
    import httpx

    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps(minimal_spec()).encode()
    # httpx sets no content type for raw bytes
    r = httpx.post(f"{api.url}/jobs", content=body, headers=headers, timeout=30)
    err = assert_error(r, 422, "validation_error")
    want = (
        f"send the spec as JSON with Content-Type: application/json (got: {content_type or 'none'})"
    )
    assert err["details"] == [{"loc": [], "msg": want}], err


def test_empty_json_body_says_what_to_send(client) -> None:
    r = client.post("/jobs", content=b"", headers={"content-type": "application/json"})
    assert "the body is empty" in assert_error(r, 422)["message"]


@pytest.mark.parametrize(
    ("section", "value", "loc", "hint"),
    [
        ("regularisation", {"dropout": 0.1}, ["regularisation"], "regularization"),
        (
            "optimizer",
            {"name": "sgd", "lr": 0.1, "momentun": 0.9},
            ["optimizer", "momentun"],
            "momentum",
        ),
        ("optimizer", {"name": "adam", "betaz": [0.9, 0.99]}, ["optimizer", "betaz"], "betas"),
        (
            "schedule",
            {"decay": {"kind": "cosine", "minlr": 0.0}},
            ["schedule", "decay", "minlr"],
            "min_lr",
        ),
        ("model", {"arch": "mlp", "hiden": [8]}, ["model", "hiden"], "hidden"),
        (
            "regularization",
            {"mixup": {"alpah": 0.2}},
            ["regularization", "mixup", "alpah"],
            "alpha",
        ),
    ],
)
def test_misspelt_field_suggests_the_right_one(client, section, value, loc, hint) -> None:
    r = client.post("/jobs", json={**minimal_spec(), section: value})
    err = assert_error(r, 422, "validation_error")
    assert locs(err) == [loc]
    assert err["details"][0]["msg"] == f"Extra inputs are not permitted; did you mean `{hint}`?"


def test_unknown_field_with_nothing_close_lists_the_fields(client) -> None:
    r = client.post("/jobs", json={**minimal_spec(), "training": {"epochs": 3, "zzz": 1}})
    msg = assert_error(r, 422)["details"][0]["msg"]
    assert msg.startswith("Extra inputs are not permitted; the fields here are: ")
    assert "batch_size" in msg and "epochs" in msg and "did you mean" not in msg


def test_misspelt_sweep_field(client) -> None:
    body = {"base": minimal_spec(), "grid": {"optimizer.lr": [0.1]}, "seedz": 2}
    r = client.post("/sweeps", json=body)
    err = assert_error(r, 422, "validation_error")
    assert err["details"] == [
        {"loc": ["seedz"], "msg": "Extra inputs are not permitted; did you mean `seeds`?"}
    ]


def test_specs_validated_inside_a_route_get_the_same_hints() -> None:
    """api.errors.spec_errors: what a sweep's variants or a search's base can use."""
    from pydantic import ValidationError

    from api.errors import spec_errors
    from tricks.spec import JobSpec

    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate({**minimal_spec(), "optimizer": {"name": "sgd", "nesterof": True}})
    assert spec_errors(e.value, JobSpec) == [
        {
            "loc": ["optimizer", "nesterof"],
            "msg": "Extra inputs are not permitted; did you mean `nesterov`?",
            "type": "extra_forbidden",
        }
    ]
