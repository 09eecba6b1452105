"""Faults the virtual plant injects, for tests and drills (``twinopt plant --faults FILE``).

A YAML or JSON file with any of these keys (docs/plant.md, "Faults")::

    reject_writes: [dispenser.pressure_bar]   # writes of these tags always fail (BadDeviceFailure)
    drop_after_writes: 3                      # after the 3rd accepted write, the connection is dropped (once)
    stale_readback_s: 2.0                     # an accepted write takes effect, and reads back, 2 s later
    write_latency_s: 0.5                      # every write to a plant tag answers 0.5 s late
    signals: {dispenser.mode_auto: false}     # force equipment signals (an operator switched to manual)
    slow: {aoi: 1.5}                          # the station's process times are 1.5 times the twin's (wear)
"""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from twins.errors import InputError, format_path
from twins.specmodel import SpecModel

#: the longest delay a fault may add, in wall seconds (a drill, not a hang)
MAX_DELAY_S = 600.0


class Faults(SpecModel):
    """Injected faults of a virtual plant; the default injects none."""

    reject_writes: list[str] = Field(default_factory=list,
                                     description="tag names whose writes (and staged applies) always fail")
    drop_after_writes: int | None = Field(default=None, ge=1,
                                          description="drop the writing client's connection after this many "
                                                      "accepted writes (once)")
    stale_readback_s: float = Field(default=0.0, ge=0, le=MAX_DELAY_S,
                                    description="an accepted write takes effect and reads back this many seconds later")
    write_latency_s: float = Field(default=0.0, ge=0, le=MAX_DELAY_S,
                                   description="every write to a plant tag answers this many seconds late")

    signals: dict[str, bool | float] = Field(default_factory=dict,
                                             description="equipment signals forced to these values")
    slow: dict[str, float] = Field(default_factory=dict,
                                   description="station -> factor (> 0) on every process time of its machines, "
                                               "from the start: a worn or mis-set station the twin does not know of")

    @property
    def any(self) -> bool:
        return bool(self.reject_writes or self.drop_after_writes or self.stale_readback_s or self.write_latency_s
                    or self.signals or self.slow)


def load_faults(path: str | Path) -> Faults:
    """Read and validate a faults file (YAML or JSON); a bad one is a one-line :class:`InputError`."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InputError(f"{file}: cannot read faults file ({err.strerror or err})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{file}{where}: not valid YAML or JSON ({getattr(err, 'problem', None) or err})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{file}: a faults file is a mapping (reject_writes, drop_after_writes, stale_readback_s, "
                         f"write_latency_s, signals, slow)")
    try:
        return Faults.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise InputError(f"{file}: {format_path(first['loc'])}: {first['msg']}") from None
