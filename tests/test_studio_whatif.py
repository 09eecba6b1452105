"""The what-if studio in Chromium: variants against a baseline, bounded controls."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("dash")
from browser import browser, need_chromium, shot, sign_in, studio  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    need_chromium()
    data = tmp_path_factory.mktemp("studio")
    with studio("--data", str(data), "--workers", "2") as s:
        yield s, (data / "studio.key").read_text().strip()


def pick(page, scenario: str) -> None:
    page.click("#wi-scenario")
    page.get_by_text(f"{scenario} (shipped)", exact=True).click()
    page.wait_for_selector("input[id*='stations.pnp.machines']" if scenario == "smt_line" else
                           "input[id*='\"type\":\"edit\"']", timeout=30_000)


def test_adding_a_pick_and_place_machine_shows_the_throughput_difference_with_its_ci(running):
    s, key = running
    with browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, s.url, key)
        pick(page, "smt_line")
        page.click("#wi-add")
        page.wait_for_selector("#wi-editor .editor-of-Variant-1", timeout=30_000)  # its controls drawn
        box = page.locator("input[id*='stations.pnp.machines']")
        box.fill("3")
        box.press("Enter")
        page.wait_for_selector("#wi-changes:has-text('stations.pnp.machines=3')")
        page.fill("#wi-reps", "5")
        page.click("#wi-run")
        page.wait_for_selector("#kpi-table", timeout=240_000)
        row = page.locator("#kpi-table tr", has_text="throughput").first.inner_text()
        cells = row.split("\t")
        # baseline, variant (mean ± hw) and the paired difference with its CI, significance marked
        assert re.match(r"throughput", cells[0]) and "±" in cells[1] and "±" in cells[2]
        diff = re.match(r"\+([\d.e-]+) ± ([\d.e-]+)", cells[3])
        assert diff and float(diff.group(1)) > 0, row
        page.wait_for_selector("#diff-chart .main-svg", timeout=30_000)
        assert "throughput" in page.locator("#diff-chart").inner_text()
        page.wait_for_timeout(1000)
        shot(page, "whatif")


def test_an_out_of_bounds_parameter_is_refused_with_the_reason(running):
    s, key = running
    with browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 900})
        sign_in(page, s.url, key)
        page.click("#wi-scenario")
        page.get_by_text("glue_dispensing (shipped)", exact=True).click()
        box = page.locator("input[id*='dispenser.pressure_bar']")
        box.wait_for(timeout=30_000)
        box.fill("9.5")
        box.press("Enter")
        msg = page.locator("span[id*='edit-msg'][id*='dispenser.pressure_bar']")
        msg.wait_for(timeout=10_000)
        page.wait_for_function("document.querySelector(\"span[id*='edit-msg'][id*='pressure_bar']\")"
                               ".innerText.length > 0", timeout=10_000)
        assert "must be within [1.5, 5] bar" in msg.inner_text()
        assert "as the scenario is" in page.locator("#wi-changes").inner_text()  # nothing recorded
        box.fill("3.5")
        box.press("Enter")
        page.wait_for_selector("#wi-changes:has-text('dispenser.pressure_bar=3.5')")
        assert msg.inner_text() == ""
        shot(page, "bounds")


def test_an_uploaded_scenario_is_validated_by_the_api_with_its_line(running, tmp_path):
    from browser import ROOT

    s, key = running
    text = (ROOT / "scenarios" / "smt_line.yaml").read_text()
    bad = tmp_path / "broken_line.yaml"
    bad.write_text(text.replace("horizon:", "horizon:\n  bogus: 1", 1))
    good = tmp_path / "my_line.yaml"
    good.write_text(text)
    with browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 900})
        sign_in(page, s.url, key)
        page.set_input_files("#wi-upload input[type=file]", str(bad))
        err = page.locator("#wi-upload-error")
        err.wait_for(timeout=30_000)
        assert re.search(r"horizon\.bogus \(line \d+\): unknown field", err.inner_text()), err.inner_text()
        page.set_input_files("#wi-upload input[type=file]", str(good))
        page.wait_for_selector("#wi-upload-msg:has-text('stored my_line v1')", timeout=30_000)
        page.wait_for_selector("input[id*='stations.pnp.machines']", timeout=30_000)  # picked and editable
