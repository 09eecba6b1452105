"""The common output of every optimizer: a versioned, replayed, JSON round-trippable recommendation.

A :class:`Recommendation` carries *what* to do (``payload``: setpoints, a schedule or an energy
plan), *what it is expected to change* (baseline and predicted KPIs with 95 % confidence
intervals and their paired difference, all from replaying both in the twin under common random
numbers) and *where it came from* (:class:`Provenance`: method, library versions, seed, budget,
solver status and gap, wall time), tied to the exact scenario by a fingerprint.

    rec = Recommendation.from_comparison("setpoints", {"dispenser": {"speed_mm_s": 45}}, cmp,
                                         Provenance(method="optuna-tpe", seed=1, budget=60))
    text = rec.to_json();  Recommendation.from_json(text) == rec   # exact round trip
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twins.spec import Scenario
from twins.spec import fingerprint as spec_fingerprint
from twins.stats import Comparison, Results

Kind = Literal["setpoints", "schedule", "energy_plan"]

#: Libraries whose versions are recorded in every provenance.
LIBRARIES = ("twinopt", "simpy", "numpy", "scipy", "pydantic", "ortools", "pyomo", "highspy", "optuna",
             "stable-baselines3", "sb3-contrib", "gymnasium", "torch")


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def fingerprint(scenario: Scenario) -> str:
    """sha256 of the scenario's canonical JSON without its ``equipment`` envelope (:func:`twins.spec.fingerprint`,
    which plant states share)."""
    return spec_fingerprint(scenario)


class Estimate(BaseModel):
    """A KPI estimate: mean and 95 % half width (None where undefined), with its unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mean: float | None
    half_width: float | None = None
    unit: str = ""


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str = Field(description="e.g. optuna-tpe, cpsat, milp-highs, maskable_ppo, rule:mwkr")
    library_versions: dict[str, str] = Field(default_factory=library_versions)
    seed: int | None = None
    budget: dict[str, Any] | int | float | None = Field(default=None, description="evaluations, seconds, timesteps …")
    solver_status: str | None = None
    gap: float | None = Field(default=None, description="relative optimality gap, where a solver reports one")
    wall_time_s: float | None = None
    replications: int | None = Field(default=None, description="twin replications behind the KPI estimates")
    extra: dict[str, Any] = Field(default_factory=dict)


class Recommendation(BaseModel):
    """A recommendation, replayed in the twin. ``to_json``/``from_json`` round-trip exactly."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    version: int = 1
    created_at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    kind: Kind
    scenario: str = Field(description="scenario (or instance) name")
    scenario_fingerprint: str
    payload: dict[str, Any]
    baseline: dict[str, Estimate] = Field(default_factory=dict, description="KPIs of the as-is replay")
    predicted: dict[str, Estimate] = Field(default_factory=dict, description="KPIs with the recommendation applied")
    difference: dict[str, Estimate] = Field(default_factory=dict,
                                            description="paired predicted − baseline under common random numbers")
    provenance: Provenance

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Recommendation:
        return cls.model_validate_json(text)

    @staticmethod
    def estimates(results: Results, kpis: list[str] | None = None) -> dict[str, Estimate]:
        summary = results.summary()["kpis"]  # numbers already JSON-safe: None where undefined
        return {k: Estimate(mean=v["mean"], half_width=v["half_width"], unit=v["unit"])
                for k, v in summary.items() if kpis is None or k in kpis}

    @classmethod
    def from_comparison(cls, kind: Kind, payload: dict[str, Any], comparison: Comparison, provenance: Provenance,
                        kpis: list[str] | None = None, scenario: Scenario | None = None) -> Recommendation:
        """Build from a paired twin comparison: ``comparison.a`` is the baseline (as-is),
        ``comparison.b`` the scenario with the recommendation applied."""
        base = scenario or comparison.a.scenario
        diff = {}
        units = comparison.summary()["kpis"]
        for k, v in units.items():
            if kpis is None or k in kpis:
                diff[k] = Estimate(mean=v["diff"], half_width=v["half_width"], unit=v["unit"])
        provenance.replications = provenance.replications or len(comparison.a.replications)
        if provenance.seed is None:
            provenance.seed = comparison.a.seed
        return cls(kind=kind, scenario=base.name, scenario_fingerprint=fingerprint(base), payload=payload,
                   baseline=cls.estimates(comparison.a, kpis), predicted=cls.estimates(comparison.b, kpis),
                   difference=diff, provenance=provenance)
