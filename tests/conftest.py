"""Shared test setup: headless matplotlib, smoke metrics folder, timing tables, shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Headless figures in this process only: an MPLBACKEND=Agg in the environment would reach the
# kernels that papermill starts, and a kernel on Agg shows no figure in the notebook (or the book).
matplotlib.use("Agg")
# Smoke runs write their metrics apart from the book's full-fidelity metrics.
os.environ.setdefault("LGUTILS_METRICS_DIR", str(ROOT / "_build" / "metrics-smoke"))

#: notebook path -> execution time in seconds, filled by tests/test_notebooks.py
NOTEBOOK_TIMES: dict[str, float] = {}
#: stems of the notebooks whose smoke run failed in this session (the book is then not built)
NOTEBOOK_FAILED: set[str] = set()
#: chapter -> seconds of nbgrader's autograde (tests/test_notebooks_assignments.py)
ASSIGNMENT_TIMES: dict[str, float] = {}
#: step of tests/test_zz_book.py -> seconds (the smoke book's build, the browser's visit)
BOOK_TIMES: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if report.failed and "notebook" in report.keywords and report.nodeid.endswith("]"):
        NOTEBOOK_FAILED.add(report.nodeid.rsplit("[", 1)[1][:-1])


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    tr = terminalreporter
    if BOOK_TIMES:
        tr.section("the smoke book: build and browser checks")
        for step, seconds in BOOK_TIMES.items():
            tr.write_line(f"{step:<44}  {seconds:7.1f} s")
    if ASSIGNMENT_TIMES:
        tr.section("autograding of the assignments (smoke parameters, two submissions each)")
        for name, seconds in ASSIGNMENT_TIMES.items():
            tr.write_line(f"{name:<30}  {seconds:7.1f} s")
        tr.write_line(f"{'total':<30}  {sum(ASSIGNMENT_TIMES.values()):7.1f} s")
    if not NOTEBOOK_TIMES:
        return
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

    from lgutils.core import metrics

    try:
        return metrics.load(notebook, directory=BOOK_METRICS)
    except metrics.MissingMetricsError:
        pytest.skip(f"no full-fidelity metrics for {notebook}: run `make book` first")


@pytest.fixture(scope="module")
def casadi_mpc():
    """Case study B's MPC (4 states, 1 input, horizon 5, parameters A and B) built directly
    from :class:`lgutils.mpc.MPC`, independently of the closed forms it is checked against."""
    from lgutils.mpc import MPC, Cost, Model, SolverOptions
    from lgutils.mpc_reinforce import model

    env = model.case_b()
    Q, R = env.Q, env.R
    return MPC(
        Model(4, 1, dynamics=lambda x, u, p: p["A"] @ x + p["B"] @ u),
        Cost(lambda x, u, p: x.T @ Q @ x + u.T @ R @ u),
        5,
        params={"A": (4, 4), "B": (4, 1)},
        solver=SolverOptions(ipopt={"tol": 1e-12}),
    )
