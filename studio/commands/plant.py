"""Serve a scenario as a virtual plant: the twin in scaled wall-clock time behind an OPC UA server.

Writable setpoint tags (typed, bounds enforced like a PLC), staging with an ApplyStaged method,
read-only states, buffers, counters, energy meter and KPIs, a heartbeat watchdog, injectable
faults. docs/plant.md has the node map, the faults file and the security setup.

Examples:
  twinopt plant glue_dispensing --port 0 --speed 600 --insecure
  twinopt plant ft06 --hold --port 0 --speed 600 --insecure      # a job shop waiting for its dispatch lists
  twinopt plant smt_line --users plant-users.txt --cert-dir twinopt-data/pki
  TWINOPT_PLANT_PASSWORD=… twinopt plant --users plant-users.txt --add-user alice
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys

PASSWORD_ENV = "TWINOPT_PLANT_PASSWORD"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", metavar="SCENARIO", nargs="?",
                   help="scenario YAML file or shipped name (glue_dispensing …), or a shipped scheduling "
                        "instance (ft06, ta001 …): its shop, every job released at t = 0")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=4840, help="TCP port; 0 picks a free one (default 4840)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="simulated seconds per wall second (default 60: a minute per second)")
    p.add_argument("--seed", type=int, default=1, help="master seed of the simulated replication")
    p.add_argument("--faults", metavar="FILE", help="inject faults (YAML/JSON, see docs/plant.md)")
    p.add_argument("--hold", action="store_true",
                   help="start with the simulated clock held (line.hold true) until a client writes line.hold "
                        "false, e.g. after publishing dispatch lists")
    p.add_argument("--watchdog", type=float, default=5.0, metavar="S",
                   help="seconds without a heartbeat during a push before reverting (default 5)")
    sec = p.add_mutually_exclusive_group()
    sec.add_argument("--insecure", action="store_true",
                     help="no security, anonymous clients (tests and demos on loopback only)")
    sec.add_argument("--users", metavar="FILE",
                     help="users file (name: scrypt hash): Basic256Sha256 Sign/SignAndEncrypt with passwords")
    p.add_argument("--cert-dir", default="twinopt-data/pki", metavar="DIR",
                   help="server certificate and key, generated when absent (default twinopt-data/pki)")
    p.add_argument("--add-user", metavar="NAME",
                   help=f"add NAME to the --users file (password from ${PASSWORD_ENV} or a prompt) and exit")


def _add_user(args: argparse.Namespace) -> int:
    import getpass

    from studio.gateway.security import add_user
    from twins.errors import InputError

    if not args.users:
        raise InputError("--add-user needs --users FILE (the file to add the user to)")
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise InputError(f"--add-user: set ${PASSWORD_ENV} or run in a terminal to type the password")
        password = getpass.getpass(f"password for {args.add_user}: ")
        if getpass.getpass("again: ") != password:
            raise InputError("the passwords differ")
    add_user(args.users, args.add_user, password)
    print(f"twinopt plant: user {args.add_user} written to {args.users}")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(args: argparse.Namespace) -> int:
    from twins.errors import InputError, check_seed

    if args.add_user:
        return _add_user(args)
    if not args.scenario:
        raise InputError("plant needs a SCENARIO (a YAML file or a shipped name)")
    if not (args.insecure or args.users):
        raise InputError("choose the security: --users FILE (Basic256Sha256 with passwords) or, explicitly, --insecure")
    if args.insecure and not _is_loopback(args.host):
        raise InputError(f"--insecure serves anonymous clients without encryption: loopback only, not {args.host}")
    check_seed(args.seed, name="--seed")

    from studio.shop import resolve_scenario
    from twins.extras import requires

    scenario, shop = resolve_scenario(args.scenario)
    releases = {p.name: 1 for p in scenario.products} if shop else None
    with requires("gateway", "twinopt plant"):
        import asyncua  # noqa: F401 - the extra, named before any work

        from studio.gateway.faults import load_faults
        from studio.gateway.plant import PlantSecurity, VirtualPlant
        from studio.gateway.security import read_users
    faults = load_faults(args.faults) if args.faults else None
    security = PlantSecurity.insecure() if args.insecure else PlantSecurity.with_users(read_users(args.users),
                                                                                         args.cert_dir)
    plant = VirtualPlant(scenario, security=security, speed=args.speed, seed=args.seed, faults=faults,
                         host=args.host, port=args.port, watchdog_s=args.watchdog, hold=args.hold, releases=releases,
                         on_event=lambda message: print(f"twinopt plant: {message}", file=sys.stderr, flush=True))
    import asyncio

    asyncio.run(_serve(plant, args.scenario))
    return 0


async def _serve(plant, name: str) -> None:
    import asyncio
    import logging
    import signal

    logging.getLogger("asyncua").setLevel(logging.ERROR)  # its warnings are for developers
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with plant:
        mode = "insecure" if plant.security.insecure_ else "Basic256Sha256, users"
        print(f"twinopt plant: serving {name} at {plant.endpoint} (speed {plant.speed:g} simulated s per s, "
              f"{mode})", flush=True)
        await stop.wait()
    print("twinopt plant: stopped", file=sys.stderr, flush=True)
