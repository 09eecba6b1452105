"""The what-if studio in the browser (Dash): edit a scenario, run variants, optimize, approve, push.

With no --api it starts an embedded API (`twinopt serve` on loopback, data in --data) and signs
in with that API's local studio key, so `twinopt studio` alone is a working product on a laptop.

Examples:
  twinopt studio                                   # http://127.0.0.1:8050
  twinopt studio --api http://127.0.0.1:8000 --port 8051
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", default=None, metavar="URL", help="the API to use (default: start an embedded one)")
    p.add_argument("--key", default=None, metavar="KEY",
                   help="pre-fill the sign-in with this API key (default with the embedded API: its studio key)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8050, help="port (default 8050; 0: a free one, printed)")
    p.add_argument("--data", default="twinopt-data", metavar="DIR", help="the embedded API's data folder")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="the embedded API's job workers")


def main(args: argparse.Namespace) -> int:
    import socket
    import sys

    from twins.errors import InputError
    from twins.extras import requires

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be 0..65535, got {args.port}")
    with requires("studio", "twinopt studio"):
        import dash  # noqa: F401
        import httpx  # noqa: F401

        from studio.web.app import create_app
    embedded = None
    key = args.key
    api_url = args.api
    if api_url is None:
        embedded, api_url, key = _embedded_api(args)
    try:
        sock = socket.socket()
        sock.bind((args.host, args.port))
        port = sock.getsockname()[1]
        sock.close()
    except OSError as err:
        raise InputError(f"cannot listen on {args.host}:{args.port} ({err.strerror or err})") from None
    app = create_app(api_url, key)
    print(f"twinopt studio: http://{args.host}:{port}/ (API {api_url})", flush=True)
    try:
        from waitress import serve as waitress_serve  # a production WSGI server when installed
    except ImportError:
        waitress_serve = None
    try:
        if waitress_serve is not None:
            waitress_serve(app.server, host=args.host, port=port, threads=8, _quiet=True)
        else:
            import logging

            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            app.run(host=args.host, port=port, debug=False)
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None:
            _stop(embedded)
        print("twinopt studio: stopped", file=sys.stderr, flush=True)
    return 0


def _embedded_api(args: argparse.Namespace):
    """Start `twinopt serve --port 0` on loopback; returns (process, URL, the studio's key)."""
    import os
    import re
    import subprocess
    import sys
    import threading
    import time
    from pathlib import Path

    from twins.errors import InputError

    data = Path(args.data)
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "serve", "--port", "0", "--data", str(data),
                             "--workers", str(args.workers), "--opc-insecure"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.match(r"^\s+(tw_\S+)\s*$", line)
            if m:
                found["admin"] = m.group(1)
            m = re.match(r"^twinopt serve: (http://\S+?)/api/v1 ", line)
            if m:
                found["url"] = m.group(1)
                ready.set()
            elif "error" in line:
                sys.stderr.write(line)
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while not ready.wait(0.2) and time.monotonic() < deadline:
        pass
    if "url" not in found:
        _stop(proc)
        raise InputError(f"the embedded API did not start (data folder {data})")
    key_file = data / "studio.key"
    if "admin" in found:  # the very first start: keep the admin key for this local studio, owner-only
        key_file.write_text(found["admin"] + "\n")
        os.chmod(key_file, 0o600)
    key = args.key or (key_file.read_text().strip() if key_file.exists() else None)
    return proc, found["url"], key


def _stop(proc) -> None:
    import os
    import signal
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
