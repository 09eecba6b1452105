"""A small typed client of the twinopt API over httpx — the one way the studio, the notebooks and
the tests talk to it::

    from studio.api.client import Client

    with Client("http://127.0.0.1:8000", key) as api:
        job = api.submit("run", "smt_line", {"replications": 10, "seed": 1})
        done = api.wait(job.id)                  # a progress bar on a terminal
        print(done.result["kpis"]["throughput"])

Every non-2xx answer raises :class:`ApiError` with the status code and the server's detail.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from studio.api import PREFIX


class ApiError(Exception):
    """A non-2xx answer: ``status`` and the server's ``detail``."""

    def __init__(self, status: int, detail: Any, method: str, path: str):
        self.status, self.detail = status, detail
        text = detail if isinstance(detail, str) else json.dumps(detail)
        super().__init__(f"{method} {path}: {status}: {text}")


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str
    progress: float
    scenario: str
    params: dict[str, Any]
    result: Any
    error: str | None
    recommendation_id: str | None
    has_report: bool
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Submitted:
    id: str
    status: str
    cached: bool


class Client:
    """``Client(base_url, key)``; a context manager closing its connection pool."""

    def __init__(self, base_url: str, key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/") + PREFIX, headers=headers, timeout=timeout,
                                 transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- plumbing
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.http.request(method, path, **kwargs)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except (ValueError, AttributeError):
                detail = r.text
            raise ApiError(r.status_code, detail, method, path)
        ctype = r.headers.get("content-type", "")
        return r.json() if ctype.startswith("application/json") else r.text

    # -- service
    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    def me(self) -> dict[str, Any]:
        """The key's id, name and role."""
        return self.request("GET", "/me")

    # -- scenarios
    def upload_scenario(self, yaml_text: str, name: str | None = None) -> dict[str, Any]:
        params = {"name": name} if name else None
        return self.request("POST", "/scenarios", content=yaml_text.encode(),
                            headers={"Content-Type": "application/yaml"}, params=params)

    def scenarios(self) -> list[dict[str, Any]]:
        return self.request("GET", "/scenarios")

    def scenario(self, scenario_id: str) -> dict[str, Any]:
        return self.request("GET", f"/scenarios/{scenario_id}")

    # -- jobs
    def submit(self, kind: str, scenario: str, params: Mapping[str, Any] | None = None, *,
               fresh: bool = False) -> Submitted:
        doc = self.request("POST", "/jobs", json={"kind": kind, "scenario": scenario, "params": dict(params or {}),
                                                  "fresh": fresh})
        return Submitted(doc["id"], doc["status"], doc.get("cached", False))

    def job(self, job_id: str) -> Job:
        return Job(**self.request("GET", f"/jobs/{job_id}"))

    def jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return [Job(**j) for j in self.request("GET", "/jobs", params=params)]

    def cancel(self, job_id: str) -> Job:
        return Job(**self.request("DELETE", f"/jobs/{job_id}"))

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's server-sent events as ``(event, data)`` until it ends."""
        with self.http.stream("GET", f"/jobs/{job_id}/events", timeout=None) as r:
            if r.status_code >= 400:
                r.read()
                raise ApiError(r.status_code, r.json().get("detail"), "GET", f"/jobs/{job_id}/events")
            event = "message"
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    yield event, json.loads(line[5:])

    def wait(self, job_id: str, *, timeout: float | None = None, progress: bool | None = None,
             poll: float = 0.5) -> Job:
        """Poll until the job ends (a tqdm bar when ``progress``; None: only on a terminal)."""
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        with tqdm(total=1.0, desc=f"job {job_id[:8]}", unit="job", disable=None if progress is None else not progress,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}") as bar:
            while True:
                job = self.job(job_id)
                bar.update(max(0.0, job.progress - bar.n))
                if job.done:
                    return job
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} still {job.status} after {timeout:g} s")
                time.sleep(poll)

    def report(self, job_id: str) -> str:
        return self.request("GET", f"/jobs/{job_id}/report")

    def figures(self, job_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/jobs/{job_id}/figures")

    # -- recommendations
    def recommendations(self, status: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/recommendations",
                            params={"status": status} if status else None)

    def recommendation(self, rec_id: str) -> dict[str, Any]:
        return self.request("GET", f"/recommendations/{rec_id}")

    def diff(self, rec_id: str, endpoint: str) -> dict[str, Any]:
        return self.request("GET", f"/recommendations/{rec_id}/diff",
                            params={"endpoint": endpoint})

    def approve(self, rec_id: str, comment: str | None = None) -> dict[str, Any]:
        return self.request("POST", f"/recommendations/{rec_id}/approve",
                            json={"comment": comment})

    def reject(self, rec_id: str, comment: str | None = None) -> dict[str, Any]:
        return self.request("POST", f"/recommendations/{rec_id}/reject",
                            json={"comment": comment})

    def push(self, rec_id: str, endpoint: str, *, dry_run: bool = False, staging: bool = False,
             timeout: float = 300.0) -> dict[str, Any]:
        return self.request("POST", f"/recommendations/{rec_id}/push",
                            json={"endpoint": endpoint, "dry_run": dry_run, "staging": staging}, timeout=timeout)

    # -- audit and keys
    def audit(self, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return self.request("GET", "/audit", params={"offset": offset, "limit": limit})

    def audit_verify(self) -> dict[str, Any]:
        return self.request("GET", "/audit/verify")

    def create_key(self, name: str, role: str) -> dict[str, Any]:
        return self.request("POST", "/keys", json={"name": name, "role": role})
