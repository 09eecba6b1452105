"""Job kinds: what a ``POST /jobs`` may ask for, checked up front, and how a worker runs it.

A job runs the very command a user would (``twinopt run``, ``compare``, ``optimize``, ``recommend
schedule``, ``recommend energy``, ``train``) in a worker process, with the job's ``params`` as the
command's options (``{"replications": 10, "set": ["dispenser.pressure_bar=3.0"]}`` is
``--replications 10 --set dispenser.pressure_bar=3.0``), so a run job's result is exactly what
``twinopt run --json`` writes. Only the options listed per kind are accepted: paths, output files
and process counts are the service's business, and caps keep one request from exhausting the
machine (:class:`Limits`).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib.metadata
import io
import json
import math
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from twins.errors import InputError, ScenarioError

KINDS = ("run", "compare", "optimize", "schedule", "energy", "train")


@dataclass(frozen=True)
class Limits:
    """Per-job caps (``twinopt serve`` options)."""

    replications: int = 100
    budget: int = 500
    time_limit_s: float = 600.0
    timesteps: int = 1_000_000
    horizon_h: float = 24 * 366  # simulated hours per replication
    body_bytes: int = 1_000_000


@dataclass(frozen=True)
class Kind:
    command: tuple[str, ...]
    options: frozenset[str]
    #: the command's output options -> file names in the job's folder
    outputs: Mapping[str, str] = field(default_factory=dict)
    quiet: str | None = "--quiet"
    recommends: bool = False
    fixed: tuple[str, ...] = ()
    #: its simulations fan out: they run where the server's ``--executor`` says
    fans_out: bool = False


SPECS: dict[str, Kind] = {
    "run": Kind(("run",), frozenset({"replications", "seed", "set", "from_state"}),
                {"--json": "result.json", "--html": "report.html"}, fixed=("--workers", "1"), fans_out=True),
    "compare": Kind(("compare",), frozenset({"b", "replications", "seed", "set_a", "set_b", "from_state"}),
                    {"--json": "result.json"}, fixed=("--workers", "1"), fans_out=True),
    "optimize": Kind(("optimize",), frozenset({"budget", "sampler", "objective", "minimize", "params", "replications",
                                               "top_k", "final_replications", "seed", "set"}),
                     {"--json": "recommendation.json", "--html": "report.html"}, recommends=True,
                     fixed=("--workers", "1"), fans_out=True),
    "schedule": Kind(("recommend", "schedule"), frozenset({"solver", "time_limit", "seed", "replications", "cv",
                                                           "mtbf", "mttr", "idle_kw", "busy_kw", "time_unit"}),
                     {"--out": "recommendation.json"}, quiet=None, recommends=True),
    "energy": Kind(("recommend", "energy"), frozenset({"station", "target", "slot", "time_limit", "replications",
                                                       "seed", "set"}),
                   {"--out": "recommendation.json"}, quiet=None, recommends=True),
    "train": Kind(("train",), frozenset({"algo", "timesteps", "envs", "seed", "env_kwargs", "policy_kwargs",
                                         "algo_kwargs", "eval_freq", "eval_episodes"}),
                  {"--out": "model"}, quiet="--no-progress"),
}


def code_version() -> str:
    try:
        return importlib.metadata.version("twinopt")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


class ParamError(InputError):
    """A job parameter that cannot be used; ``loc`` is its field path in the request."""

    def __init__(self, loc: tuple[str | int, ...], msg: str, line: int | None = None):
        self.loc, self.msg, self.line = loc, msg, line
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def options_argv(kind: str, params: Mapping[str, Any]) -> list[str]:
    """The command-line options of ``params`` (``b`` and unknown keys are refused here)."""
    spec = SPECS[kind]
    argv: list[str] = []
    for key, value in params.items():
        if key not in spec.options:
            allowed = ", ".join(sorted(spec.options))
            raise ParamError(("params", key), f"not an option of a {kind} job (allowed: {allowed})")
        if key == "b":
            continue
        opt = _option(key)
        if isinstance(value, bool):
            if value:
                argv.append(opt)
        elif isinstance(value, list):
            if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
                raise ParamError(("params", key), "a list of strings or numbers is expected")
            for v in value:
                argv += [opt, str(v)]
        elif isinstance(value, dict):
            argv += [opt, json.dumps(value)]
        elif isinstance(value, str | int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise ParamError(("params", key), "must be a finite number")
            argv += [opt, str(value)]
        elif value is None:
            continue
        else:
            raise ParamError(("params", key), f"unsupported value {value!r}")
    return argv


@contextlib.contextmanager
def _captured() -> Iterator[io.StringIO]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        yield err


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse a twinopt command line as the CLI does; its errors become an InputError.

    The API parses in many threads at once: the parser raises instead of printing to a redirected
    stderr (redirection is process-wide: concurrent requests swapped each other's streams, lost
    their messages and could leave the server's stdout and stderr captured for good)."""
    try:
        return _parser().parse_args(argv)
    except SystemExit:  # --help or --version: not job options
        raise InputError("bad options") from None


def _refuse(message: str) -> NoReturn:
    raise InputError(message)


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The CLI's parser (built once: parsing does not change it), raising InputError on an error."""
    from studio.cli import build_parser

    parser = build_parser()
    todo = [parser]
    while todo:
        p = todo.pop()
        p.error = _refuse  # type: ignore[method-assign]
        for action in p._actions:  # argparse keeps its subcommands' parsers in its private actions
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    return parser


def command_argv(kind: str, positional: list[str], params: Mapping[str, Any], folder: Path | None = None) -> list[str]:
    """The full twinopt command line of a job; outputs go to ``folder`` (a placeholder when None)."""
    spec = SPECS[kind]
    argv = [*spec.command, *positional, *options_argv(kind, params), *spec.fixed]
    base = folder or Path("JOB")
    for opt, name in spec.outputs.items():
        argv += [opt, str(base / name)]
    if spec.quiet:
        argv.append(spec.quiet)
    return argv


def check_params(kind: str, args: argparse.Namespace, limits: Limits) -> None:
    """The caps that keep one job from exhausting the machine."""
    caps: dict[str, float] = {"replications": limits.replications, "final_replications": limits.replications,
                              "budget": limits.budget, "time_limit": limits.time_limit_s,
                              "timesteps": limits.timesteps, "top_k": 50, "envs": 4, "eval_episodes": 100}
    for key, cap in caps.items():
        value = getattr(args, key, None)
        if value is not None and key in SPECS[kind].options and value > cap:
            raise ParamError(("params", key), f"at most {cap:g} per job on this server, got {value:g}")


def check_horizon(scenario: Any, limits: Limits, loc: tuple[str | int, ...] = ("params", "set")) -> None:
    from twins.calendar import UNITS_PER_HOUR

    hours = float(scenario.horizon.length) / UNITS_PER_HOUR[scenario.time_unit]
    if hours > limits.horizon_h:
        raise ParamError(loc, f"horizon of {hours:g} simulated hours is above this server's cap of "
                              f"{limits.horizon_h:g} h per replication")


def cache_key(kind: str, fingerprints: list[str], args: argparse.Namespace) -> str:
    """Same scenario(s), kind, options (defaults filled in) and code ⇒ same key."""
    options = {k: v for k, v in sorted(vars(args).items())
               if k in SPECS[kind].options or k in ("overrides", "set_a", "set_b")}
    text = json.dumps({"kind": kind, "scenarios": fingerprints, "options": options, "version": code_version()},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------ in the worker

@dataclass
class Outcome:
    result: Any
    report: bool
    recommendation: str | None  # the Recommendation JSON


class JobCancelled(Exception):
    """Raised by the progress listener when the job was cancelled."""


def execute(kind: str, positional: list[str], params: Mapping[str, Any], folder: Path,
            progress: Callable[[float], None], scenario_label: str | None = None, executor: str | None = "local",
            ray_address: str | None = None) -> Outcome:
    """Run the job's command in this process with outputs in ``folder``; errors propagate.
    A kind that fans out runs its simulations on ``executor`` (the server's ``--executor``,
    ``--ray-address``); the numbers are the same on either.

    Writes ``result.json`` or ``recommendation.json``, and where the kind has them ``report.html``
    and ``figures.json`` (the report's plotly figures)."""
    from twins.progress import listen

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    args = parse(command_argv(kind, positional, params, folder))
    if SPECS[kind].fans_out:
        args.executor, args.ray_address = executor or "local", ray_address
    figs: list[Any] | None = None
    with listen(progress), _captured():
        if kind == "run":
            figs = _run(args, folder, scenario_label)
        elif kind == "optimize":
            figs = _optimize(args, folder)
        else:
            args._main(args)
    if figs is not None:
        import plotly.io

        (folder / "figures.json").write_text("[" + ",".join(plotly.io.to_json(f) for f in figs) + "]")
    spec = SPECS[kind]
    if kind == "train":
        model = folder / "model"
        result: Any = {"files": sorted(str(p.relative_to(folder)) for p in model.rglob("*") if p.is_file())}
        config = model / "config.json"
        if config.exists():
            result["config"] = json.loads(config.read_text())
        return Outcome(result, False, None)
    text = (folder / ("recommendation.json" if spec.recommends else "result.json")).read_text()
    return Outcome(json.loads(text), (folder / "report.html").exists(), text if spec.recommends else None)


def _run(args: argparse.Namespace, folder: Path, label: str | None) -> list[Any]:
    """``twinopt run``'s own code: the summary --json writes, the report --html writes, its figures."""
    from studio.commands.run import simulate
    from studio.output import write_json
    from studio.report import figures, write_report

    results, summary = simulate(args)
    if label is not None:
        summary["scenario_file"] = label
    write_json(args.json, summary)
    write_report(results, args.html, source=label or args.scenario)
    return figures(results)


def _optimize(args: argparse.Namespace, folder: Path) -> list[Any]:
    from optimizers.search import figures, write_html
    from studio.commands.optimize import run_search

    html, args.html = args.html, None
    result = run_search(args, args.json)
    write_html(result, html)
    return figures(result)


def scenario_error_loc(err: ScenarioError, base: tuple[str | int, ...] = ()) -> dict[str, Any]:
    return {"loc": [*base, *err.path], "line": err.line, "msg": err.msg}
