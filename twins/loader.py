"""Read scenario YAML into a validated :class:`~twins.spec.Scenario`, with errors that name the
file, the line and the field path (``smt_line.yaml:42: stations[3].buffer: …``).

YAML is composed into nodes first so every value keeps its line; pydantic's error locations and
the spec's own :class:`~twins.errors.SpecError` paths are mapped back onto those lines.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from twins.equipment import Equipment, check_equipment
from twins.errors import ScenarioError, SpecError, format_path
from twins.shipped import scenario_path
from twins.spec import Scenario

Path_ = tuple[str | int, ...]
#: how messages name the scenario format
SCENARIO_FORMAT = "the scenario format; see `twinopt schema`"


def _lines(node: yaml.Node, path: Path_, out: dict[Path_, int], file: str) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
            if key in seen:
                raise ScenarioError(f"duplicate key {key!r}", file, path + (key,), k.start_mark.line + 1)
            seen.add(key)
            out[path + (key,)] = k.start_mark.line + 1
            _lines(v, path + (key,), out, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, path + (i,), out, file)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false are booleans, so a machine state
    called ``off`` (or a ``yes``/``no``/``on`` value) stays a string."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _ch in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_ch, []).append(
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))


def parse_yaml(text: str, file: str = "<scenario>") -> tuple[Any, dict[Path_, int]]:
    """YAML text → (plain data, {field path: line}). Malformed YAML is a :class:`ScenarioError`."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError("the file is empty", file)
        lines: dict[Path_, int] = {}
        _lines(node, (), lines, file)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "cannot parse"
        if err.context and err.context_mark and err.problem_mark and err.context_mark.line != err.problem_mark.line:
            problem += f" ({err.context} started on line {err.context_mark.line + 1})"
        raise ScenarioError(f"malformed YAML: {problem}", file, (), mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise ScenarioError(f"malformed YAML: {err}", file) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def _data_path(data: Any, loc: Sequence[str | int], missing: bool = False) -> Path_:
    """The components of a pydantic error location that exist in the data (pydantic inserts
    union tags and validator names); for a ``missing`` error the absent field is named too."""
    path: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
            path.append(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
            path.append(part)
        elif missing and i == len(loc) - 1:
            path.append(part)
    return tuple(path)


def _line_for(lines: Mapping[Path_, int], path: Path_) -> int | None:
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _first_error(err: ValidationError, data: Any, what: str = SCENARIO_FORMAT
                 ) -> tuple[Path_, str]:
    errors = err.errors(include_url=False)
    # prefer the most specific complaint: the deepest location
    e = max(errors, key=lambda e: len(_data_path(data, e["loc"], e["type"] == "missing")))
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if e["type"] == "extra_forbidden":
        msg = f"unknown field (not part of {what})"
    elif e["type"] == "missing":
        msg = "required field is missing"
    more = len(errors) - 1
    if more:
        msg += f" (and {more} more problem{'s' * (more > 1)})"
    return _data_path(data, e["loc"], e["type"] == "missing"), msg


def scenario_from_data(data: Any, file: str | None = None, lines: Mapping[Path_, int] | None = None,
                       base_dir: str | Path | None = None, *, allow_files: bool = True) -> Scenario:
    """Validate plain data (as read from YAML) into a Scenario; errors are :class:`ScenarioError`.
    ``allow_files=False``: fields that would read a file are refused."""
    lines = lines or {}
    if not isinstance(data, Mapping):
        raise ScenarioError(f"a scenario must be a mapping of fields, not {type(data).__name__}", file, (), 1)
    ctx: dict[str, Any] = {"base_dir": str(base_dir or (Path(file).parent if file else ".")),
                           "allow_files": allow_files}
    with located_errors(data, file, lines):
        scenario = Scenario.model_validate(data, context=ctx)
    return scenario


@contextmanager
def located_errors(data: Any, file: str | None, lines: Mapping[Path_, int],
                   what: str = SCENARIO_FORMAT) -> Iterator[None]:
    """Turn pydantic's and the spec's errors raised inside the block into one-line
    :class:`ScenarioError` s naming the file, the line and the field path (``what``: the format)."""
    try:
        yield
    except ValidationError as err:
        path, msg = _first_error(err, data, what)
        raise ScenarioError(msg, file, path, _line_for(lines, path)) from None
    except SpecError as err:
        raise ScenarioError(err.msg, file, err.path, _line_for(lines, err.path)) from None


def read_yaml_file(path: str | Path) -> tuple[Any, dict[Path_, int], str]:
    """``(data, lines, file)`` of a YAML file; an unreadable file or bad YAML is a ScenarioError."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ScenarioError(f"cannot read file ({err.strerror or err})", file) from None
    data, lines = parse_yaml(text, file)
    return data, lines, file


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Read and validate a scenario file — a path, or the name of a shipped scenario (``smt_line``,
    see :mod:`twins.shipped`) — applying ``--set path=value`` overrides first."""
    data, lines, file = read_yaml_file(scenario_path(path))
    return _with_overrides(data, lines, file, overrides)


def scenario_from_text(text: str, file: str, overrides: Iterable[str] = (), *, allow_files: bool = True) -> Scenario:
    """Validate scenario YAML text (named ``file`` in errors). ``allow_files=False`` refuses fields
    that read other files (recipe data CSVs): a scenario uploaded to a server must be self-contained."""
    data, lines = parse_yaml(text, file)
    return _with_overrides(data, lines, file, overrides, allow_files=allow_files)


def _with_overrides(data: Any, lines: dict[Path_, int], file: str, overrides: Iterable[str], *,
                    allow_files: bool = True) -> Scenario:
    if isinstance(data, dict):
        for item in overrides:
            try:
                apply_override(data, item)
            except ScenarioError as err:  # name the file the override was meant for
                raise ScenarioError(err.msg, file, err.path, err.line) from None
    return scenario_from_data(data, file, lines, allow_files=allow_files)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``path=value`` to raw scenario data, in place.

    ``station.parameter=value`` sets a process parameter's setpoint (``dispenser.pressure_bar=2.8``);
    any other dotted path walks mappings by key and lists by index or by an item's ``name``
    (``stations.reflow.machines=2``, ``horizon.length=960``). The value is read as YAML.
    """
    if "=" not in item:
        raise ScenarioError(f"--set {item!r}: expected path=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ScenarioError(f"--set {item!r}: empty path")
    try:
        value = yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError:
        value = raw
    stations = data.get("stations")
    stations = stations if isinstance(stations, list) else []
    if len(parts) == 2:
        st = next((s for s in stations if isinstance(s, dict) and s.get("name") == parts[0]), None)
        if st is not None:
            param = next((p for p in st.get("parameters") or []
                          if isinstance(p, dict) and p.get("name") == parts[1]), None)
            if param is not None:
                param["value"] = value
                return
            if parts[0] not in data:  # station.parameter shorthand, but no such parameter
                names = [p.get("name") for p in st.get("parameters") or [] if isinstance(p, dict)]
                raise ScenarioError(f"--set {key}: station {parts[0]!r} has no parameter {parts[1]!r} "
                                    f"(parameters: {', '.join(map(str, names)) or 'none'}); "
                                    f"other station fields: stations.{parts[0]}.<field>=value")
    cur: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            idx = int(part) if part.isdigit() else next(
                (k for k, x in enumerate(cur) if isinstance(x, dict) and x.get("name") == part), None)
            if idx is None or not 0 <= idx < len(cur):
                raise ScenarioError(f"--set {key}: no item {part!r} in {format_path(parts[:i]) or 'the scenario'}")
            if last:
                cur[idx] = value
            cur = cur[idx]
        elif isinstance(cur, dict):
            if last:
                cur[part] = value
            elif part not in cur or cur[part] is None:
                cur[part] = {}
            cur = cur[part]
        else:
            raise ScenarioError(f"--set {key}: {'.'.join(parts[:i])} is a value, not a section")


M = TypeVar("M", bound=BaseModel)


def load_document(path: str | Path, model: type[M], what: str, check: Callable[[M], None] | None = None) -> M:
    """Read a YAML or JSON file other than a scenario (an envelope, a plant state) into ``model``,
    then run ``check`` on it (cross-references raising :class:`SpecError` with a field path).
    Every error is a :class:`ScenarioError` naming the file, the line and the field; ``what``
    names the format in messages (``"the plant-state format (docs/state.md)"``)."""
    data, lines, file = read_yaml_file(path)
    if not isinstance(data, Mapping):
        raise ScenarioError(f"expected a mapping of fields ({what}), not {type(data).__name__}", file, (), 1)
    with located_errors(data, file, lines, what):
        doc = model.model_validate(data)
        if check is not None:
            check(doc)
    return doc


def load_envelope(path: str | Path, scenario: Scenario) -> Equipment:
    """Read a separate envelope file (the content of a scenario's ``equipment:`` section) for
    ``scenario``; errors are :class:`ScenarioError` naming the file, the line and the field."""
    return load_document(path, Equipment, "the envelope format (docs/gateway.md)",
                         lambda envelope: check_equipment(envelope, scenario, prefix=()))
