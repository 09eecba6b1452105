"""The foaming line: a shipped scenario with 208 process parameters, of which twelve matter
(benchmarks/make_foaming_line.py holds the truth). Loading must stay fast at that size, bad
parameter spaces are one-line errors, and the parameter environment takes it as it is."""
from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from twins.errors import ScenarioError, SpecError
from twins.loader import load_scenario, scenario_from_data
from twins.response import MAX_CORNER_PARAMETERS, Parameter, check_response_ranges, range_check_points
from twins.stats import replicate

ROOT = Path(__file__).resolve().parent.parent
IMPORTANT = ("mould_prep.release_agent_g", "mixing_head.iso_index", "mixing_head.polyol_temp_c",
             "mixing_head.iso_temp_c", "mixing_head.pressure_polyol_bar", "mixing_head.pressure_iso_bar",
             "mixing_head.output_g_s", "mixing_head.shot_time_s", "curing.cure_time_s", "curing.mould_temp_c",
             "curing.clamp_pressure_bar", "crushing.crush_pct")


@pytest.fixture(scope="module")
def foaming():
    return load_scenario("foaming_line")


def test_the_foaming_line_has_over_200_parameters_with_units_and_bounds(foaming):
    params = [(st.name, p) for st in foaming.stations for p in st.parameters]
    assert len(params) >= 200
    assert all(p.min < p.setpoint < p.max and p.unit for s, p in params)
    keys = {f"{s}.{p.name}" for s, p in params}
    assert set(IMPORTANT) <= keys


def test_the_generator_script_holds_the_same_truth():
    from benchmarks.make_foaming_line import IMPORTANT as truth

    assert tuple(truth) == IMPORTANT


def test_the_foaming_line_runs_and_today_is_far_from_a_known_better_recipe(foaming):
    from optimizers.setpoints import with_setpoints

    base = replicate(foaming, 2, seed=0, workers=1)
    better = with_setpoints(foaming, {
        "mixing_head": {"shot_time_s": 3.6, "output_g_s": 347, "iso_index": 104.3, "pressure_iso_bar": 150},
        "curing": {"cure_time_s": 185, "mould_temp_c": 62.5}, "crushing": {"crush_pct": 72}})
    tuned = replicate(better, 2, seed=0, workers=1)
    assert base.ci("good_units")[0] > 100
    assert tuned.ci("margin")[0] > 1.3 * base.ci("margin")[0]


def test_range_check_samples_large_boxes_and_still_finds_a_bad_extreme(foaming):
    st = next(s for s in foaming.stations if s.name == "mixing_head")
    assert len(st.parameters) > MAX_CORNER_PARAMETERS
    started = time.perf_counter()
    check_response_ranges(st.response.compile(tuple(p.name for p in st.parameters)), st.parameters)
    print(f"range check of {len(st.parameters)} parameters: {time.perf_counter() - started:.3f} s")
    n = len(range_check_points(st.parameters)["iso_index"])
    assert n < 4 * 2 ** MAX_CORNER_PARAMETERS  # a sample, not 2^26 corners
    # negative power only where one parameter is near its max, the others anywhere
    data = copy.deepcopy(foaming.model_dump(by_alias=True, exclude_none=True))
    mixing = next(s for s in data["stations"] if s["name"] == "mixing_head")
    mixing["response"]["power_kw"] = "0.7 - 0.1 * shot_time_s"  # < 0 above 7 s (range 3–8 s)
    with pytest.raises(ScenarioError) as err:
        scenario_from_data(data, "foaming.yaml")
    assert "power_kw evaluates to" in str(err.value) and "shot_time_s=8" in str(err.value)


def test_range_check_tries_every_corner_of_a_small_box():
    params = [Parameter(name=f"x{i}", min=0, max=1, default=0.5) for i in range(3)]
    from twins.expressions import Expression

    # wrong only at the one corner where all three are at their max
    fn = Expression("1 - 0.4 * (x0 + x1 + x2)", [p.name for p in params])
    with pytest.raises(SpecError, match="x0=1, x1=1, x2=1"):
        check_response_ranges({"yield": fn}, params)


def test_a_parameter_range_that_overflows_exits_2_with_one_line(tmp_path):
    text = tmp_path / "s.yaml"
    glue = (ROOT / "scenarios" / "glue_dispensing.yaml").read_text()
    bad = glue.replace("min: 1.5, max: 5.0", "min: -1.0e308, max: 1.0e308")
    assert bad != glue
    text.write_text(bad)
    for args in (["run", str(text), "-n", "1", "-q"], ["optimize", str(text), "--budget", "2", "-q"]):
        r = run_cli(*args)
        assert r.returncode == 2, r.stderr
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "stations[1].parameters[0]" in err and "not a finite number" in err, err


def test_parameter_env_takes_the_foaming_line_and_passes_the_checkers():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    import envs  # noqa: F401  (registers twinopt/*)
    from envs.parameter import ParameterEnv

    kwargs = {"scenario": "foaming_line", "episode_steps": 2}
    env = gym.make("twinopt/Parameter-v0", **kwargs).unwrapped
    assert isinstance(env, ParameterEnv) and env.action_space.shape == (208,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warnings either
        check_env(env)
        sb3_check_env(gym.make("twinopt/Parameter-v0", **kwargs))
    obs, _ = env.reset(seed=1)
    obs2, reward, _, truncated, info = env.step(np.zeros(208, np.float32))
    assert np.isfinite(reward) and env.observation_space.contains(obs2)


def test_screening_from_today_finds_the_planted_parameters(foaming):
    """Group screening (26 random groups of 8, then one at a time inside the groups that matter;
    one short replication each) keeps most of the twelve parameters that matter and hardly any of
    the 196 minor ones, for far fewer than 209 evaluations."""
    from optimizers.screening import screen
    from optimizers.setpoints import Evaluator, search_space

    short = foaming.model_copy(update={"horizon": foaming.horizon.model_copy(update={"length": 3600.0})})
    space = search_space(short)
    with Evaluator(short, "margin", 1, seed=0) as evaluate:
        result = screen(evaluate, space, max_keep=20)
    kept = {d.key for d in result.kept}
    found = kept & set(IMPORTANT)
    screened = sum(len(g) for g, e in zip(result.groups, result.group_effects, strict=True) if g[0] in result.effects)
    assert len(result.groups) == 26 and result.evaluations == 1 + 26 + screened < 209
    assert len(found) >= 9, sorted(set(IMPORTANT) - kept)
    assert len(kept - set(IMPORTANT)) <= 2, sorted(kept - set(IMPORTANT))
    top = sorted(result.effects, key=lambda k: -abs(result.effects[k]))[:5]
    assert set(top) <= set(IMPORTANT), top
