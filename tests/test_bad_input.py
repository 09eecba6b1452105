"""Bad scenarios fail with exit code 2 and one line naming the file, the line and the field
path — never a traceback. Hypothesis throws generated broken scenarios at the loader."""
from __future__ import annotations

import copy
import textwrap

import pytest
import yaml
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twins.errors import ScenarioError
from twins.loader import load_scenario, parse_yaml, scenario_from_data

GOOD = textwrap.dedent("""\
    name: cell
    time_unit: min
    horizon: {length: 600, warmup: 60}
    products:
      - name: widget
        route: [mill, wash]
    sources:
      - kind: arrivals
        interarrival: {dist: exponential, mean: 3}
    stations:
      - name: mill
        buffer: 3
        process_time: {dist: exponential, mean: 2}
        parameters:
          - {name: feed, unit: mm/min, min: 100, max: 400, default: 200}
        response:
          cycle_time_factor: "200 / feed"
      - name: wash
        process_time: 1.5
    """)


def write(tmp_path, text: str):
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_the_good_scenario_loads(tmp_path):
    load_scenario(write(tmp_path, GOOD))
    r = run_cli("run", str(write(tmp_path, GOOD)), "-n", "2", "-q")
    assert r.returncode == 0, r.stderr


CASES = [
    # (description, replace old → new, expected path, expected line)
    ("malformed YAML", ("route: [mill, wash]", "route: [mill, wash"), "sequence started on line 6", 7),
    ("unknown key", ("buffer: 3", "bufer: 3"), "stations[0].bufer: unknown field", 12),
    ("negative time", ("{dist: exponential, mean: 2}", "{dist: exponential, mean: -2}"),
     "stations[0].process_time.mean", 13),
    ("negative constant time", ("process_time: 1.5", "process_time: -1.5"), "stations[1].process_time", 19),
    ("missing time", ("    process_time: 1.5\n", ""), "stations[1].process_time: no process time", 18),
    ("missing horizon length", ("{length: 600, warmup: 60}", "{warmup: 60}"), "horizon.length: required field", 3),
    ("unknown distribution", ("{dist: exponential, mean: 3}", "{dist: poison, mean: 3}"),
     "sources[0].interarrival", 9),
    ("route to unknown station", ("route: [mill, wash]", "route: [mill, dryer]"),
     "products[0].route[1]: unknown station 'dryer'", 6),
    ("parameter outside bounds", ("default: 200}", "default: 200, value: 900}"), "stations[0].parameters[0]", 15),
    ("unsafe expression: import", ('"200 / feed"', '"__import__(\'os\').system(\'ls\')"'),
     "stations[0].response.cycle_time_factor", 17),
    ("unsafe expression: attribute", ('"200 / feed"', '"feed.__class__"'),
     "stations[0].response.cycle_time_factor: attribute access", 17),
    ("expression with unknown name", ('"200 / feed"', '"200 / speed"'), "unknown name 'speed'", 17),
    ("warm-up longer than horizon", ("{length: 600, warmup: 60}", "{length: 600, warmup: 900}"), "horizon", 3),
    ("wrong type", ("buffer: 3", "buffer: three"), "stations[0].buffer", 12),
    ("duplicate key", ("    buffer: 3\n", "    buffer: 3\n    buffer: 4\n"), "duplicate key 'buffer'", 13),
]


@pytest.mark.parametrize("what, change, expect, line", CASES, ids=[c[0] for c in CASES])
def test_bad_scenario_gives_one_line_error_with_file_field_and_line(tmp_path, what, change, expect, line):
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    r = run_cli("run", str(path), "-n", "1", "-q")
    assert r.returncode == 2, (what, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert f"{path}:{line}:" in err, err
    assert expect in err, err


def test_missing_file_and_bad_override_are_one_line_errors(tmp_path):
    r = run_cli("run", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "nope.yaml" in r.stderr and "Traceback" not in r.stderr
    good = write(tmp_path, GOOD)
    for override in ("mill.feed=50", "stations.mill.buffer=-1", "nosuch", "stations.kiln.buffer=1"):
        r = run_cli("run", str(good), "-n", "1", "-q", "--set", override)
        assert r.returncode == 2, (override, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert str(good) in r.stderr, r.stderr
    r = run_cli("run", str(good), "-n", "1", "-q", "--set", "mill.feeed=50")
    assert r.returncode == 2 and "station 'mill' has no parameter 'feeed' (parameters: feed" in r.stderr, r.stderr


def test_cli_argument_errors_exit_2(tmp_path):
    good = write(tmp_path, GOOD)
    for args in (["run", str(good), "-n", "0"], ["run", str(good), "--seed", "x"], ["frobnicate"]):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr


# ---- generated bad scenarios ------------------------------------------------------------------
GOOD_DATA, _ = parse_yaml(GOOD)

junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                 st.text(max_size=12), st.lists(st.integers(-5, 5), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from paths(v, prefix + (i,))


ALL_PATHS = [p for p in paths(GOOD_DATA) if p]


def mutate(data, path, action, value):
    data = copy.deepcopy(data)
    parent = data
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if action == "replace":
        parent[key] = value
    elif action == "delete" and isinstance(parent, dict):
        del parent[key]
    elif action == "delete":
        parent.pop(key)
    elif action == "extra" and isinstance(parent, dict):
        parent["unexpected_" + str(abs(hash(str(value))) % 1000)] = value
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(ALL_PATHS), action=st.sampled_from(["replace", "delete", "extra"]), value=junk)
def test_generated_bad_scenarios_raise_only_scenario_errors(path, action, value):
    data = mutate(GOOD_DATA, path, action, value)
    text = yaml.safe_dump(data)
    parsed, lines = parse_yaml(text, "gen.yaml")
    try:
        scenario_from_data(parsed, "gen.yaml", lines)
    except ScenarioError as err:
        msg = str(err)
        assert msg.startswith("gen.yaml") and "\n" not in msg


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(text):
    try:
        data, lines = parse_yaml(text, "x.yaml")
        scenario_from_data(data, "x.yaml", lines)
    except ScenarioError as err:
        assert "\n" not in str(err)


def test_the_same_mistake_is_the_same_input_error_in_every_library_call():
    from optimizers.energy_plan import replay_plan
    from optimizers.replay import replay_schedule
    from optimizers.setpoints import Evaluator
    from twins.errors import InputError
    from twins.jobshop.instances import load_instance
    from twins.jobshop.schedule import Schedule
    from twins.stats import replicate

    scenario = scenario_from_data(yaml.safe_load(GOOD))
    ft06 = load_instance("ft06")
    calls = [lambda **kw: replicate(scenario, workers=1, **kw),
             lambda **kw: replay_schedule(ft06, Schedule("ft06", []), **kw)]
    for call in calls:
        with pytest.raises(InputError) as err:
            call(replications=0)
        assert str(err.value) == "replications must be ≥ 1, got 0"
        with pytest.raises(InputError) as err:
            call(replications=1, seed=-1)
        assert str(err.value) == "seed must be a non-negative integer, got -1"
    with pytest.raises(InputError, match="^replications must be ≥ 1, got 0$"):
        replay_plan(scenario, None, replications=0)
    with pytest.raises(InputError, match="^replications must be ≥ 1, got 0$"):
        Evaluator(scenario, "throughput", replications=0, seed=0)


# ---- extreme but well-formed numbers ------------------------------------------------------------
# Every numeric field of the scenario format appears in RICH (distributions of every family,
# buffers, machines, horizon, breakdowns, planned stops, calendar, energy, tariff, parameters,
# orders, economics …). Hypothesis puts extreme magnitudes into one to three of them at once; the
# result must load and simulate (exit 0) or be refused at load time with one line (exit 2) —
# never an internal error (exit 1).
RICH = textwrap.dedent("""\
    name: rich
    time_unit: min
    start_clock: 6.5
    horizon: {length: 2000, warmup: 100}
    replications: 3
    products:
      - {name: a, family: fa, route: [mill, wash, pack], margin: 4.5}
      - {name: b, route: [mill, pack]}
    sources:
      - kind: arrivals
        interarrival: {dist: gamma, mean: 4, cv: 0.5}
        mix: {a: 2, b: 1}
        lot_size: 2
        due_after: 60
      - kind: orders
        orders:
          - {product: b, quantity: 3, release: 10, due: 200}
    stations:
      - name: mill
        machines: 2
        buffer: 5
        process_time: {dist: lognormal, mean: 3, cv: 0.4}
        process_time_by_product:
          b: {dist: weibull, shape: 1.5, scale: 2}
        setup:
          default: {dist: triangular, low: 0.5, mode: 1, high: 2}
          matrix: {fa: {b: {dist: uniform, low: 1, high: 3}}}
        breakdowns:
          - {mtbf: 300, mttr: 10}
          - {time_to_failure: {dist: exponential, mean: 50}, repair_time: {dist: normal, mean: 2, sd: 0.5},
             basis: operation}
        planned_stops:
          - {start: 500, duration: 20, every: 480}
        scrap: 0.02
        parameters:
          - {name: feed, min: 100, max: 400, default: 200, value: 250, max_step: 50}
        response: {cycle_time_factor: "200 / feed"}
        energy:
          power_kw: {off: 0.1, idle: 1, setup: 2, busy: 3, blocked: 1, down: 0.5, standby: 0.3}
          standby: {after: 15, wakeup: 2}
          startup: 5
      - name: wash
        buffer: 3
        process_time: {dist: empirical, values: [1, 2, 3.5], weights: [1, 2, 1]}
        rework: {probability: 0.05, station: mill, return_to: mill, max_cycles: 2}
      - name: pack
        process_time: 1.5
    calendar:
      shifts: [{start: "06:00", end: "22:00"}]
      breaks: [{start: "12:00", duration: 30}]
    tariff:
      default_price: 0.2
      periods: [{start: "22:00", end: "06:00", price: 0.1}]
    co2_kg_per_kwh: 0.4
    economics: {margin_per_unit: 5, scrap_cost: 2}
    """)
RICH_DATA, _ = parse_yaml(RICH)
# the same without what is laid out over the horizon (calendar, tariff, repeating stops), so that
# huge horizons are simulated instead of refused
OPEN_ENDED = {k: v for k, v in copy.deepcopy(RICH_DATA).items() if k not in ("calendar", "tariff")}
del OPEN_ENDED["stations"][0]["planned_stops"]


def leaf_value(data, path):
    for key in path:
        data = data[key]
    return data


NUMERIC_PATHS = [p for p in paths(RICH_DATA) if isinstance(leaf_value(RICH_DATA, p), (int, float))
                 and not isinstance(leaf_value(RICH_DATA, p), bool)]
EXTREMES = (1e308, -1e308, 1.7976931348623157e308, 1e-308, -1e-308, 5e-324, 10**30, -10**30, 2**64, 10**400,
            float("inf"), float("-inf"), float("nan"), 0, 0.0, -1)
extreme = st.one_of(st.sampled_from(EXTREMES), st.floats(), st.integers(-10**40, 10**40),
                    st.floats(min_value=-1e-300, max_value=1e-300))


def test_rich_scenario_covers_every_kind_of_numeric_field():
    sc = scenario_from_data(RICH_DATA)
    assert len(NUMERIC_PATHS) > 60
    families = {s.process_time.dist for s in sc.stations}
    families |= {d.dist for s in sc.stations for d in s.process_time_by_product.values()}
    assert families >= {"lognormal", "weibull", "empirical", "constant"}


def simulate_like_the_cli(data, budget: int = 3000) -> int:
    """What ``twinopt run -n 1 --json`` does, in process and with at most ``budget`` events per
    phase (an extreme scenario may be valid yet take forever): the exit code it would give."""
    import io
    import json

    from rich.console import Console

    from studio.output import print_kpi_table
    from twins.kpi import line_kpis, station_kpis
    from twins.model import Line
    from twins.stats import Replication, Results

    parsed, lines = parse_yaml(yaml.safe_dump(data), "gen.yaml")
    try:
        sc = scenario_from_data(parsed, "gen.yaml", lines)
    except ScenarioError as err:
        assert str(err).startswith("gen.yaml") and "\n" not in str(err), str(err)
        return 2
    line = Line(sc, 1, 0)

    def advance(until):
        env = line.env
        for _ in range(budget):
            if env.peek() >= until:
                break
            env.step()
        if env.peek() >= until:
            line.run(until)
        return line.snapshot()

    s0 = advance(sc.horizon.warmup)
    s1 = advance(sc.horizon.length)
    rep = Replication(0, line_kpis(line, s0, s1), station_kpis(line, s0, s1))
    summary = Results(sc, 1, [rep]).summary()
    json.dumps(summary, allow_nan=False)
    print_kpi_table(summary, sc, out=Console(file=io.StringIO(), width=120))
    return 0


def test_the_rich_scenario_simulates():
    assert simulate_like_the_cli(RICH_DATA) == 0


def has_path(data, path) -> bool:
    for k in path:
        if not (isinstance(data, dict) and k in data or isinstance(data, list) and k < len(data)):
            return False
        data = data[k]
    return True


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from([RICH_DATA, OPEN_ENDED]),
       changes=st.lists(st.tuples(st.sampled_from(NUMERIC_PATHS), extreme), min_size=1, max_size=3))
def test_extreme_numbers_load_and_run_or_fail_with_one_line(base, changes):
    data = base
    for path, value in changes:
        if has_path(data, path):
            data = mutate(data, path, "replace", value)
    assert simulate_like_the_cli(data) in (0, 2)


@pytest.mark.parametrize("change", [
    ("{dist: lognormal, mean: 3, cv: 0.4}", "{dist: lognormal, mean: 3, cv: 1e308}"),
    ("{dist: gamma, mean: 4, cv: 0.5}", "{dist: gamma, mean: 4, cv: 1e-308}"),
    ("{dist: weibull, shape: 1.5, scale: 2}", "{dist: weibull, shape: 1e-308, scale: 2}"),
    ("{mtbf: 300, mttr: 10}", "{mtbf: 1e308, mttr: 10}"),
    ("{length: 2000, warmup: 100}", "{length: .inf, warmup: 100}"),
    ("{length: 2000, warmup: 100}", "{length: 1e308, warmup: 100}"),
    ("machines: 2", "machines: 1000000000000000000000000000000"),
    ("{a: 2, b: 1}", "{a: .nan, b: 1}"),
], ids=["lognormal cv", "gamma cv", "weibull shape", "mtbf", "inf horizon", "huge horizon with calendar",
        "huge machine count", "nan weight"])
def test_extreme_values_exit_2_with_one_line_naming_the_field(tmp_path, change):
    old, new = change
    assert old in RICH
    path = write(tmp_path, RICH.replace(old, new, 1))
    r = run_cli("run", str(path), "-n", "1", "-q")
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{path}:" in err and any(f": {field}" in err for field in ("stations[", "sources[", "horizon")), err
