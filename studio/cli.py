"""``twinopt`` command line. Each subcommand lives in ``studio/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``main(args) -> int``; heavy imports stay inside ``main`` (modules
import only core twinopt, so ``--help``, ``run``, ``compare`` and ``schema`` need no extras).

Exit codes (README, "Exit codes"), each with one line on stderr when not 0:

* 0 — ok;
* 2 — bad input (:class:`~twins.errors.InputError`: a file, a field, an option), ``twinopt: error: …``;
* 3 — no solution found (:class:`~twins.errors.NoSolutionFound`: a solver ran on valid input and
  found nothing, e.g. infeasible or out of time), ``twinopt: no solution: …``;
* 4 — a push failed and was rolled back (:class:`~twins.errors.EquipmentError`: a write refused,
  a read-back stale, the connection dropped; every changed tag confirmed at its previous value),
  ``twinopt: equipment: rolled back: …``;
* 5 — a push failed and not even the rollback could be confirmed
  (:class:`~twins.errors.EquipmentUncertain`), ``twinopt: equipment: uncertain: …``; the endpoint
  is blocked until ``twinopt push --reconcile``;
* 1 — internal error (a bug), ``twinopt: internal error: …``; ``--debug`` shows the traceback; or
  the executor lost work beyond its retries (:class:`~twins.errors.ExecutorError`: a Ray worker or
  node died more often than Ray retries a task), ``twinopt: executor: …`` — never a shorter result.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from twins.errors import EquipmentError, EquipmentUncertain, ExecutorError, InputError, NoSolutionFound
from twins.extras import requires

#: subcommand name -> module; order is the order of ``twinopt --help``.
COMMANDS = {
    "run": "studio.commands.run",
    "compare": "studio.commands.compare",
    "schema": "studio.commands.schema",
    "schedule": "studio.commands.schedule",
    "train": "studio.commands.train",
    "evaluate": "studio.commands.evaluate",
    "optimize": "studio.commands.optimize",
    "sensitivity": "studio.commands.sensitivity",
    "dataset": "studio.commands.dataset",
    "recommend": "studio.commands.recommend",
    "audit": "studio.commands.audit",
    "plant": "studio.commands.plant",
    "push": "studio.commands.push",
    "snapshot": "studio.commands.snapshot",
    "shadow": "studio.commands.shadow",
    "calibrate": "studio.commands.calibrate",
    "serve": "studio.commands.serve",
    "keys": "studio.commands.keys",
    "studio": "studio.commands.studio",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="twinopt", description="Digital twin and process optimization for manufacturing lines.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0].replace("%", "%%") if doc else None,
                           description=(module.__doc__ or "").strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("TWINOPT_DEBUG"))
    command = " ".join(filter(None, ("twinopt", args.command, getattr(args, "kind", None))))
    try:
        with requires(None, command):  # an optional package not installed: name its extra
            return int(args._main(args) or 0)
    except InputError as err:
        print(f"twinopt: error: {err}", file=sys.stderr)
        return 2
    except NoSolutionFound as err:
        print(f"twinopt: no solution: {err}", file=sys.stderr)
        return 3
    except EquipmentError as err:
        print(f"twinopt: equipment: {err}", file=sys.stderr)
        return 5 if isinstance(err, EquipmentUncertain) else 4
    except ExecutorError as err:  # e.g. a Ray worker lost beyond Ray's retries: no shorter result
        print(f"twinopt: executor: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("twinopt: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence: no tracebacks for users
        if debug:
            raise
        msg = " ".join(f"{type(err).__name__}: {err}".split())
        print(f"twinopt: internal error: {msg} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
