"""The audit trail is append-only and hash-chained: `twinopt audit verify` detects any edited,
removed, reordered or cut-off entry; history() gives the writes the hourly rate limits count."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.gateway.audit import AuditLog, AuditTampered, entry_hash

T0 = dt.datetime(2025, 3, 1, 6, 0, tzinfo=dt.UTC)


def make_log(path, n: int = 5) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append("alice", "write", "confirmed", recommendation=("r1", 1), endpoint="opc.tcp://127.0.0.1:4840",
                   changes=[("dispenser.pressure_bar", 3.0 + 0.25 * i, 3.25 + 0.25 * i)],
                   time=T0 + dt.timedelta(minutes=i))
    return log


def lines_of(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines(keepends=True)


def edit(lines, i):
    entry = json.loads(lines[i])
    entry["changes"][0]["new"] = 4.9
    lines[i] = json.dumps(entry) + "\n"


def edit_and_rehash(lines, i):
    entry = json.loads(lines[i])
    entry["user"] = "mallory"
    entry["hash"] = entry_hash(entry)
    lines[i] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"


def delete(lines, i):
    del lines[i]


def swap(lines, i):
    j = i + 1 if i + 1 < len(lines) else i - 1
    lines[i], lines[j] = lines[j], lines[i]


def truncate(lines, i):
    del lines[i + 1:]
    lines[i] = lines[i][: len(lines[i]) // 2]


TAMPERING = {"edit": edit, "edit_and_rehash": edit_and_rehash, "delete": delete, "swap": swap, "truncate": truncate}


def tamper(log: AuditLog, how: str, i: int) -> None:
    lines = lines_of(log)
    TAMPERING[how](lines, i)
    log.path.write_text("".join(lines))


def test_an_intact_log_verifies(tmp_path):
    log = make_log(tmp_path / "audit.jsonl")
    assert log.verify() == []
    done = run_cli("audit", "verify", "--log", str(log.path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok: 5 entries, chain intact"


@pytest.mark.parametrize("how, index", [("edit", 2), ("edit_and_rehash", 1), ("edit_and_rehash", 4), ("delete", 2),
                                        ("delete", 4), ("delete", 0), ("swap", 1), ("swap", 4), ("truncate", 4),
                                        ("truncate", 2)])
def test_twinopt_audit_verify_detects_tampering(tmp_path, how, index):
    log = make_log(tmp_path / "audit.jsonl")
    tamper(log, how, index)
    done = run_cli("audit", "verify", "--log", str(log.path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(log.path) in lines[0], done.stderr
    assert "Traceback" not in done.stderr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 8), how=st.sampled_from(sorted(TAMPERING)), data=st.data())
def test_any_edit_removal_swap_or_cut_is_detected(tmp_path_factory, n, how, data):
    if how == "swap" and n < 2:
        return
    log = make_log(tmp_path_factory.mktemp("log") / "audit.jsonl", n)
    tamper(log, how, data.draw(st.integers(0, n - 1)))
    assert log.verify()


def test_a_removed_head_or_last_entry_with_its_head_rewritten_to_match_the_rest_is_detected(tmp_path):
    log = make_log(tmp_path / "audit.jsonl")
    log.head_path.unlink()
    assert any("missing" in p for p in log.verify())
    log = make_log(tmp_path / "other.jsonl")
    tamper(log, "delete", 4)
    assert any("removed from the end" in p for p in log.verify())


def test_appending_to_a_tampered_log_is_refused(tmp_path):
    log = make_log(tmp_path / "audit.jsonl")
    tamper(log, "delete", 4)
    with pytest.raises(AuditTampered):
        log.append("alice", "write", "confirmed", changes=[("dispenser.pressure_bar", 4.0, 4.25)])


def test_entries_chain_and_head_follow_appends(tmp_path):
    log = make_log(tmp_path / "audit.jsonl", 3)
    entries = log.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev"] == "0" * 64 and entries[1]["prev"] == entries[0]["hash"]
    assert json.loads(log.head_path.read_text()) == {"seq": 3, "hash": entries[2]["hash"]}
    assert entries[0]["time"] == "2025-03-01T06:00:00.000000+00:00"
    assert entries[0]["recommendation"] == {"id": "r1", "version": 1}


def test_history_returns_the_writes_that_moved_values(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append("alice", "check", "ok", recommendation=("r1", 1))
    log.append("alice", "write", "confirmed", changes=[("a.x", 1.0, 2.0), ("a.y", 5.0, 4.0)], time=T0)
    log.append("bob", "write", "refused", changes=[("a.x", 2.0, 9.0)], time=T0)
    log.append("bob", "rollback", "confirmed", changes=[("a.x", 2.0, 1.0)], time=T0 + dt.timedelta(hours=2))
    log.append("bob", "write", "uncertain", changes=[("a.y", 4.0, 3.0)], time=T0 + dt.timedelta(hours=3))
    history = log.history()
    assert [(c.tag, c.old, c.new, c.user) for c in history] == [
        ("a.x", 1.0, 2.0, "alice"), ("a.y", 5.0, 4.0, "alice"), ("a.x", 2.0, 1.0, "bob"), ("a.y", 4.0, 3.0, "bob")]
    assert history[0].time == T0
    assert [c.new for c in log.history(tags=["a.x"])] == [2.0, 1.0]
    assert [c.new for c in log.history(since=T0 + dt.timedelta(hours=1))] == [1.0, 3.0]


def test_verify_without_a_log_is_bad_input(tmp_path):
    done = run_cli("audit", "verify", "--log", str(tmp_path / "none.jsonl"))
    assert done.returncode == 2
    assert "no audit log" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_default_log_is_under_twinopt_data(tmp_path):
    make_log(tmp_path / "twinopt-data" / "audit.jsonl", 2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's twinopt, run from another directory
    done = subprocess.run([sys.executable, "-m", "studio.cli", "audit", "verify"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok: 2 entries" in done.stdout
