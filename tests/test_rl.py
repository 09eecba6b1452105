"""RL tooling: one training loop for every algorithm, evaluation against baselines with CIs, the
shipped job-shop policy, and the train/evaluate command lines."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from scipy import stats

from optimizers.heuristics.rules import schedule_with_rule
from optimizers.rl.dispatch import SHIPPED_POLICY, load_policy, schedule_with_policy
from optimizers.rl.evaluate import POLICY, comparison_figure, evaluate, mean_ci
from optimizers.rl.networks import JobScorer
from optimizers.rl.train import train
from studio.cli import main as cli
from twins.errors import InputError
from twins.jobshop.engine import JobShopEngine
from twins.jobshop.generate import random_instance
from twins.jobshop.instances import load_instance
from twins.jobshop.schedule import check_schedule

ENV_ID = "twinopt/Dispatch-v0"
SMALL = {"n_jobs": 6, "n_machines": 4, "skip_forced": True}
TINY_PPO = {"n_steps": 128, "batch_size": 64, "n_epochs": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short MaskablePPO run through a SubprocVecEnv of two envs (the CI-sized training)."""
    out = tmp_path_factory.mktemp("maskable")
    path = train(ENV_ID, algo="maskable_ppo", timesteps=1024, n_envs=2, seed=0, out_dir=out, env_kwargs=SMALL,
                 algo_kwargs=TINY_PPO, eval_freq=512, eval_episodes=2, progress_bar=False)
    return path


def test_short_maskable_ppo_run_goes_end_to_end_through_vector_envs(trained):
    out = trained.parent
    assert trained.is_file() and (out / "best" / "best_model.zip").is_file()
    rows = list(csv.DictReader((out / "progress.csv").open()))
    assert any(r.get("rollout/ep_rew_mean") for r in rows) and any(r.get("eval/mean_reward") for r in rows)
    evals = np.load(out / "eval" / "evaluations.npz")
    assert list(evals["timesteps"]) == [512, 1024]
    config = json.loads((out / "config.json").read_text())
    assert config["call"]["algo"] == "maskable_ppo" and config["call"]["env_kwargs"] == SMALL
    assert config["policy"] == "optimizers.rl.networks:JobScoringPolicy"
    assert {"torch", "stable_baselines3", "sb3_contrib", "gymnasium"} <= set(config["versions"])


def test_evaluation_compares_policy_and_rules_on_the_same_seeds(trained):
    ev = evaluate(trained, episodes=3, seed=5)  # env id and kwargs come from the model
    assert ev.seeds == [5, 6, 7]
    assert {POLICY, "mwkr", "spt", "fifo", "edd", "random"} <= set(ev.summary)
    for rows in ev.episodes.values():
        assert len(rows) == 3 and all(r["makespan"] > 0 for r in rows)
    # same seeds -> same instances: a rule's makespan equals schedule_with_rule on that instance
    from envs.dispatch import DispatchEnv

    env = DispatchEnv(**SMALL)
    env.reset(seed=6)
    assert ev.episodes["mwkr"][1]["makespan"] == schedule_with_rule(env.instance, "mwkr").makespan
    m, h = ev.summary["mwkr"]["makespan"]
    values = [r["makespan"] for r in ev.episodes["mwkr"]]
    assert m == pytest.approx(np.mean(values))
    fig = comparison_figure(ev)
    assert len(fig.data) == 2  # return and makespan panels


def test_mean_ci_is_the_student_t_interval():
    x = [3.0, 5.0, 4.0, 8.0]
    m, h = mean_ci(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert (m - h, m + h) == pytest.approx((lo, hi))
    assert mean_ci([2.0]) == (2.0, 0.0)


def test_the_same_loop_trains_plain_ppo(tmp_path, capsys):
    path = train(ENV_ID, algo="ppo", timesteps=128, n_envs=1, seed=1, out_dir=tmp_path, env_kwargs={"instance": "ft06"},
                 algo_kwargs={"n_steps": 64, "batch_size": 32, "n_epochs": 1}, eval_episodes=1, progress_bar=False)
    assert path.is_file()
    ev = evaluate(path, ENV_ID, episodes=1, baselines=["mwkr"])
    assert set(ev.summary) == {POLICY, "mwkr"}
    # a fixed-size network (MlpPolicy) still has a job limit: an input error, exit 2 with one line
    with pytest.raises(InputError, match="the policy schedules up to 6 jobs; ft20 has 20"):
        schedule_with_policy(load_instance("ft20"), path)
    assert cli(["schedule", "ft20", "--solver", f"rl:{path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "up to 6 jobs; ft20 has 20" in err


@pytest.mark.parametrize("name", ["ta01", "ft06", "la01", "ft20", "ta61"])
def test_shipped_policy_gives_feasible_deterministic_schedules_at_any_size(name):
    instance = load_instance(name)  # 15x15, 6x6, 10x5, 20x5 and 50x20: one network for all
    schedule = schedule_with_policy(instance, SHIPPED_POLICY)
    assert check_schedule(instance, schedule) == []
    assert len(schedule.operations) == instance.n_operations
    assert schedule.solver == f"rl:{SHIPPED_POLICY.name}"
    assert schedule_with_policy(instance, SHIPPED_POLICY).operations == schedule.operations


def test_shipped_policy_schedules_a_100_job_instance():
    instance = random_instance(np.random.default_rng(3), 100, 20)
    schedule = schedule_with_policy(instance, "shipped")
    assert check_schedule(instance, schedule) == []
    assert schedule.makespan < schedule_with_rule(instance, "spt").makespan


def test_shipped_policy_beats_the_best_rule_on_taillard_15x15():
    gaps = {"policy": [], "mwkr": []}
    for i in range(1, 11):
        inst = load_instance(f"ta{i:02d}")
        gaps["policy"].append(schedule_with_policy(inst, SHIPPED_POLICY).makespan / inst.bounds.best_known - 1)
        gaps["mwkr"].append(schedule_with_rule(inst, "mwkr").makespan / inst.bounds.best_known - 1)
    assert np.mean(gaps["policy"]) < np.mean(gaps["mwkr"])


def _engine_rows(n_jobs: int, n_machines: int, seed: int, steps: int) -> np.ndarray:
    """The observation rows of a random instance after ``steps`` first-candidate dispatches."""
    engine = JobShopEngine(random_instance(np.random.default_rng(seed), n_jobs, n_machines))
    for _ in range(steps):
        engine.dispatch(int(engine.candidates[0]))
    return engine.observation()


@pytest.mark.parametrize("attention_layers", [0, 1])
def test_job_scores_are_permutation_equivariant_and_ignore_padding(attention_layers):
    torch.manual_seed(0)
    scorer = JobScorer(n_jobs=7, attention_layers=attention_layers).eval()
    rows = _engine_rows(12, 5, seed=1, steps=20)  # 12 jobs for a network built for 7
    perm = np.random.default_rng(2).permutation(12)
    with torch.no_grad():
        logits = scorer.forward_actor(torch.as_tensor(rows.reshape(1, -1)))[0]
        permuted = scorer.forward_actor(torch.as_tensor(rows[perm].reshape(1, -1)))[0]
        padded = np.vstack([rows, np.zeros((5, rows.shape[1]), np.float32)])
        with_padding = scorer.forward_actor(torch.as_tensor(padded.reshape(1, -1)))[0]
    assert logits.shape == (12,)
    torch.testing.assert_close(permuted, logits[perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(with_padding[:12], logits, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits, logits[perm])  # the check above could fail
    rows_idx = torch.as_tensor([3, 0, 11])
    with torch.no_grad():  # inference scores only the candidates' rows: the same numbers
        some = scorer.candidate_scores(torch.as_tensor(rows.reshape(1, -1)), rows_idx)
    torch.testing.assert_close(some, logits[rows_idx], rtol=1e-5, atol=1e-5)


def test_shipped_scorer_is_equivariant_on_a_taillard_state():
    policy = load_policy(SHIPPED_POLICY).policy
    rows = _engine_rows(30, 20, seed=4, steps=100)
    perm = np.arange(30)[::-1].copy()
    with torch.no_grad():
        logits = policy.mlp_extractor.forward_actor(torch.as_tensor(rows.reshape(1, -1)))[0]
        permuted = policy.mlp_extractor.forward_actor(torch.as_tensor(rows[perm].reshape(1, -1)))[0]
    torch.testing.assert_close(permuted, logits[perm], rtol=1e-4, atol=1e-4)


def test_policy_input_errors():
    with pytest.raises(InputError, match="no such model file"):
        schedule_with_policy(load_instance("ft06"), "/no/such/model.zip")


def test_train_and_evaluate_command_lines(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli(["train", ENV_ID, "--algo", "maskable_ppo", "--timesteps", "256", "--envs", "1", "--seed", "2",
                "--out", str(out), "--env-kwargs", json.dumps(SMALL), "--algo-kwargs", json.dumps(TINY_PPO),
                "--eval-episodes", "1", "--no-progress"])
    assert code == 0 and (out / "model.zip").is_file()
    command = json.loads((out / "config.json").read_text())["command"]
    assert command.startswith(f"twinopt train {ENV_ID} --algo maskable_ppo --timesteps 256 --envs 1 --seed 2")
    html, js = tmp_path / "cmp.html", tmp_path / "cmp.json"
    code = cli(["evaluate", str(out / "model.zip"), "--env", ENV_ID, "--episodes", "2", "--seed", "3",
                "--baselines", "mwkr,spt", "--html", str(html), "--json", str(js)])
    printed = capsys.readouterr().out
    assert code == 0 and "mwkr" in printed and "makespan (mean ± 95% CI)" in printed
    assert "plotly" in html.read_text() and json.loads(js.read_text())["seeds"] == [3, 4]


@pytest.mark.parametrize("argv, message", [
    (["train", "twinopt/Nope-v0"], "unknown environment 'twinopt/Nope-v0'"),
    (["train", ENV_ID, "--algo", "dqn"], "unknown algorithm 'dqn'"),
    (["train", ENV_ID, "--algo", "sac"], "sac needs a continuous (Box) action space"),
    (["train", ENV_ID, "--env-kwargs", "{instance: ft06}"], "--env-kwargs: not valid JSON"),
    (["train", ENV_ID, "--env-kwargs", "[1, 2]"], "--env-kwargs: expected a JSON object"),
    (["train", ENV_ID, "--env-kwargs", '{"colour": 1}'], "bad env kwargs for twinopt/Dispatch-v0"),
    (["train", ENV_ID, "--env-kwargs", '{"instance": "nope"}'], "nope: no such file"),
    (["train", ENV_ID, "--init", "/no/model.zip"], "/no/model.zip: no such model file"),
    (["evaluate", "/no/such/model.zip", "--env", ENV_ID], "/no/such/model.zip: no such model file"),
    (["evaluate", str(SHIPPED_POLICY), "--env", "twinopt/Nope-v0"], "unknown environment"),
    (["evaluate", str(SHIPPED_POLICY), "--baselines", "xyz"], "unknown baseline 'xyz'"),
    (["evaluate", str(SHIPPED_POLICY), "--env-kwargs", '{"instance": "ft06"}'], "the model observes"),
])
def test_bad_inputs_exit_2_with_one_line(argv, message, capsys):
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_bad_input_exit_code_seen_by_a_user():
    from conftest import run_cli

    done = run_cli("evaluate", "/no/such/model.zip", "--env", ENV_ID)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("algo, algo_kwargs, timesteps, n_envs, expect", [
    ("ppo", {}, 2048, 2, 4096),  # PPO's default rollout: 2048 steps per env
    ("ppo", {"n_steps": 64, "batch_size": 64}, 100, 2, 128),
    ("ppo", {"n_steps": 64, "batch_size": 64}, 256, 2, 256),
])
def test_planned_timesteps_are_whole_rollouts(algo, algo_kwargs, timesteps, n_envs, expect):
    from stable_baselines3 import PPO

    from optimizers.rl.train import make_vec_env, planned_timesteps

    venv = make_vec_env(ENV_ID, n_envs, 0, {"instance": "ft06"}, subprocess=False)
    model = PPO("MlpPolicy", venv, seed=0, **algo_kwargs)
    assert planned_timesteps(model, timesteps) == expect
    if expect <= 256:  # and learn() runs exactly that many
        model.learn(total_timesteps=timesteps)
        assert model.num_timesteps == expect
    venv.close()


def test_planned_timesteps_of_sac_are_whole_collections():
    from stable_baselines3 import SAC

    from optimizers.rl.train import make_vec_env, planned_timesteps

    venv = make_vec_env("twinopt/Parameter-v0", 2, 0, subprocess=False)
    model = SAC("MlpPolicy", venv, seed=0, train_freq=3, learning_starts=1000)
    assert planned_timesteps(model, 10) == 12  # rounds of 3 steps × 2 envs
    model.learn(total_timesteps=10)
    assert model.num_timesteps == 12
    venv.close()


def test_dagger_on_mixed_sizes_keeps_one_bucket_per_size_and_fits_one_network():
    from optimizers.rl.imitation import fit, new_model, reference_instance, rollout

    refs = []  # MWKR schedules stand in for the CP-SAT references (any feasible schedule will do)
    for i, size in enumerate([(5, 3), (7, 3), (5, 3)]):
        inst = reference_instance(9, i, *size)
        starts = np.zeros((inst.n_jobs, inst.n_machines))
        for o in schedule_with_rule(inst, "mwkr").operations:
            starts[o.job, o.op] = o.start
        refs.append((inst, starts))
    model = new_model(5, 3, hidden=16, attention_layers=1)
    buckets, makespans = rollout(refs, model.policy, beta=0.5, rng=np.random.default_rng(0))
    assert [b[1].shape[1] for b in buckets] == [5, 7]  # masks (N, n_jobs), one bucket per size
    assert all(b[0].shape == (len(b[2]), b[1].shape[1] * b[0].shape[1] // b[1].shape[1]) for b in buckets)
    assert all(b[1][np.arange(len(b[2])), b[2]].all() for b in buckets)  # expert labels are candidates
    assert makespans.shape == (3,) and (makespans > 0).all()
    before = [p.detach().clone() for p in model.policy.parameters()]
    acc = fit(model, buckets, epochs=2, batch_size=16)
    assert 0.0 <= acc <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))


def test_rule_cloning_warm_starts_a_slot_scorer_on_the_dynamic_job_shop(tmp_path):
    from optimizers.rl.rule_cloning import clone_rule, rule_data
    from optimizers.rl.train import load_model

    obs, masks, acts, rets = rule_data("twinopt/DynamicDispatch-v0", {}, "edd", episodes=1, seed=3)
    assert obs.shape == (len(acts), 10 * 14) and masks.shape == (len(acts), 10)
    assert masks[np.arange(len(acts)), acts].all() and (masks.sum(1) >= 2).all()
    assert (rets <= 0).all() and rets[0] <= rets[-1]  # tardiness still to come only shrinks
    path = clone_rule("twinopt/DynamicDispatch-v0", "edd", 1, tmp_path, epochs=1, seed=3)
    model = load_model(str(path))
    assert model.policy.mlp_extractor.alive_feature is None and model.policy.mlp_extractor.n_features == 14


def test_self_labeling_labels_are_feasible_best_of_k_and_a_step_is_deterministic():
    from optimizers.rl.imitation import new_model
    from optimizers.rl.self_labeling import best_of_k, greedy_makespans, labels, rollouts, train_step
    from twins.jobshop.schedule import Schedule, ScheduledOperation

    insts = [random_instance(np.random.default_rng((3, i)), 6, 6, name=f"sl{i}") for i in range(2)]

    def step(seed: int):
        torch.manual_seed(seed)
        model = new_model(6, 6, hidden=16, attention_layers=1, seed=seed)
        scorer = model.policy.mlp_extractor
        rng = np.random.default_rng(seed)
        best = best_of_k(scorer, insts, 8, rng)
        data = [labels(inst, run.choices) for inst, (run, _) in zip(insts, best, strict=True)]
        before = [p.detach().clone() for p in scorer.parameters()]
        opt = torch.optim.Adam(scorer.parameters(), lr=1e-3)
        train_step(scorer, opt, data, 16, rng)
        return scorer, best, data, before

    scorer, best, data, before = step(0)
    for inst, (run, spans), (obs, masks, acts) in zip(insts, best, data, strict=True):
        assert spans.shape == (8,) and run.engine.makespan_lb == spans.min()  # the best of the k samples
        assert masks[np.arange(len(acts)), acts].all() and obs.shape == (len(acts), 6 * obs.shape[1] // 6)
        ops = [ScheduledOperation(*row) for row in run.engine.schedule_rows()]
        assert not check_schedule(inst, Schedule(inst.name, ops, solver="sl"))
        assert Schedule(inst.name, ops, solver="sl").makespan == spans.min()
    assert any(not torch.equal(a, b) for a, b in zip(before, scorer.parameters(), strict=True))
    again, best2, _, _ = step(0)
    assert [r.choices for r, _ in best] == [r.choices for r, _ in best2]
    assert all(torch.equal(a, b) for a, b in zip(scorer.parameters(), again.parameters(), strict=True))
    greedy = rollouts(scorer, insts, 2, None)  # greedy: every copy takes the same choices
    assert all(g[0].choices == g[1].choices for g in greedy)
    cold = rollouts(scorer, insts, 2, np.random.default_rng(1), temperature=1e-6)  # sampling -> greedy as T -> 0
    hot = rollouts(scorer, insts, 2, np.random.default_rng(1))
    assert all(c.choices == g[0].choices for cg, g in zip(cold, greedy, strict=True) for c in cg)
    assert any(h.choices != g[0].choices for hg, g in zip(hot, greedy, strict=True) for h in hg)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        rollouts(scorer, insts, 2, np.random.default_rng(1), temperature=0.0)
    assert (greedy_makespans(scorer, insts) == [g[0].engine.makespan_lb for g in greedy]).all()
