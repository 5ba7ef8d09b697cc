"""`python -m tricks run spec.json [--out curves.json] [--checkpoint-dir DIR] [--device cpu]`

Train one job spec locally, without the service: validate the spec (JSON, or
YAML for .yaml/.yml), load the dataset, train, print one line per epoch and
write the curves as JSON. Exit status: 0 succeeded, 1 the run did not succeed,
2 the spec is invalid (one `field.path: message` line per problem).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tricks.spec import DatasetMeta, JobSpec, SpecError, check_against_dataset, validation_errors


def _read_spec(path: Path) -> Any:
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def _fail_spec(lines: list[str]) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    return 2


def _finite(x: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def run(args: argparse.Namespace) -> int:
    try:
        raw = _read_spec(Path(args.spec))
    except (OSError, ValueError) as exc:
        return _fail_spec([f"{args.spec}: cannot read the spec: {exc}"])
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        return _fail_spec(
            [
                f"{'.'.join(map(str, e['loc'])) or '(spec)'}: {e['msg']}"
                for e in validation_errors(exc)
            ]
        )

    # torch only from here on: a bad spec fails fast
    from tricks.callbacks import Callbacks
    from tricks.data import load_dataset
    from tricks.train import train

    try:
        ds = load_dataset(spec.data, spec.training.seed, args.upload_dir)
    except (OSError, ValueError, KeyError) as exc:
        return _fail_spec([f"data.dataset: cannot load {spec.data.dataset!r}: {exc}"])
    meta = DatasetMeta(
        id=spec.data.dataset,
        kind=ds.kind,  # type: ignore[arg-type]
        input_shape=list(ds.input_shape),
        num_classes=ds.num_classes,
        n_train=len(ds.train),
        n_val=len(ds.val),
    )
    try:
        check_against_dataset(spec, meta)
    except SpecError as exc:
        return _fail_spec([str(exc)])

    class Printer(Callbacks):
        def __init__(self) -> None:
            self.lr = float("nan")
            self.t0 = time.perf_counter()

        def on_start(self, info: dict) -> None:
            self.t0 = time.perf_counter()
            resumed = info["resumed_from_step"]
            print(
                f"{spec.task}: {info['epochs']} epochs × {info['steps_per_epoch']} steps on "
                f"{info['device']} ({info['precision']})"
                + (f", resumed from step {resumed}" if resumed is not None else ""),
                flush=True,
            )

        def on_log(self, step: int, metrics: dict, progress: dict) -> None:
            self.lr = metrics["lr"]

        def on_epoch_end(self, epoch: int, step: int, metrics: dict, progress: dict) -> None:
            now = time.perf_counter()
            print(
                f"epoch {epoch:4d}  lr {self.lr:.4g}  train_loss {metrics['train_loss']:.4f}  "
                f"train_acc {metrics['train_acc']:.4f}  val_loss {metrics['val_loss']:.4f}  "
                f"val_acc {metrics['val_acc']:.4f}  val_ece {metrics['val_ece']:.4f}  "
                f"{now - self.t0:.2f}s",
                flush=True,
            )
            self.t0 = now

    result = train(spec, ds, Printer(), checkpoint_dir=args.checkpoint_dir, device=args.device)
    if result.lr_range is not None:
        r = result.lr_range
        print(f"suggested lr {r['suggested_lr']:.4g} ({r['rule']})")
    print(f"{result.status}" + (f": {result.error['message']}" if result.error else ""))
    if result.best.get("val_acc") is not None:
        print(f"best val_acc {result.best['val_acc']:.4f} at epoch {result.best['epoch']}")
    curves = {
        "name": spec.name,
        "spec": spec.model_dump(mode="json"),
        "status": result.status,
        "error": result.error,
        "steps": result.steps,
        "epochs_run": result.epochs_run,
        "metrics": result.metrics,
        "best": result.best,
        "history": result.history,
        "lr_range": result.lr_range,
    }
    if args.out is not None:
        Path(args.out).write_text(json.dumps(_finite(curves)))
    if args.model is not None and result.model_state is not None:
        from tricks.checkpoint import save_model

        save_model(result.model_state, Path(args.model))
    return 0 if result.status == "succeeded" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tricks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train one job spec locally")
    p.add_argument("spec", help="job spec, .json or .yaml/.yml")
    p.add_argument("--out", type=Path, help="write history, final metrics and best here (JSON)")
    p.add_argument("--checkpoint-dir", type=Path, help="checkpoint here, and resume from it")
    p.add_argument("--device", choices=["cpu", "cuda"], help="overrides training.device")
    p.add_argument("--model", type=Path, help="write the final weights here (safetensors)")
    p.add_argument("--upload-dir", type=Path, help="where uploaded datasets (<id>.npz) live")
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
