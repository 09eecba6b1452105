"""The studio's plant page in Chromium: live values of a virtual plant, a what-if from now."""
from __future__ import annotations

import pytest

pytest.importorskip("dash")
pytest.importorskip("asyncua")
from apiserver import serve  # noqa: E402
from browser import browser, need_chromium, shot, sign_in, studio  # noqa: E402
from test_plant import plant  # noqa: E402

pytestmark = pytest.mark.browser


def test_the_plant_page_shows_live_values_and_runs_a_what_if_from_now(tmp_path):
    need_chromium()
    with plant("smt_line", "--port", "0", "--speed", "3600", "--insecure") as p, \
            serve(tmp_path / "api", "--workers", "1", "--opc-insecure") as s, \
            studio("--api", s.url) as st, browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, st.url, s.key("engineer", "erin"))
        page.get_by_text("Plant", exact=True).click()
        page.fill("#pl-endpoint", p.url)
        page.click("#pl-connect")
        page.wait_for_selector("#pl-machines", timeout=60_000)
        assert "pnp" in page.locator("#pl-machines").inner_text()
        first = page.locator("#pl-counters").inner_text()
        assert "smt_line" in page.locator("#pl-live").inner_text() and "clock" in first
        page.wait_for_function(f"document.querySelector('#pl-counters').innerText !== {first!r}", timeout=30_000)
        page.fill("#pl-reps", "2")
        page.fill("#pl-horizon", "14400")
        page.click("#pl-whatif")
        page.wait_for_selector("#pl-whatif-done #kpi-table", timeout=180_000)
        assert "throughput" in page.locator("#pl-whatif-done #kpi-table").inner_text()
        shot(page, "plant")
