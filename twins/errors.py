"""Errors a user can cause. Every one of them renders as a single line; the CLI exits with 2."""
from __future__ import annotations

from collections.abc import Sequence


class InputError(Exception):
    """Bad user input (a file, a field, a value). ``str(err)`` is one line fit for a terminal."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


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
