"""Command-line options of the commands that connect to equipment over OPC UA (``push``,
``snapshot``): the endpoint, the security (``--insecure`` only when asked for explicitly, or a
username with a password from an environment variable over Basic256Sha256) and the request
timeout. Core-only at import time, like every command module."""
from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from twins.errors import InputError

if TYPE_CHECKING:
    from studio.gateway.push import PushSecurity


def add_endpoint_arguments(p: argparse.ArgumentParser) -> None:
    """``--endpoint``, ``--insecure | --username``, ``--password-env``, ``--mode``, ``--cert-dir``."""
    p.add_argument("--endpoint", required=True, metavar="URL", help="OPC UA endpoint, opc.tcp://HOST:PORT[/PATH]")
    sec = p.add_mutually_exclusive_group()
    sec.add_argument("--insecure", action="store_true",
                     help="no security, anonymous (tests and demos on loopback); must be given explicitly")
    sec.add_argument("--username", metavar="U", help="OPC UA login (Basic256Sha256 with a client certificate)")
    p.add_argument("--password-env", metavar="VAR", help="environment variable holding the --username's password")
    p.add_argument("--mode", choices=("SignAndEncrypt", "Sign"), default="SignAndEncrypt",
                   help="message security mode with --username (default SignAndEncrypt)")
    p.add_argument("--cert-dir", default="twinopt-data/pki", metavar="DIR",
                   help="the client certificate and key, generated when absent (default twinopt-data/pki)")


def endpoint_password(args: argparse.Namespace) -> str | None:
    """Check the security options before any work: one of them must be chosen, and a username
    needs its password's variable set. Returns the password (None with ``--insecure``)."""
    if not (args.insecure or args.username):
        raise InputError("choose the security: --username U --password-env VAR (Basic256Sha256) or, explicitly, "
                         "--insecure")
    if not args.username:
        return None
    if not args.password_env:
        raise InputError("--username needs --password-env VAR (the variable holding the password)")
    password = os.environ.get(args.password_env)
    if not password:
        raise InputError(f"${args.password_env} is not set")
    return password


def endpoint_security(args: argparse.Namespace, password: str | None) -> PushSecurity:
    """The connection security the options ask for (needs the ``gateway`` extra: call it after
    the command has imported asyncua under :func:`twins.extras.requires`)."""
    from studio.gateway.push import PushSecurity

    if args.insecure:
        return PushSecurity.insecure()
    return PushSecurity.with_password(args.username, password or "", args.cert_dir, args.mode)
