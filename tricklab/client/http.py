"""Python client for the tricklab HTTP API (see DESIGN.md for the contract).

Thin and synchronous: one method per endpoint, JSON in and out, every non-2xx
answer raised as `ApiError` whose str() is one readable line. Specs may be given
as `tricks.spec.JobSpec` objects or plain dicts. No torch import (the CLI starts
from here).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tricklab.client.errors import ApiError, ConnectionError
from tricklab.client.sse import Event, parse_sse, parse_sse_bytes  # noqa: F401 - re-exported
from tricklab.contract import TERMINAL
from tricks.spec import JobSpec, ScheduleSpec

DEFAULT_URL = "http://127.0.0.1:8000"


def _spec_dict(spec: JobSpec | dict[str, Any]) -> dict[str, Any]:
    if isinstance(spec, JobSpec):
        return spec.model_dump(mode="json", exclude_none=False)
    return dict(spec)


class Client:
    """`Client()` talks to $TRICKLAB_URL (default http://127.0.0.1:8000) with $TRICKLAB_API_KEY."""

    def __init__(
        self, url: str | None = None, api_key: str | None = None, timeout: float = 30
    ) -> None:
        self.url = (url or os.environ.get("TRICKLAB_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("TRICKLAB_API_KEY")
        headers = {"Accept": "application/json", "User-Agent": "tricklab-client"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise ConnectionError(self.url, _reason(e)) from None
        if resp.status_code >= 400:
            raise ApiError.from_response(resp)
        return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._request(method, path, **kw)
        if not resp.content:
            return {}
        return resp.json()

    # ---------------------------------------------------------------------- jobs
    def submit(
        self, spec: JobSpec | dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """POST /jobs → the queued job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._json("POST", "/jobs", json=_spec_dict(spec), headers=headers)

    def get(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{job_id}")

    def list(
        self,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        *,
        sort: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        sweep_id: str | None = None,
    ) -> dict[str, Any]:
        """GET /jobs → the page as the API sends it (jobs under `data`, `next_cursor`).

        sort: a field path, "-" first for descending (`-best.val_acc`, `spec.optimizer.lr`);
        tag, q (name substring), sweep_id filter."""
        params: dict[str, Any] = {"limit": limit}
        extra = {"status": status, "cursor": cursor, "sort": sort, "tag": tag, "q": q}
        params.update({k: v for k, v in {**extra, "sweep_id": sweep_id}.items() if v})
        return self._json("GET", "/jobs", params=params)

    list_jobs = list

    def patch_job(
        self, job_id: str, *, tags: Iterable[str] | None = None, notes: str | None = None
    ) -> dict[str, Any]:
        """PATCH /jobs/{id}: replace the tags and/or the notes (None leaves one as it is)."""
        body: dict[str, Any] = {}
        if tags is not None:
            body["tags"] = [*tags]
        if notes is not None:
            body["notes"] = notes
        return self._json("PATCH", f"/jobs/{job_id}", json=body)

    def iter_jobs(
        self,
        status: str | None = None,
        limit: int | None = 50,
        page_size: int = 50,
        **filters: str | None,
    ) -> Iterator[dict[str, Any]]:
        """Every job, newest first (or by `sort=`), following cursors; stops after `limit`
        (None = all). filters: sort, tag, q, sweep_id as for list()."""
        cursor = None
        n = 0
        while True:
            page = self.list(status=status, limit=page_size, cursor=cursor, **filters)
            for job in jobs_of(page):
                yield job
                n += 1
                if limit is not None and n >= limit:
                    return
            cursor = (
                (page.get("next_cursor") or page.get("cursor")) if isinstance(page, dict) else None
            )
            if not cursor:
                return

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
        """Poll until the job is terminal and return it; TimeoutError after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.get("status") in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.get('status')} after {timeout:g}s")
            time.sleep(poll)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{job_id}/cancel")

    def delete_job(self, job_id: str) -> bool:
        """DELETE /jobs/{id}: the job and all it stored. True when gone (204); False when it
        was still stopping (202: cancelled, and the server deletes it once it stops)."""
        return self._request("DELETE", f"/jobs/{job_id}").status_code == 204

    def delete_sweep(self, sweep_id: str) -> bool:
        """DELETE /sweeps/{id}: the sweep and all its jobs; True when gone (204), False (202)
        when some were still stopping (the server deletes them once they stop)."""
        return self._request("DELETE", f"/sweeps/{sweep_id}").status_code == 204

    def curves(
        self,
        job_id: str,
        metrics: Iterable[str] | str | None = None,
        since: int | None = None,
        max_points: int | None = None,
    ) -> dict[str, Any]:
        """GET /jobs/{id}/curves → {"series": {name: {step, value}}, "next_since"}."""
        params: dict[str, Any] = {}
        if metrics:
            params["metrics"] = metrics if isinstance(metrics, str) else ",".join(metrics)
        if since is not None:
            params["since"] = since
        if max_points is not None:
            params["max_points"] = max_points
        return self._json("GET", f"/jobs/{job_id}/curves", params=params)

    def lr(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/{id}/lr → {"planned": {step, lr}, "actual": {step, lr}}."""
        return self._json("GET", f"/jobs/{job_id}/lr")

    def events(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """Server-Sent Events of one job, until the server closes the stream."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        # No read timeout: a quiet job may send nothing (but keep-alive comments) for a while.
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            with self._http.stream(
                "GET", f"/jobs/{job_id}/events", headers=headers, timeout=timeout
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise ApiError.from_response(resp)
                yield from parse_sse_bytes(resp.iter_bytes())
        except httpx.TransportError as e:
            raise ConnectionError(self.url, _reason(e)) from None

    def model(self, job_id: str, path: str | Path) -> Path:
        """Download the trained weights (safetensors) to `path`; `tricks.load_model` reads it."""
        return self._download(f"/jobs/{job_id}/model", path)

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        """The job's end-of-epoch checkpoints: `{data: [{epoch, step, bytes, created, url}], ...}`."""
        return self._json("GET", f"/jobs/{job_id}/checkpoints")

    def checkpoint(self, job_id: str, epoch: int, path: str | Path) -> Path:
        """Download the checkpoint after `epoch` epochs to `path`, as stored (a torch.save
        file of tensors and primitives: `torch.load(path, weights_only=True)`)."""
        return self._download(f"/jobs/{job_id}/checkpoints/{int(epoch)}", path)

    def _download(self, url: str, path: str | Path) -> Path:
        """Stream a file to `path` (via `path.part`, so a broken download leaves no file)."""
        path = Path(path)
        try:
            with self._http.stream("GET", url) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise ApiError.from_response(resp)
                tmp = path.with_name(path.name + ".part")
                with open(tmp, "wb") as fh:
                    for chunk in resp.iter_bytes():
                        fh.write(chunk)
                tmp.replace(path)
        except httpx.TransportError as e:
            raise ConnectionError(self.url, _reason(e)) from None
        return path

    # ----------------------------------------------------------------- schedules
    def preview(
        self,
        lr: float,
        epochs: int,
        steps_per_epoch: int,
        schedule: ScheduleSpec | dict[str, Any],
    ) -> dict[str, Any]:
        """POST /schedules/preview → {step[], lr[], total_steps} without training."""
        if isinstance(schedule, ScheduleSpec):
            schedule = schedule.model_dump(mode="json")
        body = {
            "lr": lr,
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "schedule": schedule,
        }
        return self._json("POST", "/schedules/preview", json=body)

    # ------------------------------------------------------------------ datasets
    def upload_dataset(
        self, path: str | Path, name: str | None = None, image_size: str | None = None
    ) -> dict[str, Any]:
        """POST /datasets with a .npz or .csv file → the dataset record (use its id as data.dataset).

        One request: for large files `tricklab upload` (tus, resumable) is the way."""
        path = Path(path)
        fields = {"name": name, "image_size": image_size}
        data = {k: v for k, v in fields.items() if v} or None
        with open(path, "rb") as fh:
            files = {"file": (path.name, fh, "application/octet-stream")}
            return self._json("POST", "/datasets", files=files, data=data)

    def dataset_from_upload(
        self, upload_id: str, name: str | None = None, image_size: str | None = None
    ) -> dict[str, Any]:
        """POST /datasets {"upload": id}: a finished tus upload (tricklab.client.tus) → the dataset."""
        body = {"upload": upload_id, "name": name, "image_size": image_size}
        return self._json("POST", "/datasets", json={k: v for k, v in body.items() if v})

    def datasets(self) -> dict[str, Any]:
        return self._json("GET", "/datasets")

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/datasets/{dataset_id}")

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"/datasets/{dataset_id}")

    # -------------------------------------------------------------------- sweeps
    def sweep(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /sweeps: base spec + grid or ablation + seeds -> the sweep."""
        return self._json("POST", "/sweeps", json=body)

    def get_sweep(self, sweep_id: str, metric: str = "final_val_acc") -> dict[str, Any]:
        """GET /sweeps/{id}: status, counts and the results table."""
        return self._json("GET", f"/sweeps/{sweep_id}", params={"metric": metric})

    def sweeps(self, limit: int = 50) -> dict[str, Any]:
        return self._json("GET", "/sweeps", params={"limit": limit})

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        return self._json("POST", f"/sweeps/{sweep_id}/cancel")

    def sweep_curves(
        self, sweep_id: str, metric: str = "val_acc", x: str = "step", max_points: int = 400
    ) -> dict[str, Any]:
        """GET /sweeps/{id}/curves: per variant a mean curve and a min-max band over seeds."""
        params = {"metric": metric, "x": x, "max_points": max_points}
        return self._json("GET", f"/sweeps/{sweep_id}/curves", params=params)

    # ------------------------------------------------------------------ searches
    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /searches: base spec + space + algorithm + trials -> the search."""
        return self._json("POST", "/searches", json=body)

    def get_search(self, search_id: str) -> dict[str, Any]:
        """GET /searches/{id}: trials, best, budget, importance and the confirm stage."""
        return self._json("GET", f"/searches/{search_id}")

    def searches(self, limit: int = 50) -> dict[str, Any]:
        return self._json("GET", "/searches", params={"limit": limit})

    def cancel_search(self, search_id: str) -> dict[str, Any]:
        return self._json("POST", f"/searches/{search_id}/cancel")

    def fork(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /jobs/{id}/fork: {from_epoch, schedule?, optimizer?: {lr}, regularization?, training?: {epochs}}."""
        return self._json("POST", f"/jobs/{job_id}/fork", json=body)

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")


def jobs_of(page: Any) -> list[dict[str, Any]]:
    """The jobs in a GET /jobs answer, whichever list key the API uses."""
    if isinstance(page, list):
        return page
    for key in ("data", "jobs", "items"):
        if isinstance(page.get(key), list):
            return page[key]
    return []


def _reason(e: httpx.TransportError) -> str:
    if isinstance(e, httpx.ConnectError):
        return "connection refused"
    if isinstance(e, httpx.TimeoutException):
        return "timed out"
    return type(e).__name__
