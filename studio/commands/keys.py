"""Manage the API's keys: create one for a role (viewer, engineer, approver, admin).

The new key is printed once, as the last word of the last line; the store keeps only its hash.

Example:
  twinopt keys create --role engineer --name alice --data twinopt-data
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("create", help="create a key and print it")
    c.add_argument("--role", required=True, choices=("viewer", "engineer", "approver", "admin"))
    c.add_argument("--name", required=True, help="who the key is for (shown in the audit trail)")
    c.add_argument("--data", default="twinopt-data", metavar="DIR", help="the server's data folder")
    c.add_argument("--db", default=None, metavar="URL", help="database URL (default: SQLite in --data)")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from twins.extras import requires

    with requires("api", "twinopt keys"):
        from studio.api.auth import create_key
        from studio.api.store import Store, sqlite_url

    store = Store.open(args.db or sqlite_url(Path(args.data)))
    try:
        principal, secret = create_key(store, args.role, args.name)
    finally:
        store.dispose()
    print(f"created a {principal.role} key for {principal.name} (id {principal.key_id}); it is shown only once:")
    print(f"key: {secret}")
    return 0
