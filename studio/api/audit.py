"""The gateway's hash-chained audit trail kept in the API's store instead of a JSON-lines file.

:class:`SqlAuditLog` is an :class:`studio.gateway.audit.AuditLog`: the same entries, hashes,
chain and head (the ``audit`` table holds each entry's canonical JSON under its seq, the
``audit_head`` row the last seq and hash), so the gateway's push, its history for the hourly rate
limits and ``verify`` work on it unchanged. Appends run in one transaction that also moves the
head; a concurrent append that lost the race retries.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from studio.api.store import Store, audit, audit_head
from studio.gateway.audit import GENESIS, AuditLog, AuditTampered, canonical, chained, entry_fields


class _Raced(Exception):
    """A concurrent first append: read the head again."""


class SqlAuditLog(AuditLog):
    """An append-only, hash-chained audit trail in ``store``."""

    def __init__(self, store: Store):
        self.store = store
        self.path, self.head_path = Path("audit"), Path("audit_head")  # names in messages, not files

    def append(self, user: str, action: str, outcome: str, *, recommendation: tuple[str, int] | None = None,
               endpoint: str | None = None, changes: Iterable[tuple[str, Any, Any]] = (),
               detail: str | None = None, time: dt.datetime | None = None) -> dict[str, Any]:
        fields = entry_fields(user, action, outcome, recommendation=recommendation, endpoint=endpoint,
                              changes=list(changes), detail=detail, time=time)
        for attempt in range(20):
            try:
                with self.store.write() as conn:
                    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
                                        .with_for_update()).first()
                    last = conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
                                        ).first()
                    tip = (0, GENESIS) if last is None else (int(last.seq), str(last.hash))
                    if head is None and last is not None and attempt < 19:
                        # no head row to lock yet: a first append committed between our two reads
                        # (PostgreSQL reads each statement afresh); a real loss of the head still fails
                        raise _Raced()
                    if (head is None and last is not None) or (head is not None and (head.seq, head.hash) != tip):
                        raise AuditTampered("refusing to append to the audit trail: its last entry does not match "
                                            "its head (GET /api/v1/audit/verify)")
                    entry = chained(fields, tip[0] + 1, tip[1])
                    conn.execute(insert(audit).values(seq=entry["seq"], entry=canonical(entry), hash=entry["hash"]))
                    if head is None:
                        conn.execute(insert(audit_head).values(id=1, seq=entry["seq"], hash=entry["hash"]))
                    else:
                        conn.execute(update(audit_head).where(audit_head.c.id == 1)
                                     .values(seq=entry["seq"], hash=entry["hash"]))
                return entry
            except (IntegrityError, _Raced):  # another append took this seq first: chain onto it
                if attempt == 19:
                    raise
        raise AssertionError("unreachable")

    def exists(self) -> bool:
        with self.store.read() as conn:
            return bool(conn.execute(select(func.count()).select_from(audit)).scalar_one())

    def _lines(self) -> tuple[list[bytes], bool]:
        with self.store.read() as conn:
            rows = conn.execute(select(audit.c.entry).order_by(audit.c.seq)).all()
        return [r.entry.encode() for r in rows], True

    def _read_head(self) -> tuple[int, str] | None:
        with self.store.read() as conn:
            head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
        return None if head is None else (int(head.seq), str(head.hash))

    def page(self, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Entries by seq, ``limit`` from ``offset``."""
        import json

        with self.store.read() as conn:
            rows = conn.execute(select(audit.c.entry).order_by(audit.c.seq).offset(offset).limit(limit)).all()
        return [json.loads(r.entry) for r in rows]
