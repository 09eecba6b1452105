"""Optimize and approve in Chromium: an engineer's optimize job becomes a recommendation that a second
key approves and a third pushes (dry run, then for real) to a virtual plant; the plant's setpoints
change and the audit trail shows every step. A viewer sees no button they cannot use, and the API
refuses the call the button would make."""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("dash")
pytest.importorskip("asyncua")
import httpx  # noqa: E402
from apiserver import serve  # noqa: E402
from asyncua import Client as OpcClient  # noqa: E402
from browser import browser, need_chromium, shot, sign_in, studio  # noqa: E402
from test_plant import plant  # noqa: E402

from studio.api import PREFIX  # noqa: E402
from studio.api.client import Client  # noqa: E402
from twins.loader import load_scenario  # noqa: E402

pytestmark = pytest.mark.browser

SPEED = 1200  # the virtual plant's clock; the API's envelope dwells scale with it
WAIT = 60_000  # ms: a page update on a loaded machine
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An API started as `twinopt serve` (pushes over insecure OPC UA to loopback) and the studio on it."""
    need_chromium()
    data = tmp_path_factory.mktemp("approvals")
    with serve(data, "--workers", "2", "--opc-insecure", "--opc-dwell-scale", str(1 / SPEED)) as server, \
            studio("--api", server.url) as s:
        yield server, s


def tab(page, name: str) -> None:
    page.locator(".tab", has_text=name).first.click()


def pick_recommendation(page, rec_id: str, status: str | None = None) -> None:
    tab(page, "Approvals")
    page.click("#ap-rec")
    page.locator(".dash-dropdown-content").get_by_text(rec_id[:8]).first.click()
    page.wait_for_selector(f"#rec-view .status-{status}" if status else "#rec-view", timeout=WAIT)


def test_an_optimized_recommendation_is_approved_by_a_second_key_and_pushed_to_the_plant(stack):
    server, s = stack
    erin = server.key("engineer", "erin")
    carol = server.key("approver", "carol")
    paul = server.key("approver", "paul")
    with plant("glue_dispensing", "--port", "0", "--speed", str(SPEED), "--insecure") as p:
        with browser() as b:  # Playwright's loop runs in this thread until it closes: asyncua after it
            rec_id = optimize_approve_push(b, s.url, p.url, erin, carol, paul)
        # the plant holds the recommended setpoints (within each tag's resolution)
        with Client(server.url, erin) as api:
            doc = api.recommendation(rec_id)
        assert doc["status"] == "verified"
        targets = {f"{st}.{k}": v for st, params in doc["document"]["payload"].items() for k, v in params.items()}
        tags = {t.name: t for t in load_scenario("glue_dispensing").equipment.tags}

        async def live() -> dict[str, float]:
            async with OpcClient(p.url, timeout=5) as c:
                return {name: await c.get_node(tags[name].node_id).read_value() for name in targets}

        now = asyncio.run(asyncio.wait_for(live(), 60))
        for name, target in targets.items():
            assert abs(now[name] - target) <= tags[name].resolution / 2 + 1e-9, (name, now[name], target)


def optimize_approve_push(b, url: str, endpoint: str, erin: str, carol: str, paul: str) -> str:
    """The three people's clicks; the recommendation's id."""
    # the engineer launches the search and reads the recommendation it makes
    page = b.new_page(viewport=VIEWPORT)
    sign_in(page, url, erin)
    tab(page, "Optimize")
    page.click("#op-scenario")
    page.locator(".dash-dropdown-content").get_by_text("glue_dispensing (shipped)", exact=True).click()
    for box, value in (("#op-budget", 40), ("#op-reps", 3), ("#op-topk", 3), ("#op-final", 6), ("#op-seed", 0)):
        page.fill(box, str(value))
    page.click("#op-launch")
    page.wait_for_selector("#rec-view", timeout=400_000)
    rec_id = page.get_attribute("#rec-id", "title")
    assert rec_id
    assert page.locator("#rec-view .status-validated").count() == 1
    assert "offline checks pass" in page.inner_text("#rec-verdict")
    kpis = page.inner_text("#rec-kpis")
    assert "baseline" in kpis and "predicted" in kpis and "±" in kpis
    page.wait_for_function("document.querySelectorAll('.op-figure .main-svg').length >= 2", timeout=WAIT)
    figures = page.inner_text("#op-figures")
    assert "Optimization history" in figures and "Parameter importance" in figures
    assert page.locator("#ap-approve").count() == 0  # an engineer: no approval controls anywhere
    shot(page, "optimize")

    # carol (an approver who did not make it) reads the plant and approves
    page = b.new_page(viewport=VIEWPORT)
    sign_in(page, url, carol)
    pick_recommendation(page, rec_id, "validated")
    page.fill("#ap-endpoint", endpoint)
    page.click("#ap-diff-button")
    page.wait_for_selector("#ap-diff-table", timeout=WAIT)
    assert page.locator("#ap-diff-table tbody tr").count() == 3
    page.fill("#ap-comment", "search within the soft band; signed off")
    page.click("#ap-approve:not([disabled])")
    page.wait_for_selector("#rec-view .status-approved", timeout=WAIT)
    assert "approved by carol" in page.inner_text("#rec-view")
    shot(page, "approve")

    # paul (a second approver: the soft band's sign-off is carol's) dry-runs, then pushes
    page = b.new_page(viewport=VIEWPORT)
    sign_in(page, url, paul)
    pick_recommendation(page, rec_id, "approved")
    page.fill("#ap-endpoint", endpoint)
    assert page.locator("#ap-push[disabled]").count() == 1  # no push before a dry run
    page.click("#ap-dry:not([disabled])")
    page.wait_for_selector("#ap-push-outcome:has-text('Dry run: dry-run')", timeout=120_000)
    page.click("#ap-push:not([disabled])")
    page.wait_for_selector("#ap-push-outcome:has-text('Push: verified')", timeout=180_000)
    page.wait_for_selector("#rec-view .status-verified", timeout=WAIT)
    trail = page.inner_text("#ap-audit-table")
    for step in ("validated -> approved", "approved -> pushed", "pushed -> verified"):
        assert step in trail, trail
    writes = [r for r in page.locator("#ap-audit-table tbody tr").all_inner_texts() if "\twrite\t" in r]
    assert writes and all("paul" in r and "confirmed" in r for r in writes), writes
    assert "intact" in page.inner_text("#ap-chain")
    page.click("#ap-diff-button")  # the plant now holds the targets
    page.wait_for_selector("#ap-diff-table", timeout=WAIT)
    shot(page, "push")

    return rec_id


def test_a_viewer_sees_no_approve_or_push_button_and_the_api_refuses_a_forged_approval(stack):
    server, s = stack
    erin = server.key("engineer", "erin2")
    vera = server.key("viewer", "vera")
    with Client(server.url, erin) as api:  # a schedule recommendation: quick, and it has a Gantt
        job = api.wait(api.submit("schedule", "ft06", {"time_limit": 5, "replications": 2, "seed": 0}).id,
                       timeout=300)
    assert job.status == "succeeded", job.error
    rec_id = job.recommendation_id
    with browser() as b:
        page = b.new_page(viewport=VIEWPORT)
        sign_in(page, s.url, vera)
        assert "(viewer)" in page.inner_text("#who")
        page.wait_for_selector("#wi-run-box:has-text('viewer')", timeout=WAIT)
        assert page.locator("#wi-run").count() == 0
        tab(page, "Optimize")
        page.wait_for_selector("#op-launch-box:has-text('viewer')", timeout=WAIT)
        assert page.locator("#op-launch").count() == 0
        pick_recommendation(page, rec_id)
        page.wait_for_selector("#rec-gantt .main-svg", timeout=WAIT)  # the schedule as a Gantt chart
        page.wait_for_selector("#ap-actions:has-text('viewer')", timeout=WAIT)
        for button in ("#ap-approve", "#ap-reject", "#ap-dry", "#ap-push"):
            assert page.locator(button).count() == 0, button
        assert page.locator("#ap-diff-button").count() == 1  # reading the plant is a viewer's right
        shot(page, "viewer")
    as_vera = {"Authorization": f"Bearer {vera}"}
    forged = httpx.post(f"{server.url}{PREFIX}/recommendations/{rec_id}/approve", json={"comment": "me too"},
                        headers=as_vera, timeout=30)
    assert forged.status_code == 403, forged.text
    forged = httpx.post(f"{server.url}{PREFIX}/recommendations/{rec_id}/push", headers=as_vera, timeout=30,
                        json={"endpoint": "opc.tcp://127.0.0.1:4840/twinopt/", "dry_run": True})
    assert forged.status_code == 403, forged.text
    with Client(server.url, erin) as api:
        assert api.recommendation(rec_id)["approved_by"] is None
