"""The studio in a real browser: ``twinopt studio`` started as users start it, driven by Playwright
in Debian's Chromium (``/usr/bin/chromium``; ``playwright install`` cannot work here)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from apiserver import launch

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "out" / "screenshots"  # docs/studio/ has the ones the docs show (copied by hand)
#: Chromium's flags on a machine with a closed network (no background fetches), as root
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
READY = re.compile(r"^twinopt studio: (http://127\.0\.0\.1:\d+)/ \(API (\S+)\)")


def need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does)")
    pytest.importorskip("playwright")


@dataclass
class Studio:
    proc: subprocess.Popen[str]
    url: str
    api: str
    output: list[str] = field(default_factory=list)


@contextmanager
def studio(*args: str, timeout: float = 90) -> Iterator[Studio]:
    """``twinopt studio --port 0 ARGS``; stopped (with its embedded API) at the end."""
    proc, lines, ready, _ = launch(["studio", "--port", "0", *args], READY, timeout=timeout, new_session=True)
    try:
        if ready is None:
            raise AssertionError("twinopt studio did not start:\n" + "".join(lines))
        _wait_up(ready.group(1))
        yield Studio(proc, ready.group(1), ready.group(2), lines)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _wait_up(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


@contextmanager
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def shot(page: object, name: str) -> Path:
    """Save a full-page screenshot under out/screenshots/ (docs/studio/ holds copies of those the docs show)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def sign_in(page: object, url: str, key: str) -> None:
    page.goto(url)  # type: ignore[attr-defined]
    page.fill("#key-input", key)  # type: ignore[attr-defined]
    page.press("#key-input", "Enter")  # type: ignore[attr-defined]
    page.wait_for_selector("#who-name", timeout=30_000)  # type: ignore[attr-defined]
