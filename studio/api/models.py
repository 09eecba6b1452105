"""Request and response bodies of the API (pydantic; they make ``/openapi.json``)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from studio.api.jobs import KINDS
from studio.api.lifecycle import STATUSES
from studio.api.roles import ROLES

JobKind = Literal["run", "compare", "optimize", "schedule", "energy", "train"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
RecStatus = Literal["draft", "validated", "approved", "pushed", "verified", "rolled_back", "rejected"]
Role = Literal["viewer", "engineer", "approver", "admin"]
assert set(JobKind.__args__) == set(KINDS)  # type: ignore[attr-defined]
assert set(RecStatus.__args__) == set(STATUSES)  # type: ignore[attr-defined]
assert set(Role.__args__) == set(ROLES)  # type: ignore[attr-defined]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class ErrorItem(BaseModel):
    loc: list[str | int]
    line: int | None = None
    msg: str


class ValidationFailed(BaseModel):
    detail: list[ErrorItem]


class Problem(BaseModel):
    detail: str


class ScenarioIn(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    yaml: str = Field(min_length=1)


class ScenarioOut(BaseModel):
    id: str
    name: str
    version: int = Field(description="1, 2, … per name; 0 for a shipped scenario")
    fingerprint: str
    shipped: bool = False
    created_at: str | None = None


class ScenarioDetail(ScenarioOut):
    yaml: str


class JobIn(Strict):
    kind: JobKind
    scenario: str = Field(min_length=1, max_length=200, description="stored scenario id or name, shipped scenario "
                                                                     "name; for schedule a shipped instance (ft06); "
                                                                     "for train an environment id")
    params: dict[str, Any] = Field(default_factory=dict, description="the command's options, e.g. "
                                                                     "{\"replications\": 10, \"seed\": 1}")
    fresh: bool = Field(default=False, description="simulate again even when an identical job has finished")


class JobCreated(BaseModel):
    id: str
    status: JobStatus
    cached: bool = False


class JobOut(BaseModel):
    id: str
    kind: JobKind
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    scenario: str
    params: dict[str, Any]
    result: Any = None
    error: str | None = None
    recommendation_id: str | None = None
    has_report: bool = False
    attempts: int = 0
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None


class RecommendationOut(BaseModel):
    id: str
    version: int
    kind: str
    scenario: str
    status: RecStatus
    job_id: str | None = None
    problems: list[str] = Field(default_factory=list)
    created_at: str
    created_by: str | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    expires_at: str | None = None
    updated_at: str
    last_push: dict[str, Any] | None = None
    document: dict[str, Any]


class Decision(Strict):
    comment: str | None = Field(default=None, max_length=2000)


class PushIn(Strict):
    endpoint: str = Field(min_length=1, max_length=500, pattern=r"^opc\.tcp://")
    dry_run: bool = False
    staging: bool = False


class TagDiff(BaseModel):
    tag: str
    current: float | None
    target: float
    delta: float | None
    unit: str = ""


class Diff(BaseModel):
    recommendation: str
    endpoint: str
    tags: list[TagDiff]


class PushOut(BaseModel):
    outcome: str
    endpoint: str
    detail: str | None = None
    status: RecStatus
    changes: list[dict[str, Any]] = Field(default_factory=list)


class Recorded(BaseModel):
    #: an audit entry goes out with every field it has, so a client can recompute its hash
    model_config = ConfigDict(extra="allow")


class AuditChange(Recorded):
    tag: str
    old: float | None
    new: float | None


class AuditRecommendation(Recorded):
    id: str
    version: int


class AuditEntry(Recorded):
    """One entry of the hash-chained audit trail (:mod:`studio.gateway.audit`): ``hash`` is the sha256
    of its canonical JSON without ``hash``, ``prev`` the hash of the entry before it."""

    seq: int
    time: str
    user: str
    action: str
    recommendation: AuditRecommendation | None
    endpoint: str | None
    changes: list[AuditChange]
    outcome: str
    detail: str | None
    prev: str
    hash: str


class AuditVerify(BaseModel):
    ok: bool
    entries: int
    problems: list[str]


class KeyIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    role: Role


class KeyOut(BaseModel):
    id: str
    name: str
    role: Role
    created_at: str | None = None
    key: str | None = Field(default=None, description="the secret, shown once on creation")
