"""The gateway's audit trail: an append-only JSON-lines file whose entries are hash-chained.

Every step of a push (who, when, what, old → new, outcome) is one line::

    {"action": "write", "changes": [{"new": 3.25, "old": 3.0, "tag": "dispenser.pressure_bar"}],
     "detail": null, "endpoint": "opc.tcp://127.0.0.1:4840", "hash": "…", "outcome": "confirmed",
     "prev": "…", "recommendation": {"id": "…", "version": 1}, "seq": 7,
     "time": "2025-03-01T06:00:00.000000+00:00", "user": "alice"}

``hash`` is the sha256 of the entry's canonical JSON (sorted keys, no spaces) without ``hash``;
``prev`` is the hash of the entry before (64 zeros for the first), so editing, removing, inserting
or reordering an entry breaks the chain. A small head file next to the log (``audit.jsonl.head``:
the last entry's seq and hash, replaced atomically) catches entries removed from the end.
Appends are flushed and fsynced under an exclusive lock. An attacker who rewrites the whole chain
and the head is not caught here: keep a copy of the head elsewhere (the API's store does).

The default log is ``./twinopt-data/audit.jsonl`` (:data:`DEFAULT_LOG`).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from studio.gateway.envelope import Change
from twins.errors import InputError

try:  # POSIX advisory locks; elsewhere appends are not serialised between processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

DEFAULT_LOG = Path("twinopt-data") / "audit.jsonl"
GENESIS = "0" * 64
#: Actions that write to equipment, and the outcomes after which the value may have moved: the
#: history the hourly rate limits count (an uncertain write counts, to be safe).
WRITE_ACTIONS = frozenset({"write", "rollback"})
MOVED = frozenset({"confirmed", "uncertain"})


class AuditTampered(InputError):
    """The audit trail's hash chain is broken: an entry was edited, removed, reordered or cut off."""


def canonical(entry: Mapping[str, Any]) -> str:
    """The one JSON text of an entry that its hash is computed over and that the log stores."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """sha256 (hex) of the entry's canonical JSON without its ``hash``."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"}).encode()).hexdigest()


def entry_fields(user: str, action: str, outcome: str, *, recommendation: tuple[str, int] | None = None,
                 endpoint: str | None = None, changes: Iterable[tuple[str, Any, Any]] = (),
                 detail: str | None = None, time: dt.datetime | None = None) -> dict[str, Any]:
    """An entry's content before it is chained (``seq``, ``prev``, ``hash`` come on appending)."""
    when = dt.datetime.now(dt.UTC) if time is None else time
    if when.tzinfo is None:
        raise InputError("audit entries need a timezone-aware time")
    return {
        "time": when.astimezone(dt.UTC).isoformat(timespec="microseconds"), "user": user, "action": action,
        "recommendation": None if recommendation is None else {"id": recommendation[0], "version": recommendation[1]},
        "endpoint": endpoint,
        "changes": [{"tag": t, "old": _number(old), "new": _number(new)} for t, old, new in changes],
        "outcome": outcome, "detail": detail,
    }


def chained(fields: Mapping[str, Any], seq: int, prev: str) -> dict[str, Any]:
    """The entry at ``seq`` after the entry hashed ``prev``, with its own ``hash``."""
    entry = {"seq": seq, **fields, "prev": prev}
    entry["hash"] = entry_hash(entry)
    return entry


class AuditLog:
    """An append-only, hash-chained JSON-lines audit log at ``path`` (and its head at ``path.head``)."""

    def __init__(self, path: str | Path = DEFAULT_LOG):
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")

    # ------------------------------------------------------------------------------------ writing

    def append(self, user: str, action: str, outcome: str, *, recommendation: tuple[str, int] | None = None,
               endpoint: str | None = None,
               changes: Iterable[tuple[str, float | list[str] | None, float | list[str] | None]] = (),
               detail: str | None = None, time: dt.datetime | None = None) -> dict[str, Any]:
        """Append one entry and return it. ``changes`` are ``(tag, old, new)`` — numbers, or lists of
        product names for a dispatch list (``<station>.dispatch_list``); ``recommendation``
        is ``(id, version)``. Refuses (:class:`AuditTampered`) to extend a log whose end does not
        match its head."""
        fields = entry_fields(user, action, outcome, recommendation=recommendation, endpoint=endpoint,
                              changes=changes, detail=detail, time=time)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            seq, prev = self._tip()
            entry = chained(fields, seq + 1, prev)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(canonical(entry) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._write_head(entry["seq"], entry["hash"])
        return entry

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _tip(self) -> tuple[int, str]:
        """(seq, hash) of the last entry, which must agree with the head."""
        last = self._last_line()
        head = self._read_head()
        if last is None and head is None:
            return 0, GENESIS
        try:
            entry = json.loads(last) if last is not None else None
            tip = (int(entry["seq"]), str(entry["hash"])) if entry is not None else None
        except (ValueError, TypeError, KeyError):
            tip = None
        if tip is None or head is None or tip != head:
            raise AuditTampered(f"{self.path}: refusing to append: the log's last entry does not match its head "
                                f"(run `twinopt audit verify --log {self.path}`)")
        return tip

    def _last_line(self) -> str | None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                block = 4096
                while True:
                    start = max(0, size - block)
                    fh.seek(start)
                    data = fh.read(size - start)
                    lines = data.rstrip(b"\n").split(b"\n")
                    if len(lines) > 1 or start == 0:
                        return lines[-1].decode("utf-8", "replace") if lines[-1] else None
                    block *= 2
        except FileNotFoundError:
            return None

    def _read_head(self) -> tuple[int, str] | None:
        try:
            head = json.loads(self.head_path.read_text())
            return int(head["seq"]), str(head["hash"])
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError):
            return (-1, "unreadable")

    def _write_head(self, seq: int, digest: str) -> None:
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps({"seq": seq, "hash": digest}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.head_path)
        with contextlib.suppress(OSError):  # make the rename durable where directories can be fsynced
            fd = os.open(self.head_path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------------------------ reading

    def exists(self) -> bool:
        return self.path.exists() or self.head_path.exists()

    def _lines(self) -> tuple[list[bytes], bool]:
        """The log's lines and whether the last one is complete (ends with a newline)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return [], True
        if not raw:
            return [], True
        return raw.rstrip(b"\n").split(b"\n") if raw.endswith(b"\n") else raw.split(b"\n"), raw.endswith(b"\n")

    def entries(self) -> list[dict[str, Any]]:
        """The entries that parse, in file order (:meth:`verify` says whether they can be trusted)."""
        out = []
        for line in self._lines()[0]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def verify(self) -> list[str]:
        """Every break in the chain, naming its line and seq: edited, removed, inserted, reordered or
        truncated entries and a head that does not match the end. Empty: the chain is intact."""
        lines, complete = self._lines()
        problems: list[str] = []
        prev: str | None = GENESIS
        expected, last = 1, None
        for n, line in enumerate(lines, 1):
            entry = _parse(line)
            if entry is None:
                cut = n == len(lines) and not complete
                problems.append(f"line {n}: " + ("the last entry is cut off (log truncated)" if cut
                                                 else "not a valid entry (edited or truncated)"))
                prev, expected = None, expected + 1
                continue
            seq = entry["seq"]
            if entry["hash"] != entry_hash(entry):
                problems.append(f"line {n} (seq {seq}): its hash does not match its content (entry edited)")
            if seq != expected:
                problems.append(f"line {n}: seq {seq} where {expected} was expected (entry removed, inserted or "
                                f"reordered)")
            if prev is not None and entry["prev"] != prev:
                problems.append(f"line {n} (seq {seq}): prev does not match the hash of line {n - 1} (that entry "
                                f"edited, or an entry removed, inserted or reordered)" if n > 1 else
                                f"line 1 (seq {seq}): prev is not the start of a chain (entries removed before it)")
            prev, expected, last = entry["hash"], (seq + 1 if isinstance(seq, int) else expected + 1), entry
        problems += self._head_problems(last, bool(lines))
        return problems

    def _head_problems(self, last: Mapping[str, Any] | None, any_lines: bool) -> list[str]:
        head = self._read_head()
        if head is None:
            return [f"{self.head_path.name} is missing: the end of the log cannot be checked"] if any_lines else []
        if head == (-1, "unreadable"):
            return [f"{self.head_path.name} is unreadable"]
        tip = (last["seq"], last["hash"]) if last is not None else (0, GENESIS)
        if head[0] > tip[0]:
            return [f"the head records seq {head[0]} but the log ends at seq {tip[0]} (entries removed from the end)"]
        if head[0] < tip[0]:
            return [f"the head records seq {head[0]} but the log ends at seq {tip[0]} (entries added past the head)"]
        if head != tip:
            return [f"the head's hash for seq {head[0]} differs from the last entry's (last entry replaced)"]
        return []

    def history(self, tags: Iterable[str] | None = None, since: dt.datetime | None = None) -> list[Change]:
        """Writes that may have moved a value (actions ``write``/``rollback``, outcomes ``confirmed``/
        ``uncertain``), one :class:`Change` per tag, optionally only for ``tags`` and from ``since``."""
        wanted = None if tags is None else set(tags)
        out = []
        for entry in self.entries():
            if entry.get("action") not in WRITE_ACTIONS or entry.get("outcome") not in MOVED:
                continue
            try:
                when = dt.datetime.fromisoformat(entry["time"])
            except (KeyError, TypeError, ValueError):
                continue
            if since is not None and when < since:
                continue
            for c in entry.get("changes") or []:
                numbers = all(isinstance(c.get(k), int | float) for k in ("old", "new"))
                if (wanted is None or c.get("tag") in wanted) and numbers:  # dispatch lists are not rated
                    out.append(Change(c["tag"], when, float(c["old"]), float(c["new"]), str(entry.get("user", ""))))
        return out


_FIELDS = ("seq", "time", "user", "action", "recommendation", "endpoint", "changes", "outcome", "prev", "hash")


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or any(k not in entry for k in _FIELDS):
        return None
    return entry


def _number(value: float | list[str] | None) -> float | list[str] | None:
    if value is None:
        return None
    return [str(v) for v in value] if isinstance(value, list | tuple) else float(value)
