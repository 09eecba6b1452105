"""Print the JSON Schema of the scenario format.

Example:
  twinopt schema > scenario.schema.json
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")


def main(args: argparse.Namespace) -> int:
    import json

    from twins.spec import Scenario

    text = json.dumps(Scenario.model_json_schema(by_alias=True), indent=2) + "\n"
    if args.out:
        from studio.output import check_writable

        check_writable(args.out)
        with open(args.out, "w") as fh:
            fh.write(text)
    else:
        print(text, end="")
    return 0
