"""model.safetensors carries its spec, input shape and class count; `tricks.load_model`
rebuilds the module from it. Every arch of the spec's model union round-trips (new
archs are picked up from the union), checked against the original module's own forward."""

from __future__ import annotations

import json
import pickle
import typing

import pytest
import torch
from safetensors import safe_open
from torch import nn

import tricks
from tricks import checkpoint as ckpt
from tricks.models import build_model
from tricks.spec import JobSpec, ModelSpec

# every input rank: tabular (F,), sequences (C, L), images (C, H, W)
SHAPES = [(12,), (3, 16), (3, 16, 16)]
NUM_CLASSES = 5


def archs() -> list[str]:
    """The arch names of the spec's discriminated model union."""
    (union, *_) = typing.get_args(ModelSpec)
    return [cls.model_fields["arch"].default for cls in typing.get_args(union)]


def job_spec(arch: str) -> JobSpec:
    return JobSpec(
        data={"dataset": "digits"}, model={"arch": arch}, regularization={"dropout": 0.3}
    )


def trained_like(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """Weights and BatchNorm statistics unlike a fresh build's, as after training."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        model.train()
        for _ in range(3):  # moves the running means and variances
            model(torch.randn((16, *shape), generator=g))
    return model.eval()


def test_the_union_has_the_documented_archs():
    assert {"mlp", "cnn", "resnet"} <= set(archs())


@pytest.mark.parametrize("arch", archs())
def test_every_arch_round_trips(arch, tmp_path):
    spec = job_spec(arch)
    built, refused = 0, []
    for shape in SHAPES:
        torch.manual_seed(0)
        try:
            original = build_model(spec.model, shape, NUM_CLASSES, spec.regularization.dropout)
        except ValueError as e:  # this arch does not take inputs of this rank
            refused.append(f"{shape}: {e}")
            continue
        built += 1
        original = trained_like(original, shape)
        path = tmp_path / f"{arch}-{len(shape)}.safetensors"
        ckpt.save_model(
            original.state_dict(),
            path,
            spec=spec.model_dump(mode="json"),
            input_shape=shape,
            num_classes=NUM_CLASSES,
        )
        torch.manual_seed(1)  # a fresh build inside load_model starts from other weights
        loaded = tricks.load_model(path)
        assert type(loaded) is type(original) and not loaded.training
        x = torch.randn((4, *shape), generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            want, got = original(x), loaded(x)
        assert got.shape == (4, NUM_CLASSES)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert built, f"build_model builds {arch} for no input shape: {refused}"


def test_metadata_is_strings_naming_spec_shape_classes_version(tmp_path):
    spec = job_spec("cnn").model_dump(mode="json")
    model = build_model(job_spec("cnn").model, (1, 8, 8), 10, 0.0)
    path = ckpt.save_model(
        model.state_dict(),
        tmp_path / "m.safetensors",
        spec=spec,
        input_shape=(1, 8, 8),
        num_classes=10,
    )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert json.loads(meta["spec"]) == spec
    assert json.loads(meta["input_shape"]) == [1, 8, 8] and meta["num_classes"] == "10"
    assert meta["tricklab_version"] and meta["tricklab_version"] != "unknown"


def test_loading_never_unpickles(tmp_path, monkeypatch):
    spec = job_spec("mlp")
    model = build_model(spec.model, (12,), 3, 0.0)
    path = ckpt.save_model(
        model.state_dict(),
        tmp_path / "m.safetensors",
        spec=spec.model_dump(mode="json"),
        input_shape=(12,),
        num_classes=3,
    )

    def refuse(*a, **k):
        raise AssertionError("load_model unpickled something")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert isinstance(tricks.load_model(path), nn.Module)


def test_a_file_without_metadata_says_what_to_do(tmp_path):
    model = build_model(job_spec("mlp").model, (12,), 3, 0.0)
    path = ckpt.save_model(model.state_dict(), tmp_path / "old.safetensors")
    with pytest.raises(ValueError, match="tricks.checkpoint.load_model"):
        tricks.load_model(path)
