"""The base of every model of the scenario format (pydantic's habit: one typed schema is the
single source of truth for validation, documentation and error messages).

Unknown keys are errors (``extra="forbid"``), so a typo in a scenario is reported, not silently
ignored; ``inf`` and ``nan`` are refused everywhere (``allow_inf_nan=False``), so no number in a
scenario can make the twin's arithmetic overflow or poison a KPI. A module of its own so that
every part of the format (calendar, energy, responses, the spec itself) can import it without
import cycles.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    """A part of the scenario format: unknown keys are errors, inf and nan are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
