"""Claims of the Markov-decision-process chapter (paper Sec. II.A) on its full-fidelity metrics.

Skipped until `make book` has written _build/metrics/01_mdp.json.
"""

from __future__ import annotations

import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims


def test_monte_carlo_return_agrees_with_the_exact_value() -> None:
    m = book_metrics("01_mdp")
    assert m["mdp.n_episodes"] >= 4000  # full fidelity
    # within the 99.9 % interval, and the interval is tight (< 5 % of |J|)
    assert abs(m["mdp.z_score"]) < 3.3
    assert abs(m["mdp.J_mc"] - m["mdp.J_exact"]) <= m["mdp.J_mc_halfwidth95"] * 3.3 / 1.96
    assert m["mdp.J_mc_halfwidth95"] < 0.05 * abs(m["mdp.J_exact"])
    # stochastic policies too (each 95 % interval may miss with probability 1/20)
    assert m["mdp.stochastic_max_abs_z"] < 3.3
    assert m["mdp.stochastic_inside_95"] >= m["mdp.stochastic_cases"] - 1
    # the best gain of the sweep is the Riccati gain (grid spacing 0.005)
    assert m["mdp.argmax_gain_error"] <= 0.005
    # discounting below 1/a^2 hides the instability of K = 0: finite value below, infinite above
    assert m["mdp.gamma_limit_uncontrolled"] == pytest.approx(1 / 1.2**2)
    assert m["mdp.uncontrolled_finite_below_limit"] is True
    assert m["mdp.uncontrolled_finite_above_limit"] is False
