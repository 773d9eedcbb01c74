"""Claims of the exploration chapter (paper Sec. IV.B).

Asserted on the full-fidelity metrics of `make book`; skipped until the build wrote
_build/metrics/10_exploration.json.
"""

from __future__ import annotations

import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims

ACTION_NOISE = ("gaussian", "epsilon")
INSIDE_MPC = ("perturbed", "ensemble")
EXPLORING = ACTION_NOISE + INSIDE_MPC


@pytest.fixture(scope="module")
def m10() -> dict:
    m = book_metrics("10_exploration")
    assert m["exploration.n_repeats"] >= 4, "claims hold for the full-fidelity repetitions"
    return m


def test_action_noise_breaks_the_speed_limit(m10) -> None:
    """(The notebook asserts, run by run, that the greedy agent and the two explorers inside the
    MPC never break it.)"""
    v, worst = m10["exploration.violations"], m10["exploration.max_violation"]
    assert all(v[s] > 0 and worst[s] > 0 for s in ACTION_NOISE)


def test_mpc_internal_exploration_covers_more_than_the_greedy_agent(m10) -> None:
    cov = m10["exploration.coverage"]
    assert all(cov[s] > cov["greedy"] for s in INSIDE_MPC)


def test_exploration_makes_the_fit_better_than_the_greedy_agents(m10) -> None:
    be = m10["exploration.bellman_error"]
    assert all(be[s] < be["greedy"] for s in EXPLORING)


def test_every_fitted_value_controls_nearly_as_well_as_the_exact_one(m10) -> None:
    J_opt, J_prior = m10["exploration.eval_return_optimal"], m10["exploration.eval_return_prior"]
    for s, J in m10["exploration.eval_return"].items():
        assert abs(J - J_opt) < 1e-3 * abs(J_opt), s
    assert J_prior < J_opt - 0.1 * abs(J_opt)  # and learning mattered: the prior is far worse


def test_probing_pays(m10) -> None:
    c = m10["exploration.dual_cost"]
    assert c["oracle"] < c["dual"] < c["cautious"] < c["certainty equivalence"]
    assert m10["exploration.dual_best_probing_weight"] > 0
    assert m10["exploration.dual_gain_vs_ce"] > 0.1
