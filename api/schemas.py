"""Response and request models (the OpenAPI schema); JobSpec itself lives in tricks.spec."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tricklab.contract import JobStatus
from tricks.schedule_steps import check_realised
from tricks.spec import (
    MAX_EPOCHS,
    ScheduleSpec,
    Strict,
    check_schedule,
)

Status = JobStatus  # the JobStatus enum in the OpenAPI schema (the dashboard reads it)


# ------------------------------------------------------------------------ errors


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorPublic(BaseModel):
    error: ErrorDetail


# -------------------------------------------------------------------------- jobs


class JobError(BaseModel):
    type: str
    message: str


class Progress(BaseModel):
    model_config = ConfigDict(extra="allow")
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    fraction: float = 0.0
    eta_seconds: float | None = None
    samples_per_second: float = 0.0
    first_log_at: float | None = Field(
        None,
        description="Unix time of this attempt's first log point (with log_every 1: the end "
        "of its first optimizer step); the claim is started_at.",
    )


class Best(BaseModel):
    model_config = ConfigDict(extra="allow")
    val_acc: float | None = None
    epoch: int | None = None


class RealisedSchedule(BaseModel):
    """A schedule's lengths as the run really has them, in optimizer steps (0-based)."""

    per: Literal["batch", "epoch"]
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int = Field(description="Warm-up length after rounding warmup.epochs.")
    decay_steps: int = Field(description="total_steps − warmup_steps: the decay's own T.")
    decay_epochs: list[int] | None = Field(
        None, description="step / multistep: epochs where the lr is multiplied by gamma."
    )
    decay_boundaries: list[int] | None = Field(
        None, description="step / multistep: the first step of each decayed stretch (64 at most)."
    )
    decays: int | None = Field(None, description="step / multistep: how many decays there are.")
    first_cycle_steps: int | None = Field(
        None, description="cosine_restarts: the first cycle (t0_epochs after rounding)."
    )
    restart_steps: list[int] | None = Field(
        None, description="cosine_restarts: the first step of each cycle (64 at most)."
    )
    cycles: int | None = Field(None, description="cosine_restarts: how many cycles start.")
    peak_step: int | None = Field(None, description="onecycle: the step at the lr peak.")
    cooldown_start_step: int | None = Field(
        None, description="wsd: the first step of the cool-down."
    )


class Plan(BaseModel):
    steps_per_epoch: int
    total_steps: int
    epochs: int
    n_train: int
    n_val: int
    parameters: int | None = Field(
        None,
        description="Trainable parameters of the model (counted without torch); null on jobs planned before it was reported.",
    )
    schedule: RealisedSchedule | None = Field(
        None, description="The schedule in steps (task train); null on jobs planned before it."
    )


class AttemptPublic(BaseModel):
    """One attempt of a job (GET /jobs/{id}?include=attempts), from its event stream."""

    attempt: int = Field(description="1-based, as the record's `attempts` counts them.")
    claimed_at: str | None = Field(description="When a worker claimed it (UTC, ISO 8601).")
    worker: str | None = Field(description="The worker that claimed it.")
    device: str | None = Field(description="The device it trained on (cpu, cuda:0, ...).")
    resumed_from_step: int | None = Field(
        description="The step it resumed from (a checkpoint); null when it started at step 0."
    )
    ended_at: str | None = Field(description="When it ended; null while it runs.")
    ended: str | None = Field(
        description="How it ended: preempted, worker lost, lease expired (re-queued), or the "
        "job's terminal status. All fields but `attempt` are null when its events were "
        "trimmed from the capped stream."
    )


class JobPublic(BaseModel):
    id: str
    name: str
    status: Status
    spec: dict[str, Any]
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    attempts: int
    error: JobError | None
    progress: Progress
    metrics: dict[str, Any]
    best: Best
    queue: str
    plan: Plan | None = None
    result: dict[str, Any] | None = None
    cancel_requested: bool = False
    spec_hash: str | None = Field(
        None, description="sha256 of the canonical spec JSON (POST /jobs?reuse=true matches on it)."
    )
    sweep_id: str | None = Field(None, description="The sweep that started this job, if any.")
    variant: str | None = Field(None, description="The sweep variant (row) this job runs.")
    lineage: dict[str, Any] | None = Field(
        None, description="Forks: {parent, from_epoch, from_step, children: [{id, from_epoch}]}."
    )
    search_id: str | None = Field(None, description="The search this job is a trial of, if any.")
    tags: list[str] = Field(
        default_factory=list, description="The user's labels (PATCH /jobs/{id}; GET /jobs?tag=)."
    )
    notes: str = Field("", description="The user's free-text notes (PATCH /jobs/{id}).")
    duration_s: float | None = Field(
        None,
        description="Seconds from started_at to finished_at (to now while running); null before it starts.",
    )
    pending_reason: str | None = Field(
        None,
        description="Why a queued job is not starting, from the live workers' heartbeats "
        '(e.g. "no live worker serves the gpu queue"); null when a live worker serves its '
        "queue or the job is not queued.",
    )
    attempt_history: list[AttemptPublic] | None = Field(
        None,
        description="With ?include=attempts on GET /jobs/{id}: each attempt, oldest first "
        "(claimed, by which worker, resumed from which step, ended how); null otherwise.",
    )


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int = Field(description="Jobs on this page.")
    next_cursor: str | None = Field(
        description="Pass as cursor= for the next page; null at the end."
    )
    truncated: bool = Field(
        False,
        description="A sorted or filtered listing saw only the tenant's newest list_scan_max jobs (10,000 by default) and there are more.",
    )


class JobPatch(Strict):
    """PATCH /jobs/{id}: the fields given replace the stored ones; the others stay."""

    tags: list[str] | None = Field(
        None,
        max_length=32,
        description="Labels like GitHub's: 1-64 characters each, no commas, at most 32; trimmed and de-duplicated.",
    )
    notes: str | None = Field(
        None, max_length=10_000, description="Free text, at most 10,000 characters."
    )


class CancelPublic(BaseModel):
    id: str
    status: Status
    cancel_requested: bool


# ------------------------------------------------------------------------ curves


class Series(BaseModel):
    step: list[int]
    value: list[float | None]


class CurvesPublic(BaseModel):
    series: dict[str, Series]
    next_since: int | None


class LrSeries(BaseModel):
    step: list[int]
    lr: list[float | None]


class LrPublic(BaseModel):
    planned: LrSeries
    actual: LrSeries


# --------------------------------------------------------------------- schedules


class PreviewRequest(Strict):
    lr: float = Field(gt=0.0, le=100.0, description="Peak learning rate lr0.")
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    steps_per_epoch: int = Field(ge=1, le=1_000_000)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)  # type: ignore[arg-type]
    max_points: int | None = Field(
        None,
        ge=2,
        le=100_000,
        description="Downsample to at most this many points, keeping first, last, min and max.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_decay_tag(cls, data: Any) -> Any:
        """A bare decay is cosine, as in JobSpec."""
        if isinstance(data, dict):
            sched = data.get("schedule")
            if isinstance(sched, dict) and isinstance(sched.get("decay"), dict):
                if "kind" not in sched["decay"]:
                    data = {
                        **data,
                        "schedule": {**sched, "decay": {"kind": "cosine", **sched["decay"]}},
                    }
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> PreviewRequest:
        """The same schedule checks JobSpec makes, with lr and epochs given directly."""
        # The length is bounded by the caller's max_total_steps (api/quotas.py, 422 at
        # `epochs`); computing the preview is bounded whatever the length (lr_sampled).
        epochs, lr0 = self.epochs, self.lr
        check_schedule(
            self.schedule,
            lr0=lr0,
            epochs=epochs,
            steps_per_epoch=self.steps_per_epoch,
            lr_name="lr",
        )
        check_realised(self.schedule, steps_per_epoch=self.steps_per_epoch, epochs=epochs)
        return self


class PreviewPublic(BaseModel):
    step: list[int]
    lr: list[float]
    total_steps: int
    schedule: RealisedSchedule | None = Field(
        None, description="The realised lengths in steps (warm-up, decay boundaries, restarts)."
    )


# ---------------------------------------------------------------------- datasets


class DatasetPublic(BaseModel):
    id: str
    name: str
    kind: Literal["image", "sequence", "tabular"]
    input_shape: list[int]
    num_classes: int
    n_train: int
    n_val: int = Field(
        description="Without an own split (own_val false) the split of the default "
        "val_fraction; a job applies its data.val_fraction. 0 on older records without one."
    )
    builtin: bool
    dtype: str = Field("float32", description="x's stored dtype (uint8 images stay uint8).")
    stored_bytes: int = Field(0, description="Bytes the stored arrays take on disk.")
    class_counts: list[int] = Field(default_factory=list, description="Samples per class.")
    classes: list[str] = Field(
        default_factory=list, description="Class names (image folders), when known."
    )
    own_val: bool | None = Field(None, description="Whether x_val/y_val were uploaded.")
    filename: str | None = None
    bytes: int | None = None
    created_at: str | None = None


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


# ------------------------------------------------------------------------ health


class HealthPublic(BaseModel):
    status: Literal["ok"]


class ReadyPublic(BaseModel):
    redis: Literal["ok"]
    workers: int
