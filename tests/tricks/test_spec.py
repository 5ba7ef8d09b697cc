"""Spec validation: each bad input is a ValidationError (or SpecError) naming its field.

Pure: no torch, no service. The API turns exactly these into 422s (tests/api).
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from pydantic import ValidationError

from tricks.catalog import builtin_meta
from tricks.spec import (
    JobSpec,
    SpecError,
    check_against_dataset,
    check_schedule,
    validation_errors,
)

BASE = {"data": {"dataset": "digits"}}


def with_(path: str, value) -> dict:
    """BASE with one dotted path set (sections created as needed)."""
    body = {"data": {"dataset": "digits"}}
    *heads, last = path.split(".")
    node = body
    for h in heads:
        node = node.setdefault(h, {})
    node[last] = value
    return body


def errors_of(body: dict) -> list[dict]:
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate(body)
    return validation_errors(e.value)


BAD = [
    # (dotted path, bad value, expected loc, a word the message must contain)
    ("optimizer.lr", 0, "optimizer.lr", "greater than 0"),
    ("optimizer.lr", -0.1, "optimizer.lr", "greater than 0"),
    ("optimizer.lr", math.nan, "optimizer.lr", "finite"),
    ("optimizer.lr", math.inf, "optimizer.lr", "finite"),
    ("optimizer.momentum", 1.0, "optimizer.momentum", "less than 1"),
    ("optimizer.weight_decay", -1e-4, "optimizer.weight_decay", "greater than or equal"),
    ("optimizer.name", "rmsprop", "optimizer", "rmsprop"),
    ("optimizer.betas", [0.9, 0.999], "optimizer.betas", "Extra inputs"),  # sgd has no betas
    ("regularization.dropout", 1.0, "regularization.dropout", "less than 1"),
    ("regularization.dropout", -0.1, "regularization.dropout", "greater than or equal"),
    ("regularization.label_smoothing", 1.0, "regularization.label_smoothing", "less than 1"),
    ("regularization.mixup", {"alpha": 0}, "regularization.mixup.alpha", "greater than 0"),
    ("regularization.l1", math.nan, "regularization.l1", "finite"),
    ("regularization.augment", {"rotate": 400}, "regularization.augment.rotate", "less than"),
    ("training.epochs", 0, "training.epochs", "greater than or equal"),
    ("training.epochs", 10_000, "training.epochs", "less than or equal"),
    ("training.batch_size", 0, "training.batch_size", "greater than or equal"),
    ("training.batch_size", 10**6, "training.batch_size", "less than or equal"),
    ("training.device", "tpu", "training.device", "auto"),
    ("training.precision", "int8", "training.precision", "bf16"),
    ("model.arch", "transformer", "model", "transformer"),
    ("model.hidden", [0], "model.hidden.0", "greater than or equal"),
    ("data.val_fraction", 0.95, "data.val_fraction", "less than"),
    ("data.dataset", "", "data.dataset", "at least 1"),
    ("schedule.per", "week", "schedule.per", "batch"),
    ("schedule.decay", {"kind": "step", "gamma": 0}, "schedule.decay.gamma", "greater than 0"),
    ("schedule.decay", {"kind": "warp"}, "schedule.decay", "warp"),
    ("surprise", 1, "surprise", "Extra inputs"),
    ("training.surprise", 1, "training.surprise", "Extra inputs"),
]


@pytest.mark.parametrize("path,value,loc,word", BAD, ids=[f"{p}={v!r}" for p, v, _, _ in BAD])
def test_bad_field_names_its_path(path, value, loc, word):
    errs = errors_of(with_(path, value))
    assert [".".join(map(str, e["loc"])) for e in errs] == [loc], errs
    assert word in errs[0]["msg"], errs[0]["msg"]


CROSS = [
    # whole-spec checks with the path they must name and a phrase telling what to do
    (
        {"training": {"epochs": 10}, "schedule": {"warmup": {"epochs": 12}}},
        "schedule.warmup.epochs",
        "longer than training",
    ),
    (
        {
            "training": {"epochs": 10},
            "schedule": {"decay": {"kind": "multistep", "milestones": [5, 10]}},
        },
        "schedule.decay.milestones",
        "past the last epoch",
    ),
    (
        {"schedule": {"decay": {"kind": "multistep", "milestones": [8, 4]}}},
        "schedule.decay.milestones",
        "strictly increasing",
    ),
    (
        {"training": {"epochs": 10}, "schedule": {"decay": {"kind": "step", "step_epochs": 10}}},
        "schedule.decay.step_epochs",
        "never decay",
    ),
    (
        {"optimizer": {"lr": 0.1}, "schedule": {"decay": {"kind": "cosine", "min_lr": 0.5}}},
        "schedule.decay.min_lr",
        "set min_lr below",
    ),
    (
        {"optimizer": {"lr": 0.1}, "schedule": {"warmup": {"epochs": 1, "start_lr": 0.2}}},
        "schedule.warmup.start_lr",
        "must rise",
    ),
    ({"schedule": {"warmup": {"epochs": 1, "steps": 5}}}, "schedule.warmup.epochs", "exactly one"),
    ({"schedule": {"warmup": {}}}, "schedule.warmup.epochs", "exactly one"),
    (
        {"schedule": {"per": "epoch", "warmup": {"steps": 5}}},
        "schedule.warmup.steps",
        "give warmup.epochs",
    ),
    (
        {"schedule": {"warmup": {"epochs": 1}, "decay": {"kind": "onecycle"}}},
        "schedule.warmup",
        "own warm-up",
    ),
    (
        {"optimizer": {"name": "sgd", "momentum": 0, "nesterov": True}},
        "optimizer.nesterov",
        "momentum",
    ),
    ({"lr_range": {"min_lr": 1e-4}}, "lr_range", "only for task"),
    (
        {"task": "lr_range_test", "lr_range": {"min_lr": 1, "max_lr": 0.1}},
        "lr_range.max_lr",
        "above min_lr",
    ),
]


@pytest.mark.parametrize("extra,loc,phrase", CROSS, ids=[c[1] + ":" + c[2] for c in CROSS])
def test_cross_field_checks_name_the_field_and_say_what_to_do(extra, loc, phrase):
    errs = errors_of({**BASE, **extra})
    assert [".".join(map(str, e["loc"])) for e in errs] == [loc], errs
    assert phrase in errs[0]["msg"], errs[0]["msg"]


def test_defaults_are_complete_and_valid():
    spec = JobSpec.model_validate(BASE)
    assert spec.optimizer.name == "sgd" and spec.model.arch == "mlp"
    assert spec.schedule.decay.kind == "cosine" and spec.schedule.per == "batch"
    assert 0 < spec.optimizer.lr <= 1 and spec.training.epochs >= 1


def test_bare_sections_get_their_default_tag():
    spec = JobSpec.model_validate(
        {**BASE, "optimizer": {"lr": 0.2}, "schedule": {"decay": {"min_lr": 0.01}}}
    )
    assert (spec.optimizer.name, spec.optimizer.lr) == ("sgd", 0.2)
    assert (spec.schedule.decay.kind, spec.schedule.decay.min_lr) == ("cosine", 0.01)


def test_union_tags_are_not_part_of_the_reported_path():
    errs = errors_of(with_("optimizer", {"name": "adam", "lr": -1}))
    assert errs[0]["loc"] == ["optimizer", "lr"]


def test_lr_range_test_gets_a_default_range():
    spec = JobSpec.model_validate({**BASE, "task": "lr_range_test"})
    assert spec.lr_range is not None and spec.lr_range.min_lr < spec.lr_range.max_lr


# ---------------------------------------------------------- checks that need the data


@pytest.mark.parametrize(
    "dataset,extra,loc",
    [
        (
            "moons",
            {"regularization": {"augment": {"rotate": 10}}},
            ("regularization", "augment", "rotate"),
        ),
        (
            "moons",
            {"regularization": {"augment": {"hflip": True}}},
            ("regularization", "augment", "hflip"),
        ),
        (
            "moons",
            {"regularization": {"augment": {"translate": 0.1}}},
            ("regularization", "augment", "translate"),
        ),
        (
            "waves",
            {"regularization": {"augment": {"crop_padding": 2}}},
            ("regularization", "augment", "crop_padding"),
        ),
        ("waves", {"regularization": {"cutmix": {"alpha": 1.0}}}, ("regularization", "cutmix")),
        ("blobs", {"model": {"arch": "cnn"}}, ("model", "arch")),
        ("moons", {"training": {"batch_size": 5000}}, ("training", "batch_size")),
        ("digits", {"schedule": {"warmup": {"steps": 100_000}}}, ("schedule", "warmup", "steps")),
    ],
)
def test_dataset_checks_name_the_field(dataset, extra, loc):
    spec = JobSpec.model_validate({"data": {"dataset": dataset}, **extra})
    meta = builtin_meta(dataset, spec.data.val_fraction)
    with pytest.raises(SpecError) as e:
        check_against_dataset(spec, meta)
    assert e.value.loc == loc
    assert dataset in e.value.msg or "steps" in e.value.msg or "batch_size" in e.value.msg


def test_what_suits_the_data_passes():
    for dataset, extra in [
        ("moons", {"regularization": {"augment": {"noise_std": 0.1}, "mixup": {"alpha": 0.2}}}),
        ("waves", {"model": {"arch": "cnn"}, "regularization": {"augment": {"translate": 0.1}}}),
        ("digits", {"model": {"arch": "resnet"}, "regularization": {"cutmix": {"alpha": 1.0}}}),
    ]:
        spec = JobSpec.model_validate({"data": {"dataset": dataset}, **extra})
        check_against_dataset(spec, builtin_meta(dataset, spec.data.val_fraction))


def test_preview_style_check_uses_the_given_lr_name():
    spec = JobSpec.model_validate(BASE)
    with pytest.raises(SpecError) as e:
        check_schedule(
            spec.schedule.model_copy(
                update={"decay": spec.schedule.decay.model_copy(update={"min_lr": 1.0})}
            ),
            lr0=0.1,
            epochs=5,
            lr_name="lr",
        )
    assert e.value.loc == ("schedule", "decay", "min_lr") and "above lr (0.1)" in e.value.msg


def test_spec_imports_no_torch():
    code = "import sys, tricks.spec, tricks.catalog; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
