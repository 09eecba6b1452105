"""The studio's overhead, measured in one process on this machine.

1. First load: from ``page.goto`` to the signed-in page (``#who-name``) in Debian's Chromium.
2. Run → KPI table: the SMT line, 10 replications, baseline only (one run job), from the click on
   *Run what-if* to the KPI table on the page; against the CLI doing the same work on the same
   machine: ``twinopt run smt_line --replications 10`` with ``--workers 1`` (what a job worker
   does: one process per job) and with its default (one process per core). The ratio is the
   studio's overhead (API, queue, polling, rendering). Each round uses a new seed, so no result
   comes from the API's cache.

    python benchmarks/bench_studio.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import browser, sign_in, studio  # noqa: E402


def cli_seconds(seed: int, workers: int | None) -> float:
    args = [sys.executable, "-m", "studio.cli", "run", "smt_line", "--replications", "10", "--seed", str(seed), "-q"]
    if workers is not None:
        args += ["--workers", str(workers)]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    loads, studio_s, cli1, clin = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp, studio("--data", tmp, "--workers", "2") as s, browser() as b:
        key = (Path(tmp) / "studio.key").read_text().strip()
        for r in range(opts.rounds):
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            sign_in(page, s.url, key)
            loads.append(time.perf_counter() - t0)
            page.click("#wi-scenario")
            page.get_by_text("smt_line (shipped)", exact=True).click()
            page.wait_for_selector("input[id*='stations.pnp.machines']", timeout=60_000)
            page.fill("#wi-reps", "10")
            page.fill("#wi-seed", str(100 + r))
            t0 = time.perf_counter()
            page.click("#wi-run")
            page.wait_for_selector("#kpi-table", timeout=600_000)
            studio_s.append(time.perf_counter() - t0)
            page.close()
            cli1.append(cli_seconds(100 + r, 1))
            clin.append(cli_seconds(100 + r, None))
    med = statistics.median
    print(f"first load (goto → signed in), median of {opts.rounds}: {med(loads):.2f} s "
          f"(each: {', '.join(f'{x:.2f}' for x in loads)})")
    print(f"SMT line, 10 replications, Run → KPI table in the studio: median {med(studio_s):.2f} s "
          f"(each: {', '.join(f'{x:.2f}' for x in studio_s)})")
    print(f"  twinopt run --workers 1 (as a job worker):            median {med(cli1):.2f} s → studio/CLI "
          f"{med(studio_s) / med(cli1):.2f}×")
    print(f"  twinopt run (one process per core):                   median {med(clin):.2f} s → studio/CLI "
          f"{med(studio_s) / med(clin):.2f}×")


if __name__ == "__main__":
    main()
