"""Client, CLI and plots without a server: SSE parsing, error lines, examples, PNGs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tricklab.client.http import (
    ApiError,
    Client,
    ConnectionError,
    Event,
    parse_sse,
    parse_sse_bytes,
)
from tricks.spec import JobSpec, ScheduleSpec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
JOB_EXAMPLES = sorted(EXAMPLES.glob("*.json")) + sorted(EXAMPLES.glob("*.yaml"))


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    import os

    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", *args],
        cwd=ROOT,
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------------- SSE


def test_sse_events_ids_types_and_json():
    raw = (
        b"retry: 2000\n\n"
        b'id: 1-0\nevent: status\ndata: {"status":"queued"}\n\n'
        b": keep-alive\n\n"
        b'id: 2-0\nevent: epoch\ndata: {"epoch":0,\n'
        b'data: "step":21}\n\n'
    )
    evs = list(parse_sse_bytes([raw]))
    assert evs == [
        Event("1-0", "status", {"status": "queued"}),
        Event("2-0", "epoch", {"epoch": 0, "step": 21}),  # multi-line data joined by \n
    ]


def test_sse_split_across_chunks_crlf_and_defaults():
    raw = b"data: hello\r\ndata:  world\r\n\r\nid: 7\r\nevent: x\r\ndata: 1\r\n\r\ndata: 2\n\n"
    # every possible chunking gives the same events, including a \r\n cut in half
    want = [Event(None, "message", "hello\n world"), Event("7", "x", 1), Event("7", "message", 2)]
    for cut in range(1, len(raw)):
        assert list(parse_sse_bytes([raw[:cut], raw[cut:]])) == want, cut
    assert list(parse_sse_bytes(bytes([b]) for b in raw)) == want


def test_sse_comments_and_unterminated_event_are_dropped():
    lines = [": comment", "event: status", ":another", 'data: {"a": 1}', "", "data: lost"]
    assert list(parse_sse(lines)) == [Event(None, "status", {"a": 1})]


def test_sse_event_without_data_is_not_dispatched():
    assert list(parse_sse(["event: ping", "id: 3", ""])) == []


# ---------------------------------------------------------------------- errors


class FakeResp:
    def __init__(self, status, body):
        self.status_code = status
        self._body = body
        self.text = json.dumps(body) if not isinstance(body, str) else body
        self.reason_phrase = "Bad"

    def json(self):
        if isinstance(self._body, str):
            raise ValueError("not json")
        return self._body


def test_api_error_is_one_line_with_dotted_locs():
    body = {
        "error": {
            "code": "validation_error",
            "message": "the job spec is invalid",
            "details": [
                {
                    "loc": ["schedule", "warmup", "epochs"],
                    "msg": "warm-up (12 epochs) is longer than training (10 epochs)",
                    "type": "value_error",
                }
            ],
        }
    }
    e = ApiError.from_response(FakeResp(422, body))
    assert (e.status, e.code) == (422, "validation_error")
    assert str(e) == (
        "422 validation_error: schedule.warmup.epochs: "
        "warm-up (12 epochs) is longer than training (10 epochs)"
    )


def test_api_error_without_details_and_multiline_message():
    e = ApiError.from_response(
        FakeResp(
            409, {"error": {"code": "conflict", "message": "job is\nfinished", "details": None}}
        )
    )
    assert str(e) == "409 conflict: job is finished"
    several = ApiError(
        422, "validation_error", "bad", [{"loc": ["a", 0], "msg": "x"}, {"loc": [], "msg": "y"}]
    )
    assert str(several) == "422 validation_error: a.0: x; y"
    assert "\n" not in str(ApiError.from_response(FakeResp(502, "<html>\nBad gateway</html>")))


def test_connection_refused_is_a_one_line_hint():
    with Client(url="http://127.0.0.1:1", timeout=2) as c, pytest.raises(ConnectionError) as ei:
        c.get("j1")
    assert isinstance(ei.value, ApiError)
    assert "make up" in str(ei.value) and "\n" not in str(ei.value)


def test_client_reads_env_and_sends_bearer(monkeypatch):
    monkeypatch.setenv("TRICKLAB_URL", "http://example.invalid:9/")
    monkeypatch.setenv("TRICKLAB_API_KEY", "k123")
    c = Client()
    assert c.url == "http://example.invalid:9"
    assert c._http.headers["Authorization"] == "Bearer k123"
    c.close()
    monkeypatch.delenv("TRICKLAB_API_KEY")
    with Client() as c:
        assert "Authorization" not in c._http.headers


# -------------------------------------------------------------------- examples


def _load(path: Path):
    if path.suffix == ".yaml":
        import yaml

        return yaml.safe_load(path.read_text())
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", JOB_EXAMPLES, ids=lambda p: p.name)
def test_examples_validate(path):
    from tricks.catalog import builtin_meta
    from tricks.spec import check_against_dataset

    spec = JobSpec.model_validate(_load(path))
    meta = builtin_meta(spec.data.dataset, spec.data.val_fraction)
    assert meta is not None, "examples use built-in datasets"
    check_against_dataset(spec, meta)
    # sized for a 2-core CPU: a few hundred updates of a small model
    steps = spec.training.epochs * (meta.n_train // spec.training.batch_size)
    assert steps <= 600 or spec.task == "lr_range_test"


def test_expected_examples_exist_with_the_asked_for_tricks():
    names = {p.name for p in JOB_EXAMPLES}
    for n in (
        "baseline.json",
        "warmup_cosine.json",
        "warmup_cosine_ls.json",
        "warmup_cosine_ls_mixup.json",
        "bag_of_tricks.json",
        "signal_conv1d.json",
        "lr_range_test.json",
    ):
        assert n in names
    bag = JobSpec.model_validate(_load(EXAMPLES / "bag_of_tricks.json"))
    r = bag.regularization
    assert bag.schedule.warmup and bag.schedule.decay.kind == "cosine"
    assert r.label_smoothing > 0 and r.mixup and r.augment and r.dropout > 0
    assert r.augment.rotate > 0 and r.augment.crop_padding > 0 and bag.optimizer.no_bias_decay
    base = JobSpec.model_validate(_load(EXAMPLES / "baseline.json"))
    assert base.schedule.decay.kind == "step" and base.schedule.warmup is None
    assert JobSpec.model_validate(_load(EXAMPLES / "signal_conv1d.json")).model.arch == "cnn"
    lrr = JobSpec.model_validate(_load(EXAMPLES / "lr_range_test.json"))
    assert lrr.task == "lr_range_test" and lrr.lr_range is not None


@pytest.mark.parametrize(
    "path", sorted((EXAMPLES / "schedules").glob("*.json")), ids=lambda p: p.name
)
def test_schedule_examples_validate(path):
    ScheduleSpec.model_validate(_load(path))


def test_make_signals_writes_a_valid_upload(tmp_path):
    from tricks.ingest.pipeline import ingest_file

    out = tmp_path / "s.npz"
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "make_signals.py"), str(out), "--n", "120"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    meta = ingest_file(out, "s.npz", datasets_dir=tmp_path / "datasets", dataset_id="d1")
    assert meta.kind == "sequence" and meta.input_shape == [1, 64] and meta.num_classes == 3


# ------------------------------------------------------------------------- CLI


def test_cli_bad_spec_is_one_line_and_exit_2(tmp_path):
    bad = _load(EXAMPLES / "warmup_cosine.json")
    bad["schedule"]["warmup"]["epochs"] = 25  # training is 20 epochs
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    r = run_cli("submit", str(f), env={"TRICKLAB_URL": "http://127.0.0.1:1"})
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "schedule.warmup.epochs" in lines[0] and "longer than training" in lines[0]
    assert "Traceback" not in r.stderr


def test_cli_dataset_checks_and_yaml_errors_are_one_line(tmp_path):
    spec = _load(EXAMPLES / "signal_conv1d.json")
    spec["regularization"]["augment"]["rotate"] = 10  # images only; waves are 1-D
    f = tmp_path / "rot.yaml"
    import yaml

    f.write_text(yaml.safe_dump(spec))
    r = run_cli("submit", str(f))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "regularization.augment.rotate" in r.stderr
    g = tmp_path / "broken.yaml"
    g.write_text("data: [unclosed\n  x: 1\n")
    r = run_cli("submit", str(g))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_cli("submit", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_cli_unreachable_api_is_one_line_exit_1():
    r = run_cli("ls", "--url", "http://127.0.0.1:1")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "make up" in r.stderr


def test_cli_help_lists_commands_and_exit_codes_without_torch():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("submit", "ls", "status", "cancel", "curves", "preview", "compare", "watch", "up"):
        assert cmd in r.stdout
    assert "130" in r.stdout
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tricklab.client.cli; print('torch' in sys.modules, 'matplotlib' in sys.modules)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.stdout.strip() == "False False"


def test_cli_preview_offline_falls_back_to_local_math(tmp_path):
    png = tmp_path / "lr.png"
    r = run_cli(
        "preview",
        str(EXAMPLES / "schedules" / "warmup_cosine.json"),
        "--lr",
        "0.1",
        "--epochs",
        "20",
        "--steps-per-epoch",
        "22",
        "--png",
        str(png),
        env={"TRICKLAB_URL": "http://127.0.0.1:1"},
    )
    assert r.returncode == 0, r.stderr
    assert "total_steps 440" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a whole job spec: lr and epochs from it, steps per epoch from the built-in's size
    r = run_cli(
        "preview", str(EXAMPLES / "bag_of_tricks.json"), env={"TRICKLAB_URL": "http://127.0.0.1:1"}
    )
    assert r.returncode == 0 and "total_steps 440" in r.stdout, r.stderr
    r = run_cli("preview", str(EXAMPLES / "schedules" / "warmup_cosine.json"), "--lr", "0.1")
    assert r.returncode == 2 and "--epochs" in r.stderr


@pytest.mark.parametrize("cmd", ["up", "worker", "keys"])
def test_cli_passthrough_hands_its_options_over(cmd):
    # --help only: these start processes or write keys. A module that has not landed yet
    # is reported in one line, not a traceback.
    r = run_cli(cmd, "--help")
    if r.returncode == 0:
        assert "usage:" in r.stdout
    else:
        assert "not available yet" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------- plots

PNG = b"\x89PNG\r\n\x1a\n"


def _labels(fig):
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]


def test_plot_curves_has_labeled_panels(tmp_path):
    from tricklab.client.plots import plot_curves

    curves = {
        "series": {
            "train_loss": {"step": [9, 19, 29], "value": [2.0, 1.0, 0.5]},
            "val_loss": {"step": [21, 43], "value": [1.1, 0.6]},
            "val_acc": {"step": [21, 43], "value": [0.7, 0.9]},
            "train_acc": {"step": [21, 43], "value": [0.6, 0.85]},
            "val_ece": {"step": [21, 43], "value": [0.1, 0.05]},
        }
    }
    fig = plot_curves(curves, tmp_path / "c.png", title="digits run")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    labels = _labels(fig)
    assert len(labels) == 3 and all(x and y for x, y in labels)
    assert [y for _, y in labels] == ["loss", "accuracy", "ECE"]
    assert fig._suptitle.get_text() == "digits run"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["train loss", "val loss"]


def test_plot_lr_and_compare(tmp_path):
    from tricklab.client.plots import plot_compare, plot_lr

    fig = plot_lr(
        {"step": [0, 1, 2, 3], "lr": [0.1, 0.2, 0.1, 0.05]},
        {"step": [0, 2], "lr": [0.1, 0.1]},
        tmp_path / "lr.png",
        log_y=True,
    )
    assert (tmp_path / "lr.png").read_bytes()[:8] == PNG
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "learning rate" and ax.get_yscale() == "log"
    fig = plot_compare(
        [("a", {"x": [1, 2], "value": [0.5, 0.8]}), ("b", {"x": [1, 2], "value": [0.6, 0.9]})],
        "val_acc",
        "epoch",
        tmp_path / "cmp.png",
    )
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    assert _labels(fig) == [("epoch", "val acc")]


def test_progress_line_from_worker_events():
    import io

    from tricklab.client.cli import Progress

    buf = io.StringIO()
    p = Progress(stream=buf, tty=False)
    p.feed("status", {"status": "running"})
    p.feed("start", {"total_steps": 440, "steps_per_epoch": 22, "epochs": 20, "device": "cpu"})
    p.feed(
        "epoch",
        {"epoch": 0, "step": 21, "metrics": {"train_loss": 0.9, "val_acc": 0.81, "lr": 0.05}},
    )
    p.feed("epoch", {"epoch": 1, "step": 43, "metrics": {"train_loss": 0.5, "val_acc": 0.9}})
    rc = p.finish(
        {"id": "j1", "status": "succeeded", "best": {"val_acc": 0.9, "epoch": 1}, "metrics": {}}
    )
    out = buf.getvalue().splitlines()
    assert rc == 0
    assert out[0] == "status: running" and "440 steps" in out[1]
    assert out[2].startswith("epoch 1/20  step 22/440") and "val_acc 0.8100" in out[2]
    assert out[3].startswith("epoch 2/20  step 44/440") and "loss 0.5000" in out[3]
    assert "succeeded" in out[-1]
    assert (
        Progress(stream=io.StringIO(), tty=False).finish({"id": "j", "status": "cancelled"}) == 130
    )
    q = Progress(stream=io.StringIO(), tty=False)
    assert q.finish({"id": "j", "status": "failed", "error": {"type": "X", "message": "boom"}}) == 1
