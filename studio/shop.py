"""Scenario names the gateway's commands accept: a scenario file or shipped scenario, or a shipped
scheduling instance (``ft06``, ``la01``, ``ta001`` …), which stands for its bare shop
(:func:`optimizers.replay.shop_scenario`: one station per machine, one product per job, every job
released once at t = 0) — the scenario a ``schedule`` recommendation is made for.

``twinopt plant ft06`` serves that shop; ``twinopt push SCHEDULE_REC`` finds it from the
recommendation (:func:`recommendation_scenario`) to check the fingerprint before it connects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from optimizers.recommendation import Recommendation
from twins.errors import InputError, ScenarioError
from twins.spec import Scenario


def instance_of(name: str) -> Any | None:
    """The shipped scheduling instance called ``name`` in any format, or None (a path never is)."""
    from twins.jobshop.instances import FORMATS, load_instance, shipped_instances

    if not name or Path(name).name != name:
        return None
    fmt = next((f for f in FORMATS if name in shipped_instances(f)), None)
    return load_instance(name, fmt) if fmt is not None else None


def resolve_scenario(ref: str, overrides: tuple[str, ...] = ()) -> tuple[Scenario, bool]:
    """``(scenario, is_shop)``: the scenario file or shipped scenario ``ref``, else the bare shop of
    the shipped instance ``ref``. Neither: the loader's one-line error."""
    from twins.loader import load_scenario

    try:
        return load_scenario(ref, overrides), False
    except ScenarioError:
        instance = instance_of(ref) if not Path(ref).exists() else None
        if instance is None:
            raise
    if overrides:
        raise InputError(f"{ref} is a scheduling instance: --set does not apply to its shop scenario")
    from optimizers.replay import shop_scenario

    return shop_scenario(instance), True


def recommendation_scenario(rec: Recommendation) -> Scenario | None:
    """The shop a ``schedule`` recommendation was made for, rebuilt from its shipped instance and
    the replay options its provenance records (cv, breakdowns, time unit); None when the instance
    is not a shipped one (the caller then needs the plant's ``line.fingerprint`` or a scenario)."""
    name = rec.payload.get("instance") if isinstance(rec.payload, dict) else None
    instance = instance_of(name) if isinstance(name, str) else None
    if instance is None:
        return None
    from optimizers.replay import shop_scenario

    extra = rec.provenance.extra or {}
    try:
        return shop_scenario(instance, cv=float(extra.get("cv", 0.0)), breakdowns=list(extra.get("breakdowns") or []),
                             time_unit=str(extra.get("time_unit", "min")))
    except (InputError, TypeError, ValueError):
        return None
