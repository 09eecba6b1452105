"""Seals: what makes "only the checker creates plans" structural.

A sealed object is a frozen dataclass with a ``seal`` field: an HMAC (sha256) of its class name and
every other field under a key that one :class:`Sealer` holds in memory. A module that checks
things against the envelope keeps its own sealer private, makes its results with :meth:`Sealer.make`
and its writer accepts only objects for which :meth:`Sealer.authentic` holds — so an object built
or altered anywhere else (``dataclasses.replace``, ``object.__setattr__``, unpickled from another
process) is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class Sealer:
    """A process-local key and the seals made with it."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    @staticmethod
    def content(obj: Any) -> dict[str, Any]:
        """Every field of a dataclass but its seal."""
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "seal"}

    def seal_of(self, kind: str, content: Mapping[str, Any]) -> str:
        # repr of frozen dataclasses, tuples, floats and datetimes is exact and deterministic
        return hmac.new(self._key, repr((kind, sorted(content.items()))).encode(), hashlib.sha256).hexdigest()

    def make(self, cls: type[T], **content: Any) -> T:
        """``cls(**content)`` with its seal."""
        return cls(**content, seal=self.seal_of(cls.__name__, content))  # type: ignore[call-arg]

    def authentic(self, obj: object, *classes: type) -> bool:
        """True when ``obj`` is one of ``classes``, sealed by this sealer and not altered since."""
        if not isinstance(obj, classes):
            return False
        try:
            content = self.content(obj)
        except AttributeError:  # a half-made object (object.__new__)
            return False
        return hmac.compare_digest(str(getattr(obj, "seal", "")), self.seal_of(type(obj).__name__, content))
