"""A recommendation's life in the API, every transition checked by the gateway's envelope and
recorded in the audit trail::

    draft ──(offline envelope check passes)──> validated ──approve──> approved ──push──> pushed
      │                                          │                      │                 ├─> verified
      └──────────────── reject ──────────────────┴──────────────────────┘                 └─> rolled_back
                          └─> rejected

* **validated**: the recommendation was made for its scenario (fingerprint), every tag it sets is
  declared by the scenario's envelope and its targets pass the envelope's static rules (hard
  limits, ramps, interlocks at the target state); otherwise it stays ``draft`` with its problems.
* **approved**: an approver whose key did not create it (four eyes) signed off; the approval
  expires (``twinopt serve --approval-hours``, default 8) and a push after that is refused.
* **pushed**: the gateway's push ran (live values read, envelope checked with the audit trail's
  history, written, read back); ``verified`` when every value read back, ``rolled_back`` when it
  failed and every tag is back at its previous value. An ``uncertain`` push stays ``pushed``.
"""
from __future__ import annotations

from typing import Any

from optimizers.recommendation import Recommendation
from twins.errors import InputError

#: status -> statuses it may move to
TRANSITIONS = {
    "draft": {"rejected"},
    "validated": {"approved", "rejected"},
    "approved": {"pushed", "rejected", "verified", "rolled_back"},
    "pushed": {"verified", "rolled_back"},
    "verified": set(),
    "rolled_back": set(),
    "rejected": set(),
}
STATUSES = tuple(TRANSITIONS)


def offline_problems(rec: Recommendation, scenario_arg: str | None) -> list[str]:
    """Why ``rec`` cannot be pushed, judged without the equipment (empty: it can be validated)."""
    from studio.gateway.envelope import check, validate
    from twins.loader import load_scenario

    if rec.kind == "schedule":
        return _schedule_problems(rec)
    if rec.kind == "energy_plan":
        return _energy_problems(rec, scenario_arg)
    try:
        scenario = load_scenario(scenario_arg or rec.scenario)
        validate(rec, scenario)
        static = _static_state(rec, scenario)
        verdict = check(rec, static, (), scenario=scenario)
    except InputError as err:
        return [str(err)]
    return [str(v) for v in verdict.violations]


def _schedule_problems(rec: Recommendation) -> list[str]:
    """A schedule's dispatch lists: for its shop (the shipped instance's), every list a permutation."""
    from studio.gateway.dispatch_plan import schedule_lists
    from studio.shop import recommendation_scenario

    try:
        scenario = recommendation_scenario(rec)
        if scenario is None:
            return [f"the schedule's instance {rec.payload.get('instance')!r} is not a shipped one: its shop cannot "
                    f"be checked here"]
        schedule_lists(rec, scenario)
    except InputError as err:
        return [str(err)]
    return []


def _energy_problems(rec: Recommendation, scenario_arg: str | None) -> list[str]:
    """An energy plan's timeline: fingerprint, slots, every station declared in the envelope's
    ``modes`` and every mode allowed there."""
    from studio.gateway.modes import timeline
    from twins.loader import load_scenario

    try:
        timeline(rec, load_scenario(scenario_arg or rec.scenario))
    except InputError as err:
        return [str(err)]
    return []


def _static_state(rec: Recommendation, scenario: Any) -> dict[str, float]:
    """Every tag at its recommended value, or at the scenario's setpoint when not recommended."""
    from twins.equipment import parameter_of

    assert scenario.equipment is not None
    state: dict[str, float] = {}
    for tag in scenario.equipment.tags:
        station, param = tag.name.split(".", 1)
        value = (rec.payload.get(station) or {}).get(param)
        if value is None:
            p = parameter_of(tag, scenario)
            value = p.default if p.value is None else p.value
        state[tag.name] = float(value)
    return state
