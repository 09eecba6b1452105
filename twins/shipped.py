"""The data shipped with twinopt: example scenarios by name and the public scheduling instances.

They live in the ``scenarios`` package as package data (so a wheel carries them) and are found
through :mod:`importlib.resources` — never through paths into a source checkout, which an
installed twinopt does not have. This module owns every such lookup.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from twins.errors import ScenarioError

SCENARIO_SUFFIX = ".yaml"


def data_dir() -> Path:
    """The directory of the ``scenarios`` package.

    pip always unpacks wheels, so this is a real directory; scenarios need one anyway, because
    a scenario may name data files (recipe CSVs) relative to itself."""
    root = files("scenarios")
    if not isinstance(root, Path):  # a zipped install: not supported, and never made by pip
        raise RuntimeError(f"twinopt's shipped data is not a directory on disk ({root!r}); install twinopt with pip")
    return root


def instance_dir() -> Path:
    """Folder of the shipped scheduling instances: ``jssp/``, ``pfsp/``, ``fjsp/`` (see its README.md)."""
    return data_dir() / "instances"


def scenario_names() -> list[str]:
    """Names of the shipped scenarios (``smt_line``, ``glue_dispensing`` …), sorted."""
    return sorted(p.stem for p in data_dir().glob(f"*{SCENARIO_SUFFIX}"))


def shipped_scenario(name: str) -> Path | None:
    """The file of the shipped scenario ``name`` (with or without ``.yaml``), or None."""
    stem = name[:-len(SCENARIO_SUFFIX)] if name.endswith(SCENARIO_SUFFIX) else name
    if not stem or stem != Path(stem).name:  # a path with folders is never a shipped name
        return None
    path = data_dir() / f"{stem}{SCENARIO_SUFFIX}"
    return path if path.is_file() else None


def scenario_path(name_or_path: str | Path) -> Path:
    """A scenario file: ``name_or_path`` itself when it exists, else the shipped scenario of that
    name. Neither is a one-line :class:`~twins.errors.ScenarioError` listing the shipped names."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = shipped_scenario(str(name_or_path))
    if shipped is not None:
        return shipped
    raise ScenarioError(f"cannot read file (no such file), and no shipped scenario has this name "
                        f"(shipped: {', '.join(scenario_names())})", str(name_or_path))
