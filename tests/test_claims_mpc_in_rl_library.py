"""Claims of chapters/09_mpc_in_rl_library (MPC agents in an RL library) at full fidelity.

Skipped until `make book` has written _build/metrics/09_mpc_in_rl_library.json.
"""

from __future__ import annotations

import numpy as np
import pytest
from _case_b import expected_return, optimal_gain, true_model_mpc_gain
from conftest import book_metrics

pytestmark = pytest.mark.claims


@pytest.fixture(scope="module")
def m() -> dict:
    """The chapter's metrics (keys ``sb3mpc.*``)."""
    out = book_metrics("09_mpc_in_rl_library")
    assert out["sb3mpc.n_seeds"] >= 5 and out["sb3mpc.n_rollouts"] >= 40, (
        "claims need full fidelity"
    )
    assert out["sb3mpc.episodes_per_rollout"] == 64  # one REINFORCE batch per PPO update
    return out


def test_the_constrained_gradcheck_covered_every_active_set(m: dict) -> None:
    """(The notebook asserts that gradcheck passed.) Its draws met bounds active at u_0 (upper
    and lower), active later only, and inactive."""
    assert len(set(m["sb3mpc.gradcheck_constrained_categories"])) == 4


def test_the_reference_returns_are_case_study_bs(m: dict) -> None:
    assert m["sb3mpc.J_star"] == pytest.approx(expected_return(optimal_gain()), rel=1e-10)
    J_true = expected_return(true_model_mpc_gain())
    assert m["sb3mpc.J_true_model_mpc"] == pytest.approx(J_true, rel=1e-10)


def test_ppo_improves_on_every_initial_model(m: dict) -> None:
    initial = np.asarray(m["sb3mpc.ppo_initial_returns"])
    final = np.asarray(m["sb3mpc.ppo_final_returns"])
    assert np.all(final > initial)
    J_star = expected_return(optimal_gain())
    median = float(np.median(final))
    # the median regret falls by more than a factor of 10 and ends within 0.02 of J*
    assert J_star - median < 0.1 * (J_star - m["sb3mpc.ppo_initial_median_return"])
    assert J_star - median < 0.02


def test_ppo_matches_reinforce_per_episode(m: dict) -> None:
    """At the same number of episodes PPO's median return is within 0.02 of REINFORCE's."""
    ppo = m["sb3mpc.ppo_final_median_return"]
    reinforce = m["sb3mpc.reinforce_median_return_equal_episodes"]
    assert abs(ppo - reinforce) < 0.02
    # and the learned MPC beats the MPC that uses the true model, as in chapter 08
    assert ppo > expected_return(true_model_mpc_gain())


def test_the_state_matrix_drifts_away_under_ppo_too(m: dict) -> None:
    start, end = m["sb3mpc.ppo_mismatch_A_median"]
    assert end > 1.1 * start


def test_ipopt_and_closed_form_give_the_same_ppo_update(m: dict) -> None:
    # tighter than the notebook's 1e-6 relative to the step
    assert m["sb3mpc.ipopt_vs_closed_form_phi_gap"] < 1e-8


def test_evaluate_policy_agrees_with_the_exact_returns(m: dict) -> None:
    assert m["sb3mpc.evaluate_policy_z_max"] < 4.0
