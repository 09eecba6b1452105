"""API keys. A key is 32 random bytes (``tw_`` + URL-safe base64) shown once; the store keeps only
its sha256. The roles and what they may do are :mod:`studio.api.roles`."""
from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, insert, select

from studio.api.roles import ROLES, may
from studio.api.store import Store, api_keys, now_iso
from twins.errors import InputError


@dataclass(frozen=True)
class Principal:
    """Who calls: the key's id, its name and its role."""

    key_id: str
    name: str
    role: str

    def may(self, permission: str) -> bool:
        return may(self.role, permission)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: Store, role: str, name: str) -> tuple[Principal, str]:
    """Make a key with ``role`` for ``name``; returns it and the secret (never stored)."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise InputError("a key needs a name of 1 to 200 characters")
    if not name.isprintable():
        raise InputError("a key's name cannot hold control characters")
    secret = "tw_" + secrets.token_urlsafe(32)
    principal = Principal(uuid.uuid4().hex, name, role)
    with store.write() as conn:
        conn.execute(insert(api_keys).values(id=principal.key_id, name=name, role=role, key_hash=hash_key(secret),
                                             prefix=secret[:10], created_at=now_iso()))
    return principal, secret


def first_admin_key(store: Store) -> str | None:
    """An admin key when the store has no key at all (the first start); None otherwise."""
    with store.write() as conn:
        if conn.execute(select(func.count()).select_from(api_keys)).scalar_one():
            return None
        secret = "tw_" + secrets.token_urlsafe(32)
        conn.execute(insert(api_keys).values(id=uuid.uuid4().hex, name="admin", role="admin",
                                             key_hash=hash_key(secret), prefix=secret[:10], created_at=now_iso()))
    return secret


def authenticate(store: Store, secret: str) -> Principal | None:
    with store.read() as conn:
        row = conn.execute(select(api_keys.c.id, api_keys.c.name, api_keys.c.role)
                           .where(api_keys.c.key_hash == hash_key(secret), api_keys.c.revoked_at.is_(None))).first()
    return None if row is None else Principal(row.id, row.name, row.role)
