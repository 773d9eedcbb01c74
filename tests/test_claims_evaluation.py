"""Claims of the evaluation chapter (paper Sec. V.C): what each strategy pays, on its numbers.

Asserted on the full-fidelity metrics of `make book`; skipped until the build wrote
_build/metrics/11_evaluation.json (and the metrics of the chapters it reads).
"""

from __future__ import annotations

import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims


def test_the_evaluation_shows_each_strategys_price() -> None:
    """Sec. V.C on the numbers chapter 11 puts side by side: the modular strategy keeps the
    constraints that RL alone breaks, at the price of an optimisation per step; the all-in-one
    strategy gives no guarantee on its intermediate policies and a model that drifts away."""
    m = book_metrics("11_evaluation")
    assert m["evaluation.A_fig3_violation_rl"] > 0 == m["evaluation.A_fig3_violation_rlmpc"]
    assert m["evaluation.A_outside_rlmpc"] < m["evaluation.A_outside_rl"]
    assert m["evaluation.A_step_rlmpc_ms"] > 10 * m["evaluation.A_step_rl_ms"]
    assert m["evaluation.B_diverged"] > 0  # some intermediate policies blew up
    assert m["evaluation.B_mismatch_A_last"] > m["evaluation.B_mismatch_A_first"]
