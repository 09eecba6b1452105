"""OPC UA security for the gateway and the virtual plant: password hashes, the users file, and
self-signed application certificates.

Users file (``twinopt plant --users FILE``): one ``name: hash`` per line, ``#`` comments; the hash
is ``scrypt$N$r$p$salt$key`` (base64 salt and key, :func:`hash_password`), never a plaintext
password. ``twinopt plant --users FILE --add-user NAME`` adds or replaces a user, reading the
password from ``$TWINOPT_PLANT_PASSWORD`` or a prompt.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import socket
from pathlib import Path

from twins.errors import InputError

_SCRYPT = (2 ** 14, 8, 1)  # N, r, p: ~16 MiB and a few tens of ms per check
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
#: the application URI in the plant's certificate (asyncua checks it against the server's)
PLANT_APP_URI = "urn:twinopt:plant"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$key`` of ``password`` (a fresh random salt unless given)."""
    n, r, p = _SCRYPT
    salt = secrets.token_bytes(16) if salt is None else salt
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(key).decode()}"


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    kind, n, r, p, salt, key = stored.split("$")
    if kind != "scrypt":
        raise ValueError(kind)
    n_, r_, p_ = int(n), int(r), int(p)
    if not (2 <= n_ <= 2 ** 20 and 1 <= r_ <= 32 and 1 <= p_ <= 16):
        raise ValueError("scrypt parameters out of range")
    return n_, r_, p_, base64.b64decode(salt, validate=True), base64.b64decode(key, validate=True)


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the hash ``stored`` (constant-time comparison)."""
    try:
        n, r, p, salt, key = _parse_hash(stored)
    except ValueError:
        return False
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(key))
    return hmac.compare_digest(got, key)


def read_users(path: str | Path) -> dict[str, str]:
    """The users file: name → password hash. A missing file, a malformed line, a plaintext
    password or no user at all is a one-line :class:`InputError`."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InputError(f"{file}: cannot read users file ({err.strerror or err})") from None
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = (part.strip() for part in line.partition(":"))
        if not sep or not _NAME.match(name):
            raise InputError(f"{file}:{number}: expected 'name: password-hash' (names: letters, digits, _ . @ -)")
        try:
            _parse_hash(stored)
        except ValueError:
            raise InputError(f"{file}:{number}: {name}: not a password hash (plaintext passwords are refused; "
                             f"add users with: twinopt plant --users {file} --add-user {name})") from None
        users[name] = stored
    if not users:
        raise InputError(f"{file}: no users (add one with: twinopt plant --users {file} --add-user NAME)")
    return users


def add_user(path: str | Path, name: str, password: str) -> None:
    """Add ``name`` to the users file (created with mode 0600), replacing an earlier entry."""
    if not _NAME.match(name):
        raise InputError(f"user name {name!r}: use 1–64 letters, digits, _ . @ -")
    if len(password) < 8:
        raise InputError("the password must have at least 8 characters")
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else ["# twinopt plant users: name: scrypt hash"]
    lines = [ln for ln in lines if ln.partition(":")[0].strip() != name]
    lines.append(f"{name}: {hash_password(password)}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")


async def ensure_certificate(directory: str | Path, name: str, app_uri: str, *, server: bool) -> tuple[Path, Path]:
    """A self-signed application certificate (DER) and key (PEM) named ``name`` in ``directory``,
    generated when absent or invalid (valid one year, for ``app_uri`` and this host's name)."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{folder}: cannot create the certificate folder ({err.strerror or err})") from None
    cert, key = folder / f"{name}-cert.der", folder / f"{name}-key.pem"
    use = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    await setup_self_signed_certificate(key, cert, app_uri, socket.gethostname(), use,
                                        {"commonName": f"twinopt {name}", "organizationName": "twinopt"})
    if key.exists():
        key.chmod(0o600)
    return cert, key
