"""Claims of chapters/09_mpc_in_rl_library (MPC agents in an RL library) at full fidelity.

Skipped until `make book` has written _build/metrics/09_mpc_in_rl_library.json.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims


@pytest.fixture(scope="module")
def sb3mpc() -> dict:
    m = book_metrics("09_mpc_in_rl_library")
    assert m["sb3mpc.n_seeds"] >= 5 and m["sb3mpc.n_rollouts"] >= 40, "claims need full fidelity"
    assert m["sb3mpc.episodes_per_rollout"] == 64  # one REINFORCE batch per PPO update
    return m


def test_gradcheck_passed_on_both_problems(sb3mpc: dict) -> None:
    assert sb3mpc["sb3mpc.gradcheck_passed"] is True
    assert sb3mpc["sb3mpc.gradcheck_unconstrained"] and sb3mpc["sb3mpc.gradcheck_input_constrained"]
    # the constrained check covered bounds active at u_0, active later only, and inactive
    assert len(sb3mpc["sb3mpc.gradcheck_constrained_categories"]) == 4


def test_ppo_improves_on_every_initial_model(sb3mpc: dict) -> None:
    initial = np.asarray(sb3mpc["sb3mpc.ppo_initial_returns"])
    final = np.asarray(sb3mpc["sb3mpc.ppo_final_returns"])
    assert np.all(final > initial)
    J_star = sb3mpc["sb3mpc.J_star"]
    median = sb3mpc["sb3mpc.ppo_final_median_return"]
    assert median == pytest.approx(np.median(final))
    # the median regret falls by more than a factor of 10 and ends within 0.02 of J*
    assert J_star - median < 0.1 * (J_star - sb3mpc["sb3mpc.ppo_initial_median_return"])
    assert J_star - median < 0.02


def test_ppo_matches_reinforce_per_episode(sb3mpc: dict) -> None:
    """At the same number of episodes PPO's median return is within 0.02 of REINFORCE's."""
    ppo = sb3mpc["sb3mpc.ppo_final_median_return"]
    reinforce = sb3mpc["sb3mpc.reinforce_median_return_equal_episodes"]
    assert abs(ppo - reinforce) < 0.02
    # and the learned MPC beats the MPC that uses the true model, as in chapter 08
    assert ppo > sb3mpc["sb3mpc.J_true_model_mpc"]


def test_the_state_matrix_drifts_away_under_ppo_too(sb3mpc: dict) -> None:
    start, end = sb3mpc["sb3mpc.ppo_mismatch_A_median"]
    assert end > 1.1 * start


def test_ipopt_and_closed_form_give_the_same_ppo_update(sb3mpc: dict) -> None:
    assert sb3mpc["sb3mpc.ipopt_vs_closed_form_phi_gap"] < 1e-8


def test_evaluate_policy_agrees_with_the_exact_returns(sb3mpc: dict) -> None:
    assert sb3mpc["sb3mpc.evaluate_policy_z_max"] < 4.0
