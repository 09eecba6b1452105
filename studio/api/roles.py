"""Roles and what they may do — one table for the API, which enforces it, and the studio, which
shows only the buttons a role can use. No dependencies, so a client imports it without the store.

=========  ===============================================================
viewer     read everything (scenarios, jobs, recommendations, the audit trail)
engineer   read; upload scenarios, submit and cancel jobs
approver   read; approve, reject and push recommendations
admin      everything, and create keys
=========  ===============================================================
"""
from __future__ import annotations

ROLES = ("viewer", "engineer", "approver", "admin")
#: permission -> roles that have it
PERMISSIONS = {
    "read": frozenset(ROLES),
    "write": frozenset({"engineer", "admin"}),
    "approve": frozenset({"approver", "admin"}),
    "admin": frozenset({"admin"}),
}


def may(role: str | None, permission: str) -> bool:
    """Whether ``role`` has ``permission`` (no role — nobody signed in — has none)."""
    return role is not None and role in PERMISSIONS[permission]
