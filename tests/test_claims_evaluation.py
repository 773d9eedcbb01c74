"""Claims of the evaluation chapter (paper Sec. V.C): its numbers are the case studies' numbers.

Asserted on the full-fidelity metrics of `make book`; skipped until the build wrote
_build/metrics/11_evaluation.json (and the metrics of the chapters it reads).
"""

from __future__ import annotations

import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims


def test_evaluation_numbers_are_the_case_studies_numbers() -> None:
    """Chapter 11 read its numbers from chapters 07, 08 and 10 of the same build."""
    m11 = book_metrics("11_evaluation")
    m07, m08, m10_ = (
        book_metrics(n) for n in ("07_value_function_mpc", "08_mpc_reinforce", "10_exploration")
    )
    assert m11["evaluation.B_gap_last_mean"] == m08["fig4.final_gap_mean"]
    assert m11["evaluation.B_diverged"] == m08["fig4.n_diverged"]
    assert m11["evaluation.A_fig3_violation_rl"] == m07["fig3.rl.max_violation"]
    assert m11["evaluation.A_fig3_violation_rlmpc"] == m07["fig3.rlmpc.max_violation"]
    assert m11["evaluation.X_violations_gaussian"] == m10_["exploration.violations"]["gaussian"]
    assert set(m11["evaluation.sources"]) >= {"07_value_function_mpc", "08_mpc_reinforce"}
