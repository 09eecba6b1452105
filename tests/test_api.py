"""The recommendation API through its real door: ``twinopt serve`` on loopback, the typed client."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from apiserver import ROOT, serve  # noqa: E402

from studio.api.client import ApiError, Client  # noqa: E402

SMT = (ROOT / "scenarios" / "smt_line.yaml").read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("api"), "--workers", "2") as s:
        yield s


@pytest.fixture(scope="module")
def admin(server):
    with Client(server.url, server.admin_key) as c:
        yield c


@pytest.fixture(scope="module")
def engineer(server):
    with Client(server.url, server.key("engineer", "erin")) as c:
        yield c


def test_health_needs_no_key_and_everything_else_does(server):
    with Client(server.url) as anon:
        assert anon.health()["status"] == "ok"
        with pytest.raises(ApiError) as err:
            anon.scenarios()
        assert err.value.status == 401
    with Client(server.url, "tw_not-a-key") as bad, pytest.raises(ApiError) as err:
        bad.scenarios()
    assert err.value.status == 401


def test_a_run_job_equals_twinopt_run_json(engineer, tmp_path):
    job = engineer.submit("run", "smt_line", {"replications": 3, "seed": 7})
    done = engineer.wait(job.id, timeout=120)
    assert done.status == "succeeded", done.error
    out = tmp_path / "cli.json"
    subprocess.run([sys.executable, "-m", "studio.cli", "run", "smt_line", "--replications", "3", "--seed", "7",
                    "--json", str(out), "--quiet"], cwd=ROOT, check=True, timeout=300)
    assert done.result == json.loads(out.read_text())
    # the same inputs again: the stored result at once, unless fresh
    again = engineer.submit("run", "smt_line", {"seed": 7, "replications": 3})
    assert again.cached and again.id == job.id and again.status == "succeeded"
    fresh = engineer.submit("run", "smt_line", {"seed": 7, "replications": 3}, fresh=True)
    assert not fresh.cached and fresh.id != job.id
    assert engineer.wait(fresh.id, timeout=120).result == done.result
    # its report and figures
    assert "<html" in engineer.report(job.id).lower()
    figs = engineer.figures(job.id)
    assert figs and all("data" in f for f in figs)


def test_progress_events_end_with_the_final_state(engineer):
    job = engineer.submit("run", "smt_line", {"replications": 2, "seed": 11})
    events = list(engineer.events(job.id))
    assert events[-1][0] == "end" and events[-1][1]["status"] == "succeeded"
    progress = [d["progress"] for e, d in events if e == "progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_scenarios_upload_version_and_validate_with_lines(engineer):
    first = engineer.upload_scenario(SMT, name="my_line")
    second = engineer.upload_scenario(SMT.replace("machines: 2", "machines: 3", 1), name="my_line")
    assert (first["version"], second["version"]) == (1, 2) and first["fingerprint"] != second["fingerprint"]
    listed = {(s["name"], s["version"]) for s in engineer.scenarios()}
    assert {("my_line", 1), ("my_line", 2), ("smt_line", 0)} <= listed
    assert engineer.scenario(second["id"])["yaml"].count("machines: 3") >= 1
    bad = SMT.replace("horizon:", "horizon:\n  bogus: 1", 1)
    with pytest.raises(ApiError) as err:
        engineer.upload_scenario(bad, name="broken")
    assert err.value.status == 422
    item = err.value.detail[0]
    assert item["loc"][:3] == ["body", "horizon", "bogus"] and item["line"] and "unknown field" in item["msg"]
    with pytest.raises(ApiError) as err:
        engineer.upload_scenario("name: [unclosed", name="broken")
    assert err.value.status == 422
    with pytest.raises(ApiError) as err:
        engineer.upload_scenario(SMT, name="smt_line")  # a shipped name
    assert err.value.status == 409
    assert "broken" not in {s["name"] for s in engineer.scenarios()}  # nothing stored


def test_a_job_on_a_stored_scenario_runs_it(engineer):
    stored = engineer.upload_scenario(SMT.replace("machines: 2", "machines: 3", 1), name="bigger_line")
    job = engineer.wait(engineer.submit("run", stored["id"], {"replications": 2}).id, timeout=120)
    assert job.status == "succeeded", job.error
    assert job.result["scenario_file"] == "bigger_line"


@pytest.mark.parametrize("body, loc", [
    ({"kind": "run", "scenario": "smt_line", "params": {"replications": 1000}}, ["params", "replications"]),
    ({"kind": "run", "scenario": "smt_line", "params": {"json": "/etc/x"}}, ["params", "json"]),
    ({"kind": "run", "scenario": "smt_line", "params": {"set": ["stations.pnp.machines=-1"]}}, ["params", "set"]),
    ({"kind": "run", "scenario": "nowhere", "params": {}}, ["body", "scenario"]),
    ({"kind": "teleport", "scenario": "smt_line"}, ["body", "kind"]),
    ({"kind": "run", "scenario": "smt_line", "params": {"set": ["horizon.length=1e12"]}}, ["params", "set"]),
    ({"kind": "optimize", "scenario": "glue_dispensing",
      "params": {"set": ["dispenser.pressure_bar=99"]}}, ["params", "set"]),
])
def test_bad_jobs_are_422_with_a_field_path_and_nothing_is_stored(server, engineer, body, loc):
    before = len(engineer.jobs(limit=1000))
    r = httpx.post(server.url + "/api/v1/jobs", json=body, headers=engineer.http.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:len(loc)] == loc
    assert len(engineer.jobs(limit=1000)) == before


def test_oversized_bodies_are_413(server, engineer):
    r = httpx.post(server.url + "/api/v1/scenarios?name=huge", content=b"x" * 2_000_000,
                   headers={**engineer.http.headers, "Content-Type": "application/yaml"})
    assert r.status_code == 413


def test_a_queued_or_running_job_can_be_cancelled(engineer):
    job = engineer.submit("run", "smt_line", {"replications": 60, "seed": 3, "set": ["horizon.length=2880000"]})
    engineer.cancel(job.id)
    done = engineer.wait(job.id, timeout=120)
    assert done.status == "cancelled"


def test_optimize_makes_a_validated_recommendation_and_four_eyes_hold(server, engineer):
    approver = Client(server.url, server.key("approver", "carol"))
    viewer = Client(server.url, server.key("viewer", "vic"))
    job = engineer.submit("optimize", "glue_dispensing", {"budget": 4, "replications": 2, "final_replications": 3,
                                                          "top_k": 1, "seed": 1})
    done = engineer.wait(job.id, timeout=300)
    assert done.status == "succeeded", done.error
    rec = engineer.recommendation(done.recommendation_id)
    assert rec["status"] == "validated" and rec["created_by"] == "erin" and rec["kind"] == "setpoints"
    with pytest.raises(ApiError) as err:
        engineer.approve(rec["id"])  # an engineer may not approve
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        viewer.reject(rec["id"])
    assert err.value.status == 403
    ok = approver.approve(rec["id"], "looks right")
    assert ok["status"] == "approved" and ok["approved_by"] == "carol" and ok["expires_at"] > ok["approved_at"]
    rejected = approver.reject(rec["id"])
    assert rejected["status"] == "rejected"
    with pytest.raises(ApiError) as err:
        approver.approve(rec["id"])
    assert err.value.status == 409
    audit = viewer.audit(limit=1000)
    assert any(e["outcome"] == "validated -> approved" for e in audit)
    assert viewer.audit_verify()["ok"]
    approver.close()
    viewer.close()


def test_keys_admin_only(server, admin, engineer):
    made = admin.create_key("dana", "viewer")
    assert made["key"].startswith("tw_") and made["role"] == "viewer"
    with pytest.raises(ApiError) as err:
        engineer.create_key("mallory", "admin")
    assert err.value.status == 403


def test_twinopt_keys_create_prints_the_key_last(tmp_path):
    out = subprocess.run([sys.executable, "-m", "studio.cli", "keys", "create", "--role", "engineer", "--name", "al",
                          "--data", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1].split()[-1]
    assert key.startswith("tw_") and len(key) > 40
    bad = subprocess.run([sys.executable, "-m", "studio.cli", "keys", "create", "--role", "god", "--name", "x",
                          "--data", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_the_store_survives_a_restart(tmp_path):
    data = tmp_path / "d"
    with serve(data, "--workers", "1") as s:
        key = s.admin_key
        with Client(s.url, key) as c:
            sc = c.upload_scenario(SMT, name="keep_me")
    with serve(data, "--workers", "1") as s:
        assert s.admin_key is None  # only on the very first start
        with Client(s.url, key) as c:
            assert c.scenario(sc["id"])["name"] == "keep_me"
            assert c.audit_verify()["ok"]
    assert Path(data / "twinopt.db").exists()


def test_an_expired_approval_refuses_the_push(tmp_path):
    import time

    with serve(tmp_path / "d", "--workers", "1", "--approval-hours", "0.0005", "--opc-insecure") as s:
        engineer = Client(s.url, s.key("engineer", "erin"))
        approver = Client(s.url, s.key("approver", "carol"))
        job = engineer.wait(engineer.submit("optimize", "glue_dispensing", {
            "budget": 2, "replications": 2, "final_replications": 2, "top_k": 1}).id, timeout=300)
        assert job.status == "succeeded", job.error
        rec = approver.approve(job.recommendation_id)
        assert rec["status"] == "approved"
        time.sleep(2.5)  # 0.0005 h = 1.8 s
        with pytest.raises(ApiError) as err:
            approver.push(rec["id"], "opc.tcp://127.0.0.1:9/twinopt/")
        assert err.value.status == 409 and "expired" in err.value.detail
        again = approver.approve(rec["id"])  # approving again renews it
        assert again["status"] == "approved" and again["expires_at"] > rec["expires_at"]
        engineer.close()
        approver.close()


def test_requests_racing_for_the_shipped_scenarios_list_each_once():
    from concurrent.futures import ThreadPoolExecutor

    from studio.api import app as api_app

    api_app._shipped.cache_clear()
    with ThreadPoolExecutor(8) as pool:  # the studio's pages ask at once when someone signs in
        lists = list(pool.map(lambda _: api_app.shipped(), range(8)))
    for names in ([s["name"] for s in shipped] for shipped in lists):
        assert len(names) == len(set(names)) and names == sorted(names), names
