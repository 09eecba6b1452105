"""Serve the parameter-recommendation API: FastAPI on uvicorn, job workers, SQLite under --data.

The first start prints a one-time admin key (make more with `twinopt keys create`). Jobs run in
--workers worker processes (huey). OpenAPI at /docs and /openapi.json; docs/api.md has the contract.

Examples:
  twinopt serve                                   # http://127.0.0.1:8000/api/v1, data in ./twinopt-data
  twinopt serve --port 0 --data /srv/twinopt --workers 4
  twinopt serve --db postgresql+psycopg://twinopt@127.0.0.1/twinopt --opc-insecure
"""
from __future__ import annotations

import argparse

from twins.executors import EXECUTORS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: a free one, printed)")
    p.add_argument("--data", default="twinopt-data", metavar="DIR", help="data folder (database, queue, job outputs)")
    p.add_argument("--db", default=None, metavar="URL",
                   help="database URL (default: SQLite in --data), e.g. postgresql+psycopg://user@host/db")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="job worker processes (default 2)")
    p.add_argument("--approval-hours", type=float, default=8.0, metavar="H", help="how long an approval holds")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN", help="allow a browser origin (CORS)")
    p.add_argument("--max-body", type=int, default=1_000_000, metavar="BYTES", help="largest request body")
    p.add_argument("--max-replications", type=int, default=100, metavar="N", help="cap per job")
    p.add_argument("--max-budget", type=int, default=500, metavar="N", help="cap on optimize trials per job")
    p.add_argument("--max-horizon-h", type=float, default=24 * 366, metavar="H",
                   help="cap on a replication's simulated hours")
    p.add_argument("--stale-after", type=float, default=10.0, metavar="S",
                   help="seconds without a worker's heartbeat (it beats every second) before its running job "
                        "is re-queued (default 10)")
    sec = p.add_mutually_exclusive_group()
    sec.add_argument("--opc-insecure", action="store_true",
                     help="push to OPC UA endpoints without security (loopback demos and tests)")
    sec.add_argument("--opc-username", metavar="U", help="push with this OPC UA login (Basic256Sha256)")
    p.add_argument("--opc-password-env", metavar="VAR", help="variable holding --opc-username's password")
    p.add_argument("--opc-dwell-scale", type=float, default=1.0, metavar="F",
                   help="factor on the envelope's dwell times (1; 1/S for a virtual plant at --speed S)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where jobs' simulations run: local (in the job's worker, default) or ray (Ray tasks on "
                        "the cluster at --ray-address; the [ray] extra)")
    p.add_argument("--ray-address", dest="ray_address", default=None, metavar="HOST:PORT",
                   help="with --executor ray: the Ray cluster every run, compare and optimize job joins")
    p.add_argument("--endpoint-allow", action="append", default=[], metavar="PREFIX",
                   help="OPC UA endpoints pushes may go to (default: opc.tcp://127.0.0.1: and opc.tcp://localhost:)")


def _execution(args: argparse.Namespace) -> list[str]:
    """The job workers' executor options, checked now: a server must not accept jobs it cannot run.
    A cluster is required: a private Ray per job would cost seconds of start-up each."""
    from twins.errors import InputError
    from twins.executors import check_ray

    if args.executor == "local":
        if args.ray_address:
            raise InputError("--ray-address needs --executor ray")
        return []
    if not args.ray_address:
        raise InputError("twinopt serve --executor ray needs --ray-address HOST:PORT (a running Ray cluster)")
    check_ray(args.ray_address)
    return ["--executor", "ray", "--ray-address", args.ray_address]


def main(args: argparse.Namespace) -> int:
    import os
    import socket
    import sys
    from pathlib import Path

    from twins.errors import InputError
    from twins.extras import requires

    if args.workers < 1:
        raise InputError("--workers must be ≥ 1")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be 0..65535, got {args.port}")
    for flag, value in (("--max-body", args.max_body), ("--max-replications", args.max_replications),
                        ("--max-budget", args.max_budget), ("--max-horizon-h", args.max_horizon_h),
                        ("--approval-hours", args.approval_hours)):
        if value <= 0:
            raise InputError(f"{flag} must be > 0, got {value:g}")
    security = _opc_security(args)
    execution = _execution(args)
    with requires("api", "twinopt serve"):
        import uvicorn

        from studio.api.app import Settings, create_app
        from studio.api.auth import first_admin_key
        from studio.api.jobs import Limits
        from studio.api.queue import HEARTBEAT_S

    if not args.stale_after > HEARTBEAT_S:
        raise InputError(f"--stale-after must be above {HEARTBEAT_S:g} s (a worker's heartbeat), "
                         f"got {args.stale_after:g}")

    data = Path(args.data)
    settings = Settings(data_dir=data, db_url=args.db, approval_hours=args.approval_hours,
                        cors_origins=tuple(args.cors), opc_security=security, stale_s=args.stale_after,
                        reaper_every_s=min(2.0, args.stale_after / 2),
                        limits=Limits(replications=args.max_replications, budget=args.max_budget,
                                      horizon_h=args.max_horizon_h, body_bytes=args.max_body))
    if not 0 <= args.opc_dwell_scale <= 1:
        raise InputError(f"--opc-dwell-scale must be in [0, 1], got {args.opc_dwell_scale:g}")
    settings.dwell_scale = args.opc_dwell_scale
    if args.endpoint_allow:
        settings.endpoint_allow = tuple(args.endpoint_allow)
    app = create_app(settings)
    store = app.state.api.store
    secret = first_admin_key(store)
    if secret is not None:
        print("twinopt serve: first start: an admin key was created; it is shown only this once:", flush=True)
        print(f"  {secret}", flush=True)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as err:
        raise InputError(f"cannot listen on {args.host}:{args.port} ({err.strerror or err})") from None
    port = sock.getsockname()[1]
    consumer = _Consumer([sys.executable, "-m", "studio.api.queue", "--db", settings.url, "--data",
                          str(data.resolve()), "--workers", str(args.workers), "--parent", str(os.getpid()),
                          *execution])
    consumer.start()
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"twinopt serve: http://{host}:{port}/api/v1 (OpenAPI at http://{host}:{port}/docs), data in {data}, "
          f"{args.workers} job worker(s)", flush=True)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print(f"twinopt serve: listening on {args.host}, not only on loopback: protect it (TLS proxy, firewall)",
              file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    try:
        server.run(sockets=[sock])
    finally:
        consumer.stop()
        print("twinopt serve: stopped", file=sys.stderr, flush=True)
    return 0


class _Consumer:
    """The job workers' process (huey's consumer, in its own process group), started again when it
    dies while the server runs; its workers die with it (studio.api.queue)."""

    def __init__(self, argv: list[str]):
        import subprocess
        import threading

        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        import subprocess
        import threading

        self.proc = subprocess.Popen(self.argv, start_new_session=True)
        threading.Thread(target=self._watch, name="twinopt-consumer-watch", daemon=True).start()

    def _watch(self) -> None:
        import subprocess
        import sys

        while not self._stopping.is_set():
            assert self.proc is not None
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            print(f"twinopt serve: the job workers' process exited ({code}); starting it again", file=sys.stderr,
                  flush=True)
            self._kill_group(self.proc.pid)
            self._stopping.wait(1.0)
            if not self._stopping.is_set():
                self.proc = subprocess.Popen(self.argv, start_new_session=True)

    @staticmethod
    def _kill_group(pgid: int) -> None:
        import os
        import signal

        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        self._stopping.set()
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self._kill_group(self.proc.pid)  # workers a SIGTERM left behind


def _opc_security(args: argparse.Namespace):
    """The OPC UA security pushes use (None: pushing is off), checked before anything starts."""
    import os

    from twins.errors import InputError
    from twins.extras import requires

    if args.opc_insecure or args.opc_username:
        with requires("gateway", "twinopt serve --opc-…"):
            from studio.gateway.push import PushSecurity
        if args.opc_insecure:
            return PushSecurity.insecure()
        if not args.opc_password_env or not os.environ.get(args.opc_password_env):
            raise InputError("--opc-username needs --opc-password-env VAR, a set environment variable")
        return PushSecurity.with_password(args.opc_username, os.environ[args.opc_password_env],
                                          os.path.join(args.data, "pki"))
    return None
