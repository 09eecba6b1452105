"""Progress bars that can also report to a listener: tqdm on a terminal, and a callback for a
service that runs the same code in a worker (the API's job progress and cancellation).

:func:`bar` is ``tqdm.auto.tqdm`` plus bookkeeping: every open bar is on a stack, and after each
update the listener (if one is set, :func:`listen`) gets the overall fraction done: the outermost
bar's fraction, refined by the bars nested inside it. The listener may raise to stop the work (a
cancelled job); the exception leaves through the code that called ``update``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

Listener = Callable[[float], None]
_listener: Listener | None = None
_open: list[Bar] = []


class Bar(tqdm):  # tqdm ships no type information: Any
    """A tqdm bar that counts even when disabled (tqdm's own count stops then) and tells the listener."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.done = 0.0
        _open.append(self)
        _notify()

    def update(self, n: float | None = 1) -> bool | None:
        self.done += 1 if n is None else n
        shown = super().update(n)
        _notify()
        return shown  # type: ignore[no-any-return]

    def close(self) -> None:
        if self in _open:
            _open.remove(self)
        super().close()


def bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Bar:
    """``tqdm(iterable, **kwargs)`` that reports to the listener; iterate it or call ``update``."""
    return Bar(iterable, **kwargs)


def track(iterable: Iterable[Any], **kwargs: Any) -> Iterator[Any]:
    """Iterate ``iterable`` with a :func:`bar` (closed at the end)."""
    b = bar(None, **kwargs)
    try:
        for item in iterable:
            yield item
            b.update()
    finally:
        b.close()


def fraction() -> float:
    """Overall fraction done, from the stack of open bars (0 when none has a total)."""
    out, scale = 0.0, 1.0
    for b in _open:
        total = b.total
        if not total:
            continue
        step = min(b.done, total) / total
        out += scale * step
        scale *= 1.0 / total
        if b.done >= total:
            break
    return min(out, 1.0)


def _notify() -> None:
    if _listener is not None:
        _listener(fraction())


@contextmanager
def listen(listener: Listener) -> Iterator[None]:
    """Send the overall fraction done to ``listener`` after every update, inside the block."""
    global _listener
    before, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = before
        _open.clear()
