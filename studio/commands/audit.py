"""Check the gateway's hash-chained audit trail: every entry, in order, up to the head.

An edited, removed, inserted, reordered or cut-off entry breaks the chain: exit 2 with the first
problem. The default log is ./twinopt-data/audit.jsonl (docs/gateway.md).

Example:
  twinopt audit verify
  twinopt audit verify --log plant/audit.jsonl
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    v = sub.add_parser("verify", help="check the hash chain of every entry and the head")
    v.add_argument("--log", default=None, metavar="PATH", help="audit log (default: ./twinopt-data/audit.jsonl)")


def main(args: argparse.Namespace) -> int:
    from studio.gateway.audit import DEFAULT_LOG, AuditLog, AuditTampered
    from twins.errors import InputError

    log = AuditLog(args.log or DEFAULT_LOG)
    if not log.exists():
        raise InputError(f"no audit log at {log.path}")
    problems = log.verify()
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})" if len(problems) > 1 else ""
        raise AuditTampered(f"{log.path}: {problems[0]}{more}")
    n = len(log.entries())
    print(f"ok: {n} entr{'y' if n == 1 else 'ies'}, chain intact")
    return 0
