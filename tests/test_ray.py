"""``--executor ray``: the same seed gives bit-identical KPIs on a real Ray cluster (started on
127.0.0.1 by the fixture, tests/raycluster.py) as in local processes at 1 and 2 workers — for
replications, paired comparisons, sensitivity designs, datasets, a parameter search, a grid, the
CLI and an API job; a
worker killed mid-run is retried by Ray and the result is complete; a missing ray or an unreachable
cluster is one line and exit 2."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, SCENARIOS, run_cli
from raycluster import free_port, ray_cluster, replication_always_dying, replication_dying_once  # noqa: F401

from twins.errors import ExecutorError, InputError
from twins.executors import RayExecutor, check_address, fan_out, open_executor
from twins.loader import load_scenario
from twins.stats import compare, replicate

pytestmark = pytest.mark.xdist_group("ray")  # one cluster per test run (make test: --dist loadgroup)


@pytest.fixture(scope="module")
def smt():
    return load_scenario("smt_line", ["horizon.length=2000", "horizon.warmup=300"])


@pytest.fixture(scope="module")
def known():
    return load_scenario(SCENARIOS / "known_optimum.yaml")


@pytest.fixture(scope="module")
def on_cluster(ray_cluster):  # noqa: F811
    """This process joined to the test cluster once: its worker processes stay warm between tests
    (an executor opened later in this process keeps that connection, as Ray allows one)."""
    with open_executor("ray", address=ray_cluster.address) as ex:
        assert isinstance(ex, RayExecutor) and ex.max_workers == ray_cluster.cpus
        yield ex


def test_fan_out_returns_results_in_the_order_of_the_jobs():
    assert fan_out(abs, [-3, 1, -2, 5, -4], workers=2, chunksize=2) == [3, 1, 2, 5, 4]
    assert fan_out(abs, [-3, 1], workers=1) == [3, 1]


def test_replications_and_comparisons_identical_on_ray_and_locally(on_cluster, smt):
    more = load_scenario("smt_line", ["horizon.length=2000", "horizon.warmup=300", "stations.pnp.machines=3"])
    local = [replicate(smt, 4, 11, workers=w).summary() for w in (1, 2)]
    local_cmp = compare(smt, more, 3, 5, workers=2).summary()
    on_ray = replicate(smt, 4, 11, executor=on_cluster).summary()
    ray_cmp = compare(smt, more, 3, 5, executor=on_cluster).summary()
    assert local[0] == local[1] == on_ray
    assert local_cmp == ray_cmp


PRIVATE_RAY = """
import json, sys
from twins.executors import open_executor
from twins.loader import load_scenario
from twins.stats import replicate
smt = load_scenario("smt_line", ["horizon.length=2000", "horizon.warmup=300"])
with open_executor("ray", workers=1) as ex:  # no address: a Ray of its own on this machine
    print(json.dumps({"cpus": ex.max_workers, "summary": replicate(smt, 3, 2, executor=ex).summary()}))
"""


@pytest.mark.slow  # starts a second Ray (~10 s)
def test_private_local_ray_with_one_cpu_gives_the_same_numbers(smt):
    pytest.importorskip("ray")
    # in a process of its own: this one is already joined to the test cluster
    proc = subprocess.run([sys.executable, "-c", PRIVATE_RAY], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["cpus"] == 1
    assert got["summary"] == json.loads(json.dumps(replicate(smt, 3, 2, workers=1).summary()))


def test_sensitivity_and_dataset_identical_on_ray(on_cluster, known, tmp_path):
    pytest.importorskip("SALib")
    from optimizers.dataset import make_dataset
    from optimizers.sensitivity import sobol_indices

    local = sobol_indices(known, n=8, replications=2, seed=5, workers=2)
    ds_local = make_dataset(known, design="lhs", n=6, replications=2, seed=3, workers=1)
    on_ray = sobol_indices(known, n=8, replications=2, seed=5, executor=on_cluster)
    ds_ray = make_dataset(known, design="lhs", n=6, replications=2, seed=3, executor=on_cluster)
    assert local.indices == on_ray.indices
    assert ds_local.columns.keys() == ds_ray.columns.keys()
    for name, values in ds_local.columns.items():
        np.testing.assert_array_equal(values, ds_ray.columns[name])


def test_search_trials_and_recommendation_identical_on_ray(on_cluster, known):
    pytest.importorskip("optuna")
    from optimizers.search import parameter_search

    kw = dict(budget=5, sampler="random", replications=2, top_k=2, final_replications=2, seed=4,
              sensitivity_step=None)
    local = parameter_search(known, workers=1, **kw)
    on_ray = parameter_search(known, executor=on_cluster, **kw)
    assert [t.values for t in local.trials] == [t.values for t in on_ray.trials]
    assert local.recommendation.payload == on_ray.recommendation.payload
    assert local.recommendation.predicted == on_ray.recommendation.predicted


def test_grid_identical_on_ray(on_cluster, known):
    from optimizers.grid import grid_search

    local = grid_search(known, 3, replications=2, seed=1, workers=1)
    on_ray = grid_search(known, 3, replications=2, seed=1, executor=on_cluster)
    np.testing.assert_array_equal(local.values, on_ray.values)
    assert local.best_setpoints == on_ray.best_setpoints


def test_cli_run_on_the_cluster_writes_the_same_json_as_locally(ray_cluster, tmp_path):  # noqa: F811
    from studio.cli import main

    a, b = tmp_path / "local.json", tmp_path / "ray.json"
    common = ["run", "smt_line", "-n", "3", "--seed", "4", "--set", "horizon.length=2000",
              "--set", "horizon.warmup=300", "-q"]
    assert main([*common, "--executor", "local", "--workers", "1", "--json", str(a)]) == 0  # the CLI's own code
    on_ray = run_cli(*common, "--executor", "ray", "--ray-address", ray_cluster.address, "--json", str(b))
    assert on_ray.returncode == 0, on_ray.stderr
    assert json.loads(a.read_text()) == json.loads(b.read_text())


def test_a_worker_killed_mid_run_is_retried_and_nothing_is_missing(on_cluster, smt, tmp_path):
    jobs = [(smt, 7, r, str(tmp_path)) for r in range(3)]
    got = fan_out(replication_dying_once, jobs, executor=on_cluster)
    assert (tmp_path / "attempt-1").exists()  # the first attempt did die
    assert [g.kpis for g in got] == [r.kpis for r in replicate(smt, 3, 7, workers=1).replications]


@pytest.mark.slow
def test_a_task_lost_beyond_its_retries_fails_the_run(on_cluster, ray_cluster, smt):  # noqa: F811
    ex = RayExecutor(ray_cluster.address, max_retries=0)  # this process's connection, its own retry policy
    try:
        with pytest.raises(ExecutorError) as lost:
            fan_out(replication_always_dying, [(smt, 0, 0)], executor=ex)
        import ray

        assert isinstance(lost.value.__cause__, ray.exceptions.WorkerCrashedError)
    finally:
        ex.shutdown()


def test_an_unreachable_cluster_is_one_line_and_exit_2_at_once():
    started = time.monotonic()
    proc = run_cli("run", "smt_line", "-n", "2", "-q", "--executor", "ray", "--ray-address", f"127.0.0.1:{free_port()}")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--ray-address" in proc.stderr
    assert time.monotonic() - started < 30
    with socket.socket() as foreign:  # a port that accepts connections but is no Ray head
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        started = time.monotonic()
        with pytest.raises(InputError):
            check_address(f"127.0.0.1:{foreign.getsockname()[1]}", timeout=1.0)
        assert time.monotonic() - started < 10
    with pytest.raises(InputError):
        with open_executor("ray", address="not-an-address"):
            pass
    with pytest.raises(InputError):  # an address without Ray is a mistake, not ignored
        with open_executor("local", address="127.0.0.1:6379"):
            pass


def test_without_ray_installed_the_executor_option_names_the_extra():
    blocked = ("import sys; sys.modules['ray'] = None; from studio.cli import main; "
               "sys.exit(main(['run', 'smt_line', '-n', '2', '-q', '--executor', 'ray']))")
    proc = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "twinopt[ray]"' in lines[0], lines


@pytest.mark.slow  # the same simulate() as the CLI test above, plus the job's report
def test_api_run_job_on_the_servers_ray_cluster_gives_the_local_result(on_cluster, ray_cluster, tmp_path):  # noqa: F811
    pytest.importorskip("plotly")
    from studio.api.jobs import execute

    params = {"replications": 3, "seed": 2, "set": ["horizon.length=2000", "horizon.warmup=300"]}
    local = execute("run", ["smt_line"], params, tmp_path / "local", lambda f: None)
    on_ray = execute("run", ["smt_line"], params, tmp_path / "ray", lambda f: None, executor="ray",
                     ray_address=ray_cluster.address)
    assert local.result == on_ray.result


def test_serve_refuses_a_ray_executor_it_cannot_use(tmp_path):
    pytest.importorskip("fastapi")
    for extra in ([], ["--ray-address", f"127.0.0.1:{free_port()}"]):
        proc = run_cli("serve", "--port", "0", "--data", str(tmp_path), "--executor", "ray", *extra)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a whole server, its job workers and a job
def test_twinopt_serve_with_ray_runs_its_jobs_on_the_cluster(ray_cluster, tmp_path):  # noqa: F811
    pytest.importorskip("fastapi")
    from apiserver import serve

    from studio.api.client import Client

    drivers = ray_cluster.temp_dir / "session_latest" / "logs"
    before = set(drivers.glob("python-core-driver-*"))
    overrides = ["horizon.length=2000", "horizon.warmup=300"]
    with serve(tmp_path / "data", "--executor", "ray", "--ray-address", ray_cluster.address) as server:
        with Client(server.url, server.key("engineer", "erin")) as c:
            job = c.submit("run", "smt_line", {"replications": 3, "seed": 7, "set": overrides})
            done = c.wait(job.id, timeout=240)
    assert done.status == "succeeded", done.error
    assert set(drivers.glob("python-core-driver-*")) - before  # a job worker joined the cluster
    out = tmp_path / "cli.json"
    local = run_cli("run", "smt_line", "-n", "3", "--seed", "7", *(a for o in overrides for a in ("--set", o)),
                    "--json", str(out), "-q")
    assert local.returncode == 0, local.stderr
    assert done.result == json.loads(out.read_text())
