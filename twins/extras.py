"""Optional parts of twinopt and the pip extras that install them.

Core twinopt — the twin and ``twinopt run``, ``compare``, ``schema`` — needs only its hard
dependencies; everything else comes with an extra (pyproject.toml). Where an optional part is
entered, :func:`requires` turns a missing package into a one-line
:class:`~twins.errors.MissingDependency` that names the extra to install::

    with requires("search", "twinopt optimize"):
        import optuna
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from twins.errors import MissingDependency

#: extra -> the top-level modules it installs (torch is pinned by the Makefile, not by the extra)
EXTRAS: dict[str, tuple[str, ...]] = {
    "rl": ("gymnasium", "stable_baselines3", "sb3_contrib", "torch"),
    "solvers": ("pyomo", "highspy", "ortools"),
    "search": ("optuna", "cmaes"),
    "gateway": ("asyncua", "cryptography"),
    "api": ("fastapi", "starlette", "uvicorn", "huey", "sqlalchemy", "alembic", "httpx"),
    "postgres": ("psycopg",),
    "studio": ("dash", "flask", "waitress"),
    "models": ("sklearn",),
    "data": ("SALib", "pyarrow"),
    "ray": ("ray",),
}
_EXTRA_OF = {module: extra for extra, modules in EXTRAS.items() for module in modules}
#: twinopt's own packages: a missing one is a broken installation, never a missing extra
_OWN = ("twins", "envs", "optimizers", "studio", "scenarios")


@contextmanager
def requires(extra: str | None, what: str) -> Iterator[None]:
    """Raise :class:`~twins.errors.MissingDependency` when a third-party module imported inside the
    block is not installed, naming the extra that installs it (:data:`EXTRAS`), else ``extra``
    (``None``: an unknown module stays a ModuleNotFoundError). ``what`` says what needs it
    (``"twinopt train"``); the outermost block's ``what`` wins, so users read their own command."""
    try:
        yield
    except MissingDependency as err:
        raise MissingDependency(err.extra, what, err.module) from None
    except ModuleNotFoundError as err:
        top = (err.name or "").partition(".")[0]
        extra = _EXTRA_OF.get(top, extra)
        if not top or top in _OWN or extra is None:
            raise
        raise MissingDependency(extra, what, top) from None
