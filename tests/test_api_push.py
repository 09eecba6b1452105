"""From an API job to the equipment: optimize → validated → approved by someone else → diff against
the virtual plant → dry run → push → verified, read back on the plant, every step in the store's audit."""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("asyncua")

from apiserver import serve  # noqa: E402
from asyncua import Client as OpcClient  # noqa: E402
from test_plant import plant  # noqa: E402

from studio.api.client import ApiError, Client  # noqa: E402

SPEED = 1200


def test_a_recommendation_goes_from_a_job_to_the_plant_through_the_envelope(tmp_path):
    with plant("glue_dispensing", "--port", "0", "--speed", str(SPEED), "--insecure") as p, \
            serve(tmp_path / "api", "--workers", "1", "--opc-insecure", "--opc-dwell-scale", str(1 / SPEED)) as s:
        engineer = Client(s.url, s.key("engineer", "erin"))
        carol = Client(s.url, s.key("approver", "carol"))
        paul = Client(s.url, s.key("approver", "paul"))
        job = engineer.wait(engineer.submit("optimize", "glue_dispensing", {
            "budget": 40, "replications": 3, "final_replications": 6, "top_k": 3, "seed": 0}).id, timeout=300)
        assert job.status == "succeeded", job.error
        rec_id = job.recommendation_id
        targets = {f"{st}.{k}": v for st, params in engineer.recommendation(rec_id)["document"]["payload"].items()
                   for k, v in params.items()}

        with pytest.raises(ApiError) as err:  # not approved yet: a dry run only
            paul.push(rec_id, p.url)
        assert err.value.status == 409
        dry = paul.push(rec_id, p.url, dry_run=True)
        assert dry["outcome"] == "dry-run" and dry["status"] == "validated"

        diff = engineer.diff(rec_id, p.url)
        assert {t["tag"]: t["target"] for t in diff["tags"]} == targets
        assert all(t["current"] is not None for t in diff["tags"])
        assert any(abs(t["delta"]) > 0.5 for t in diff["tags"]), diff  # the push has something to do

        carol.approve(rec_id)
        pushed = paul.push(rec_id, p.url)  # carol approved, paul pushes: four eyes in the gateway too
        assert pushed["outcome"] == "verified", pushed
        assert engineer.recommendation(rec_id)["status"] == "verified"

        async def live() -> dict[str, float]:
            async with OpcClient(p.url, timeout=5) as c:
                return {tag: await c.get_node(f"ns=2;s={tag}").read_value() for tag in targets}

        now = asyncio.run(live())
        for tag, target in targets.items():
            assert abs(now[tag] - target) <= 0.5 / 2 + 1e-9, (tag, now[tag], target)

        audit = engineer.audit(limit=1000)
        writes = [e for e in audit if e["action"] == "write" and e["outcome"] == "confirmed"]
        assert writes and all(e["user"] == "paul" for e in writes)
        assert [e["outcome"] for e in audit if e["action"] == "recommendation"][-3:] == [
            "validated -> approved", "approved -> pushed", "pushed -> verified"]
        assert engineer.audit_verify()["ok"]
        with pytest.raises(ApiError) as err:  # verified is final
            paul.push(rec_id, p.url)
        assert err.value.status == 409
        for c in (engineer, carol, paul):
            c.close()


def test_pushing_needs_configured_security_and_an_allowed_endpoint(tmp_path):
    with serve(tmp_path / "api", "--workers", "1") as s:
        with Client(s.url, s.admin_key) as admin:
            with pytest.raises(ApiError) as err:
                admin.diff("nope", "opc.tcp://127.0.0.1:4840/")
            assert err.value.status == 404


def test_a_schedule_job_is_published_as_dispatch_lists_and_an_energy_plan_gets_its_dry_run(tmp_path):
    with plant("ft06", "--port", "0", "--speed", "600", "--insecure", "--hold") as p, \
            serve(tmp_path / "api", "--workers", "2", "--opc-insecure") as s:
        engineer = Client(s.url, s.key("engineer", "erin"))
        carol = Client(s.url, s.key("approver", "carol"))
        sched = engineer.submit("schedule", "ft06", {"solver": "cpsat", "time_limit": 5})
        energy = engineer.submit("energy", "smt_reflow_energy", {"target": 1500, "time_limit": 20, "replications": 2})
        job = engineer.wait(sched.id, timeout=300)
        assert job.status == "succeeded", job.error
        rec = engineer.recommendation(job.recommendation_id)
        assert rec["status"] == "validated" and rec["kind"] == "schedule", rec["problems"]
        carol.approve(rec["id"])
        pushed = carol.push(rec["id"], p.url)
        assert pushed["outcome"] == "verified" and pushed["status"] == "verified", pushed
        lists = {c["tag"]: c["target"] for c in pushed["changes"]}
        sequences = rec["document"]["payload"]["sequences"]
        assert {t.removesuffix(".dispatch_list") for t in lists} <= set(sequences)

        async def read_lists() -> dict[str, list[str]]:
            async with OpcClient(p.url, timeout=5) as c:
                return {tag: list(await c.get_node(f"ns=2;s={tag}").read_value() or []) for tag in lists}

        assert asyncio.run(read_lists()) == lists  # the plant holds the published lists
        job = engineer.wait(energy.id, timeout=300)
        assert job.status == "succeeded", job.error
        plan = engineer.recommendation(job.recommendation_id)
        assert plan["status"] == "validated" and plan["kind"] == "energy_plan", plan["problems"]
        dry = carol.push(plan["id"], p.url, dry_run=True)
        assert dry["outcome"] == "dry-run" and any(c["tag"].endswith(".mode") for c in dry["changes"])
        carol.approve(plan["id"])
        with pytest.raises(ApiError) as err:
            carol.push(plan["id"], p.url)
        assert err.value.status == 409 and "--follow" in err.value.detail
        for c in (engineer, carol):
            c.close()
