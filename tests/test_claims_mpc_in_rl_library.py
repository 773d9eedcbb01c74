"""Claims of chapters/09_mpc_in_rl_library (MPC agents in an RL library) at full fidelity.

Skipped until `make book` has written _build/metrics/09_mpc_in_rl_library.json.
"""

from __future__ import annotations

import numpy as np
import pytest
from _case_b import expected_return, optimal_gain, true_model_mpc_gain
from conftest import book_metrics
from scipy import stats

pytestmark = pytest.mark.claims


@pytest.fixture(scope="module")
def m() -> dict:
    """The chapter's metrics (keys ``sb3mpc.*``)."""
    out = book_metrics("09_mpc_in_rl_library")
    assert out["sb3mpc.n_seeds"] >= 20 and out["sb3mpc.n_rollouts"] >= 40, (
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


def _paired(ppo: np.ndarray, reinforce: np.ndarray, seed: int = 1) -> tuple[float, float, float]:
    """Median paired difference, its 95 % bootstrap interval and the Wilcoxon p, recomputed
    here from the per-run returns (another resampling seed than the chapter's)."""
    d = np.asarray(ppo) - np.asarray(reinforce)
    idx = np.random.default_rng(seed).integers(0, d.size, (20_000, d.size))
    low, high = np.quantile(np.median(d[idx], axis=1), [0.025, 0.975])
    return float(low), float(high), float(stats.wilcoxon(ppo, reinforce).pvalue)


def test_ppo_and_reinforce_are_not_separated_per_episode(m: dict) -> None:
    """Paired over the runs, PPO vs REINFORCE at equal episodes and at REINFORCE's full budget:
    both bootstrap intervals of the median difference contain 0 and lie within +-0.05."""
    ppo = np.asarray(m["sb3mpc.ppo_final_returns"])
    assert ppo.size == m["sb3mpc.n_seeds"]
    for key, rf in (
        ("equal_episodes", m["sb3mpc.reinforce_returns_equal_episodes"]),
        ("final", m["sb3mpc.reinforce_final_returns"]),
    ):
        recorded = m[f"sb3mpc.ppo_vs_reinforce_{key}"]
        assert recorded["median_difference"] == pytest.approx(np.median(ppo - np.asarray(rf)))
        low, high, p = _paired(ppo, rf)
        for lo, hi in ((low, high), (recorded["ci_low"], recorded["ci_high"])):
            assert -0.05 < lo < 0 < hi < 0.05
        assert p > 0.05 and recorded["p_value"] == pytest.approx(p)
    reinforce = m["sb3mpc.reinforce_median_return_equal_episodes"]
    assert reinforce == pytest.approx(np.median(m["sb3mpc.reinforce_returns_equal_episodes"]))
    # and the learned MPC beats the MPC that uses the true model, as in chapter 08
    assert m["sb3mpc.ppo_final_median_return"] > expected_return(true_model_mpc_gain())


def test_the_state_matrix_drifts_away_under_ppo_too(m: dict) -> None:
    start, end = m["sb3mpc.ppo_mismatch_A_median"]
    assert end > 1.1 * start


def test_ipopt_and_closed_form_give_the_same_ppo_update(m: dict) -> None:
    # tighter than the notebook's 1e-6 relative to the step
    assert m["sb3mpc.ipopt_vs_closed_form_phi_gap"] < 1e-8


def test_evaluate_policy_agrees_with_the_exact_returns(m: dict) -> None:
    assert m["sb3mpc.evaluate_policy_z_max"] < 4.0


# ------------------------------------------------------------------------------ the QP route
def test_qp_route_is_the_closed_form(m: dict) -> None:
    """The general path's QP route computes the closed form's actions, values, derivatives and
    PPO update (unconstrained), and chapter 08's active-set derivative (input-bounded)."""
    assert m["sb3mpc.qp_vs_closed_form_solve_gap"] < 1e-8
    assert m["sb3mpc.qp_vs_closed_form_phi_gap"] < 1e-8
    assert m["sb3mpc.bounded_qp_vs_active_set_gap"] < 1e-8


def test_qp_route_costs_a_fraction_of_ipopt_per_step(m: dict) -> None:
    """Per environment step of PPO, measured in the same run: the QP route below a fifth of
    IPOPT, and the bounded runs' average too (relative comparisons, no wall-clock threshold)."""
    ipopt = m["sb3mpc.ipopt_ppo_ms_per_step"]
    assert m["sb3mpc.qp_ppo_ms_per_step"] < 0.2 * ipopt
    assert m["sb3mpc.bounded_ppo_ms_per_step"] < 0.2 * ipopt
    projected = m["sb3mpc.qp_projected_wall_time_s"] / m["sb3mpc.ipopt_projected_wall_time_s"]
    assert projected == pytest.approx(m["sb3mpc.qp_ppo_ms_per_step"] / ipopt)


def test_bounded_ppo_learns_in_full_runs(m: dict) -> None:
    """PPO through the QP route on the input-bounded MPC: every run trained, the median return
    improves by more than 0.5 and ends between the true-model bounded MPC and the clipped LQR."""
    initial = np.asarray(m["sb3mpc.bounded_ppo_initial_returns"])
    final = np.asarray(m["sb3mpc.bounded_ppo_final_returns"])
    assert initial.size == final.size == m["sb3mpc.n_seeds"]
    assert np.all(final >= initial) and np.sum(final > initial) >= final.size - 1
    assert np.median(final) - np.median(initial) > 0.5
    assert (
        m["sb3mpc.bounded_J_true_model_mpc"] < np.median(final) < m["sb3mpc.bounded_J_clipped_lqr"]
    )
    curve = np.asarray(m["sb3mpc.bounded_ppo_median_curve"])
    assert curve[-1] == pytest.approx(np.median(final)) and curve.size == m["sb3mpc.n_rollouts"] + 1


def test_bounded_true_model_score_agrees_with_chapter_08(m: dict) -> None:
    """The true-model bounded MPC on the chapter's common random numbers against the 4096-episode
    Monte Carlo estimate (chapter 08's reference, computed on other episodes)."""
    n = m["sb3mpc.bounded_n_eval_episodes"]
    ref = m["sb3mpc.bounded_J_true_model_mpc_4096"]
    se = 0.0079 / np.sqrt(n)  # the episode returns' spread is about 0.008 (chapter 08: stderr)
    assert abs(m["sb3mpc.bounded_J_true_model_mpc"] - ref) < 5 * se


def test_bounded_ppo_is_ahead_of_reinforce_at_equal_episodes(m: dict) -> None:
    """Paired over the runs: at equal episodes the interval of the median difference excludes 0
    (p < 0.05); against REINFORCE's full budget it does not."""
    ppo = np.asarray(m["sb3mpc.bounded_ppo_final_returns"])
    rf_eq = np.asarray(m["sb3mpc.bounded_reinforce_returns_equal_episodes"])
    rf_final = np.asarray(m["sb3mpc.bounded_reinforce_final_returns"])
    low, high, p = _paired(ppo, rf_eq)
    rec = m["sb3mpc.bounded_ppo_vs_reinforce_equal_episodes"]
    assert 0 < low < high and p < 0.05 and rec["ci_low"] > 0 and rec["p_value"] < 0.05
    assert rec["median_difference"] == pytest.approx(np.median(ppo - rf_eq))
    low, high, _ = _paired(ppo, rf_final)
    rec = m["sb3mpc.bounded_ppo_vs_reinforce_final"]
    assert low < 0 < high and rec["ci_low"] < 0 < rec["ci_high"]
    assert m["sb3mpc.bounded_ppo_stalled_runs"] < m["sb3mpc.bounded_reinforce_stalled_runs"]
