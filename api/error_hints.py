"""Hints that turn pydantic's and the JSON decoder's messages into ones that say what to do.

FastAPI reports a trailing comma as "30: JSON decode error", a body sent without a JSON
content type as "Input should be a valid dictionary", a misspelt field as "Extra inputs
are not permitted". `hinted` rewrites the `msg` of those errors (the loc stays), so the
error shape is unchanged and every client (CLI, dashboard, curl) shows the better text.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

JSON_TYPE = "send the spec as JSON with Content-Type: application/json"
_NOT_AN_OBJECT = {"model_attributes_type", "dict_type", "model_type"}


def hinted(
    errors: list[dict[str, Any]], *, body: Any, content_type: str | None, model: Any
) -> list[dict[str, Any]]:
    """Copies of FastAPI's raw errors with a `msg` that says where and what to do."""
    out = []
    for e in errors:
        msg = _hint(e, body=body, content_type=content_type, model=model)
        out.append({**e, "msg": msg} if msg else e)
    return out


def _hint(e: dict[str, Any], *, body: Any, content_type: str | None, model: Any) -> str | None:
    loc = list(e.get("loc") or ())
    path = loc[1:] if loc and loc[0] == "body" else loc
    kind = e.get("type")
    if kind == "json_invalid" and path and isinstance(path[0], int):
        return json_syntax(body if isinstance(body, str) else "", path[0], _ctx_error(e))
    if not path and kind in _NOT_AN_OBJECT and not is_json(content_type):
        return f"{JSON_TYPE} (got: {content_type or 'none'})"
    if not path and kind == "missing":
        return f"the body is empty: {JSON_TYPE}"
    if kind == "extra_forbidden" and path and isinstance(path[-1], str):
        return extra_field(e.get("msg") or "Extra inputs are not permitted", path, model)
    return None


def _ctx_error(e: dict[str, Any]) -> str:
    return str((e.get("ctx") or {}).get("error") or "invalid JSON")


def is_json(content_type: str | None) -> bool:
    """application/json or any application/*+json, as FastAPI decides to parse a body."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


# ------------------------------------------------------------------------ JSON syntax


def json_syntax(doc: str, pos: int, decoder_msg: str) -> str:
    """'JSON syntax error at line 2, column 5 (character 30): <what>; <what to do>'."""
    line = doc.count("\n", 0, pos) + 1
    col = pos - (doc.rfind("\n", 0, pos) + 1) + 1
    where = f"JSON syntax error at line {line}, column {col} (character {pos})"
    return f"{where}: {_what(doc, pos, decoder_msg)}"


def _what(doc: str, pos: int, decoder_msg: str) -> str:
    here = doc[pos : pos + 1]
    before = doc[:pos].rstrip()
    if before.endswith(",") and here in ("}", "]"):
        return f"trailing comma before '{here}'; JSON does not allow trailing commas: remove it"
    if here == "'":
        return f'{decoder_msg}; JSON strings and keys use double quotes ("), not single quotes'
    if pos >= len(doc.rstrip()):
        return f"{decoder_msg}; the body ends early: close every {{ and [ and every string"
    if decoder_msg == "Extra data":
        return f"{decoder_msg} after the JSON value; send one object and remove the rest"
    return f"{decoder_msg}; fix the JSON there (`python -m json.tool FILE` shows the same spot)"


# ---------------------------------------------------------------------- misspelt fields


def extra_field(msg: str, path: list[Any], model: Any) -> str:
    """'Extra inputs are not permitted; did you mean `regularization`?' where one is close."""
    names = field_names(model, path[:-1])
    if not names:
        return msg
    close = difflib.get_close_matches(path[-1], sorted(names), n=1, cutoff=0.6)
    if close:
        return f"{msg}; did you mean `{close[0]}`?"
    return f"{msg}; the fields here are: {', '.join(sorted(names))}"


def field_names(model: Any, path: list[Any]) -> set[str]:
    """The field names (and aliases) of the model(s) at `path` under `model`.

    The path is pydantic's raw loc: field names, list indexes, dict keys and the tags of
    discriminated unions (optimizer.sgd.lrr); unknown steps keep the models found so far.
    """
    models = models_in(model)
    for part in path:
        if isinstance(part, int):
            continue  # a list index: models_in already looked inside the list
        below = [sub for m in models for f in _fields(m, part) for sub in models_in(f.annotation)]
        if below:
            models = below
            continue
        tagged = [m for m in models if _has_tag(m, part)]
        if tagged:
            models = tagged  # a union tag: the member it names
        # else a dict key: the dict's value models are already in `models`
    names: set[str] = set()
    for m in models:
        for name, f in m.model_fields.items():
            names.add(f.alias or name)
    return names


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model an annotation can hold (through Optional, unions, lists, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        out += models_in(arg)
    return out


def _fields(m: type[BaseModel], part: str) -> list[Any]:
    return [f for name, f in m.model_fields.items() if part in (name, f.alias)]


def _has_tag(m: type[BaseModel], part: str) -> bool:
    return any(
        get_origin(f.annotation) is Literal and part in get_args(f.annotation)
        for f in m.model_fields.values()
    )
