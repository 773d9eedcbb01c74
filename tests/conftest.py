"""Shared test setup: headless matplotlib, smoke metrics folder, per-notebook timing table."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MPLBACKEND", "Agg")
# Smoke runs write their metrics apart from the book's full-fidelity metrics.
os.environ.setdefault("LGUTILS_METRICS_DIR", str(ROOT / "_build" / "metrics-smoke"))

#: notebook path -> execution time in seconds, filled by tests/test_notebooks.py
NOTEBOOK_TIMES: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if not NOTEBOOK_TIMES:
        return
    tr = terminalreporter
    tr.section("notebook execution times (smoke parameters)")
    width = max(len(k) for k in NOTEBOOK_TIMES)
    for name, seconds in NOTEBOOK_TIMES.items():
        tr.write_line(f"{name:<{width}}  {seconds:7.1f} s")
    tr.write_line(f"{'total':<{width}}  {sum(NOTEBOOK_TIMES.values()):7.1f} s")


BOOK_METRICS = ROOT / "_build" / "metrics"


def book_metrics(notebook: str) -> dict:
    """The full-fidelity metrics that `make book` wrote for ``notebook``; skip the test if absent.

    Claims of the paper hold at full fidelity only, so they are asserted on these files (by
    tests/test_claims_*.py, which `make book` runs after the build), never on smoke runs.
    """
    import pytest

    from lgutils import metrics

    try:
        return metrics.load(notebook, directory=BOOK_METRICS)
    except metrics.MissingMetricsError:
        pytest.skip(f"no full-fidelity metrics for {notebook}: run `make book` first")
