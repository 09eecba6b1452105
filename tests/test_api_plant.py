"""The API reads a plant: live values, and a snapshot a what-if starts from ("what-if from now")."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("asyncua")

from apiserver import serve  # noqa: E402
from test_plant import plant  # noqa: E402

from studio.api.client import ApiError, Client  # noqa: E402


def test_live_values_and_a_what_if_from_the_plant_as_it_is_now(tmp_path):
    with plant("smt_line", "--port", "0", "--speed", "3600", "--insecure") as p, \
            serve(tmp_path / "api", "--workers", "1", "--opc-insecure") as s:
        engineer = Client(s.url, s.key("engineer", "erin"))
        live = engineer.request("GET", "/plant", params={"endpoint": p.url})
        assert live["scenario"] == "smt_line" and live["sim_time"] > 0
        assert set(live["stations"]) == {"printer", "pnp", "reflow", "aoi", "rework"}
        assert len(live["stations"]["pnp"]["machines"]) == 2
        assert live["counters"]["good"] is not None and live["counters"]["running"] is True
        snap = engineer.request("POST", "/plant/snapshot", json={"endpoint": p.url})
        assert snap["scenario"] == "smt_line" and snap["wip"] >= 0
        stored = engineer.request("GET", f"/states/{snap['id']}")
        assert stored["state"]["fingerprint"]
        job = engineer.wait(engineer.submit("run", "smt_line", {"replications": 2, "from_state": snap["id"],
                                                                "set": ["horizon.length=14400"]}).id, timeout=180)
        assert job.status == "succeeded", job.error
        assert job.result["from_state"] == snap["id"]
        with pytest.raises(ApiError) as err:  # a state of another line
            engineer.submit("run", "glue_dispensing", {"from_state": snap["id"]})
        assert err.value.status == 422 and err.value.detail[0]["loc"] == ["params", "from_state"]
        with pytest.raises(ApiError) as err:
            engineer.submit("run", "smt_line", {"from_state": "nope"})
        assert err.value.status == 422
        engineer.close()
