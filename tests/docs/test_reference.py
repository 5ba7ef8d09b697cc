"""docs/reference.md is what docs/gen_reference.py makes from the code today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_reference", ROOT / "docs" / "gen_reference.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_reference_is_up_to_date():
    committed = (ROOT / "docs" / "reference.md").read_text()
    assert committed == _generator().render(), (
        "docs/reference.md is stale: run `python docs/gen_reference.py` and commit it"
    )


def test_reference_names_every_decay_kind_and_arch():
    """An independent read of the spec models: each kind and arch has its row."""
    from tricks.spec import JobSpec

    text = (ROOT / "docs" / "reference.md").read_text()
    defs = JobSpec.model_json_schema()["$defs"]
    kinds = [d["properties"]["kind"]["const"] for n, d in defs.items() if n.endswith("Decay")]
    archs = [
        d["properties"]["arch"]["const"] for d in defs.values() if "arch" in d.get("properties", {})
    ]
    assert kinds and archs
    for k in kinds:
        assert f"`{k}`" in text, k
    for a in archs:
        assert f"`{a}`" in text, a
    assert "| POST | `/jobs` |" in text and "`schedule.warmup.epochs`" in text
