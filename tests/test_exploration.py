"""lgutils.exploration against closed forms, brute force and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from lgutils.core import lqr
from lgutils.core.rl import Transitions, max_q, quadratic_features, quadratic_to_theta
from lgutils.exploration import dual, evaluation, learning, speed_limit, strategies

PROB = speed_limit.speed_limit_problem()


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ------------------------------------------------------------------------------ the problem
def test_model_is_the_exact_discretisation_of_a_double_integrator() -> None:
    dt = PROB.dt
    M = np.zeros((3, 3))
    M[0, 1] = M[1, 2] = 1.0  # d/dt (p, v, u) = (v, u, 0): zero-order hold on u
    Phi = scipy.linalg.expm(M * dt)
    np.testing.assert_allclose(PROB.A, Phi[:2, :2], atol=1e-12)
    np.testing.assert_allclose(PROB.B, Phi[:2, 2:], atol=1e-12)


def test_plant_noise_is_bounded_and_has_the_stated_moments() -> None:
    rng = np.random.default_rng(0)
    x = np.tile([0.3, -0.2], (40000, 1))
    u = np.full((40000, 1), 0.5)
    xn = speed_limit.plant_step(PROB, x, u, rng)
    mean = PROB.A @ x[0] + PROB.B @ u[0]
    np.testing.assert_allclose(xn[:, 0], mean[0], atol=1e-15)  # position is not disturbed
    w = xn[:, 1] - mean[1]
    assert np.all(np.abs(w) <= PROB.w_max)
    assert abs(w.mean()) < 4 * PROB.w_max / np.sqrt(3 * 40000)
    assert np.var(w) == pytest.approx(PROB.noise_cov[1, 1], rel=0.03)


def test_optimal_q_satisfies_the_bellman_equation_exactly() -> None:
    H, c = speed_limit.optimal_q(PROB)
    x, u = evaluation.held_out_pairs(PROB, 500, 3)
    assert np.max(np.abs(evaluation.bellman_residuals(PROB, H, c, x, u))) < 1e-10
    P, _ = lqr.dare(PROB.A, PROB.B, PROB.Q, PROB.R, PROB.gamma)
    assert c == pytest.approx(PROB.gamma / (1 - PROB.gamma) * np.trace(P @ PROB.noise_cov))


def test_expected_bellman_residual_matches_monte_carlo() -> None:
    """The exact expectation over w against an average of sampled targets."""
    rng = np.random.default_rng(1)
    G = rng.standard_normal((3, 3))
    H, c = G @ G.T + np.eye(3), 0.7
    x, u = np.array([[0.4, -0.3], [-1.0, 0.2]]), np.array([[0.5], [-0.2]])
    exact = evaluation.bellman_residuals(PROB, H, c, x, u)
    n = 200000
    for i in range(2):
        xn = speed_limit.plant_step(PROB, np.tile(x[i], (n, 1)), np.tile(u[i], (n, 1)), rng)
        q = -(quadratic_features(x[i : i + 1], u[i : i + 1]) @ quadratic_to_theta(H, c))[0]
        r = speed_limit.stage_reward(PROB, x[i : i + 1], u[i : i + 1])[0]
        samples = q - (r + PROB.gamma * max_q(H, c, xn, 2))
        assert exact[i] == pytest.approx(samples.mean(), abs=4 * samples.std() / np.sqrt(n))


def test_value_weight_of_q_star_is_the_riccati_solution() -> None:
    H, _ = speed_limit.optimal_q(PROB)
    P, _ = lqr.dare(PROB.A, PROB.B, PROB.Q, PROB.R, PROB.gamma)
    np.testing.assert_allclose(learning.value_weight(H, 2), P, rtol=1e-10)


def test_value_weight_projects_an_indefinite_schur_complement() -> None:
    H = np.array([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0], [0.0, 0.0, 1.0]])  # S = diag(1, -2)
    np.testing.assert_allclose(learning.value_weight(H, 2), np.diag([1.0, 0.0]), atol=1e-14)


# ------------------------------------------------------------------------------ fitted Q
def _uniform_data(problem: speed_limit.SpeedLimitProblem, n: int, seed: int) -> Transitions:
    rng = np.random.default_rng(seed)
    x = rng.uniform(problem.region_low, problem.region_high, size=(n, 2))
    u = rng.uniform(-1, 1, size=(n, 1))
    return Transitions(
        x, u, speed_limit.stage_reward(problem, x, u), speed_limit.plant_step(problem, x, u, rng)
    )


def test_fitted_q_recovers_q_star_from_noise_free_data() -> None:
    problem = speed_limit.speed_limit_problem(w_max=0.0)
    H_star, c_star = speed_limit.optimal_q(problem)
    H, c = learning.fitted_q(_uniform_data(problem, 200, 0), problem.gamma, 600, ridge=0.0)
    assert _relative(H, H_star) < 1e-8
    assert abs(c - c_star) < 1e-8


def test_fitted_q_is_consistent_with_noise() -> None:
    H_star, c_star = speed_limit.optimal_q(PROB)
    H, c = learning.fitted_q(_uniform_data(PROB, 20000, 1), PROB.gamma, 300)
    assert _relative(H, H_star) < 0.01
    # c* = gamma tr(P W) / (1 - gamma) = 0.003 is the least determined weight (noise enters it / (1 - gamma))
    assert c == pytest.approx(c_star, abs=0.03)


def test_integer_weights_equal_repeated_samples() -> None:
    data = _uniform_data(PROB, 60, 2)
    w = np.random.default_rng(3).integers(0, 3, size=60)
    rep = Transitions(*(np.repeat(z, w, axis=0) for z in data))
    H_w, c_w = learning.fitted_q(data, PROB.gamma, 50, weights=w.astype(float), ridge=0.0)
    # the feature scaling differs (it is computed on the rows given), the solution does not
    H_r, c_r = learning.fitted_q(rep, PROB.gamma, 50, ridge=0.0)
    np.testing.assert_allclose(H_w, H_r, rtol=1e-8, atol=1e-10)
    assert c_w == pytest.approx(c_r, rel=1e-8, abs=1e-10)


def test_a_strong_prior_dominates_the_fit() -> None:
    H0 = speed_limit.stage_quadratic(PROB)
    H, c = learning.fitted_q(
        _uniform_data(PROB, 30, 4), PROB.gamma, 20, prior=(H0, 0.0), prior_weight=1e12
    )
    np.testing.assert_allclose(H, H0, atol=1e-6)
    assert abs(c) < 1e-6


# ------------------------------------------------------------------------------ the MPC
def test_mpc_with_the_riccati_terminal_weight_is_the_lqr_policy() -> None:
    P, K = lqr.dare(PROB.A, PROB.B, PROB.Q, PROB.R, PROB.gamma)
    mpc = strategies.exploration_mpc(PROB, horizon=3)
    x = np.array([-0.2, 0.05])  # small: neither the speed limit nor the input bound is active
    u = mpc.policy(x, {"P": P, "qx": np.zeros(2), "qu": np.zeros(1)}).action
    np.testing.assert_allclose(u, -K @ x, atol=1e-6)


def test_linear_cost_term_shifts_the_action_as_the_closed_form_says() -> None:
    P = np.array([[2.0, 0.5], [0.5, 1.0]])
    qu, x = np.array([0.07]), np.array([-0.3, 0.1])
    g, A, B, R = PROB.gamma, PROB.A, PROB.B, PROB.R
    expected = -np.linalg.solve(R + g * B.T @ P @ B, g * B.T @ P @ A @ x + qu / 2)
    mpc = strategies.exploration_mpc(PROB, horizon=1)
    u = mpc.policy(x, {"P": P, "qx": np.array([0.3, -0.2]), "qu": qu}).action
    np.testing.assert_allclose(u, expected, atol=1e-7)  # qx only shifts the cost of x_0 = s


def test_mpc_keeps_the_predicted_speed_below_the_tightened_limit() -> None:
    mpc = strategies.exploration_mpc(PROB, horizon=4)
    res = mpc.policy(np.array([-2.0, 0.5]), {"P": PROB.Q, "qx": np.zeros(2), "qu": np.zeros(1)})
    assert np.max(res.x_pred[1:, 1]) <= PROB.v_max - PROB.w_max + 1e-6
    assert np.max(res.slack, initial=0.0) < 1e-6


def test_ensemble_bonus_is_the_members_standard_deviation() -> None:
    rng = np.random.default_rng(5)
    Ps = [G @ G.T for G in rng.standard_normal((4, 2, 2))]
    E = np.array([[P[0, 0], P[0, 1], P[1, 1]] for P in Ps])
    X = rng.standard_normal((7, 2))
    direct = np.std([[x @ P @ x for P in Ps] for x in X], axis=1, ddof=1)
    np.testing.assert_allclose(learning.ensemble_disagreement(E, X), direct, rtol=1e-12)
    # with H = 1, u only moves x_1: the MPC's terminal cost is x'Px - beta * std at x_1
    mpc = strategies.exploration_mpc(PROB, horizon=1, n_members=4)
    beta, x, a = 0.3, np.array([0.4, -0.1]), np.array([0.2])
    phi = {"P": PROB.Q, "qx": np.zeros(2), "qu": np.zeros(1), "E": E, "beta": beta}
    x1 = PROB.A @ x + PROB.B @ a
    cost = x @ PROB.Q @ x + a @ PROB.R @ a
    cost += PROB.gamma * (
        x1 @ PROB.Q @ x1
        - beta * np.sqrt(learning.ensemble_disagreement(E, x1[None])[0] ** 2 + 1e-8)
    )
    # IPOPT leaves the (inactive) slacks at ~1e-8, which the 1e3 slack penalty turns into ~1e-5
    assert mpc.q_value(x, a, phi).value == pytest.approx(cost, abs=1e-4)


def test_ensemble_priors_have_the_stage_cost_as_mean() -> None:
    priors = learning.ensemble_prior(PROB, 4000, np.random.default_rng(6))
    mean = np.mean(priors, axis=0)
    np.testing.assert_allclose(mean, speed_limit.stage_quadratic(PROB), atol=0.05)
    assert all(np.linalg.eigvalsh(H).min() >= -1e-12 for H in priors[:50])


def test_ensemble_rows_and_a_refit_dominated_by_the_priors() -> None:
    Ps = [np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([[1.0, -0.2], [-0.2, 3.0]])]
    np.testing.assert_array_equal(learning.ensemble_rows(Ps), [[2.0, 0.5, 1.0], [1.0, -0.2, 3.0]])
    priors = learning.ensemble_prior(PROB, 3, np.random.default_rng(9))
    members = learning.fit_ensemble(
        _uniform_data(PROB, 40, 10), priors, PROB.gamma, 5, 1e12, np.random.default_rng(11)
    )
    for P, H0 in zip(members, priors, strict=True):
        np.testing.assert_allclose(P, learning.value_weight(H0, 2), atol=1e-6)


def test_concatenate_keeps_the_order_of_the_samples() -> None:
    a, b = _uniform_data(PROB, 3, 12), _uniform_data(PROB, 2, 13)
    both = learning.concatenate(a, b)
    np.testing.assert_array_equal(both.x, np.vstack([a.x, b.x]))
    np.testing.assert_array_equal(both.r, np.r_[a.r, b.r])


# ------------------------------------------------------------------------------ one step each
def test_cost_perturbation_moves_the_stage_cost_minimum_to_a_random_target() -> None:
    q = strategies.cost_perturbation(PROB, 0.7, np.random.default_rng(14))
    draws = 0.7 * np.random.default_rng(14).standard_normal(3)  # dx (2 numbers), then du
    # x^T Q x + qx^T x is smallest where its gradient 2 Q x + qx vanishes: at x = dx
    np.testing.assert_allclose(np.linalg.solve(2 * PROB.Q, -q["qx"]), draws[:2], rtol=1e-12)
    np.testing.assert_allclose(np.linalg.solve(2 * PROB.R, -q["qu"]), draws[2:], rtol=1e-12)


def test_steps_without_exploration_are_the_greedy_action() -> None:
    mpc = strategies.exploration_mpc(PROB, horizon=3)
    phi = strategies.greedy_parameters(PROB.Q)
    x, rng = np.array([-1.2, 0.4]), np.random.default_rng(15)
    greedy = strategies.greedy_action(mpc, phi, x)
    ensemble_mpc = strategies.exploration_mpc(PROB, horizon=3, n_members=2)
    members = [np.eye(2), np.diag([3.0, 0.5])]
    for step in (
        lambda: strategies.gaussian_action(mpc, phi, x, 0.0, PROB.u_max, rng),
        lambda: strategies.epsilon_greedy_action(mpc, phi, x, 0.0, PROB.u_max, rng),
        lambda: strategies.perturbed_action(mpc, phi, x, PROB, 0.0, rng),
        lambda: strategies.ensemble_action(ensemble_mpc, phi, x, members, 0.0),
    ):
        mpc.reset_warm_start()
        np.testing.assert_allclose(step(), greedy, atol=1e-7)
    u = strategies.epsilon_greedy_action(mpc, phi, x, 1.0, PROB.u_max, rng)
    assert abs(u[0] - greedy[0]) > 1e-3 and abs(u[0]) <= PROB.u_max  # epsilon = 1: random


# ------------------------------------------------------------------------------ exploring
@pytest.fixture(scope="module")
def short_runs() -> dict[str, strategies.ExplorationRun]:
    kwargs = dict(n_episodes=2, episode_length=12, horizon=3, seed=11, fqi_iterations=30)
    scales = {"greedy": 0.0, "gaussian": 0.6, "perturbed": 1.0, "ensemble": 2.0}
    return {s: strategies.explore(PROB, s, scale, **kwargs) for s, scale in scales.items()}


def test_runs_are_consistent_transitions(short_runs) -> None:
    for run in short_runs.values():
        np.testing.assert_array_equal(run.data.x_next[:11], run.data.x[1:12])
        np.testing.assert_allclose(
            run.data.r, speed_limit.stage_reward(PROB, run.data.x, run.data.u)
        )
        assert np.all(np.abs(run.actions) <= PROB.u_max)


def test_strategies_share_initial_states_and_disturbances(short_runs) -> None:
    x0s = np.array([r.states[:, 0] for r in short_runs.values()])
    assert np.all(x0s == x0s[0])
    # the disturbance is x' - (A x + B u), identical across strategies
    w = [r.data.x_next - r.data.x @ PROB.A.T - r.data.u @ PROB.B.T for r in short_runs.values()]
    for wi in w[1:]:
        np.testing.assert_allclose(wi, w[0], atol=1e-12)


def test_zero_scale_is_the_greedy_agent(short_runs) -> None:
    kwargs = dict(n_episodes=2, episode_length=12, horizon=3, seed=11, fqi_iterations=30)
    for strategy in ("gaussian", "epsilon", "perturbed"):
        run = strategies.explore(PROB, strategy, 0.0, **kwargs)
        np.testing.assert_allclose(run.states, short_runs["greedy"].states, atol=1e-9)


def test_explorers_inside_the_mpc_never_break_the_speed_limit(short_runs) -> None:
    """The robust tightening: v_1 <= v_max - w_max in prediction, |w| <= w_max in reality."""
    for strategy in ("greedy", "perturbed", "ensemble"):
        assert evaluation.violations(short_runs[strategy].states, PROB.v_max)[0] == 0
    assert evaluation.violations(short_runs["gaussian"].states, PROB.v_max)[0] > 0


def test_explore_is_reproducible(short_runs) -> None:
    again = strategies.explore(PROB, "ensemble", 2.0, 2, 12, 3, 11, fqi_iterations=30)
    np.testing.assert_array_equal(again.states, short_runs["ensemble"].states)
    assert again.disagreement[0] > 0


def test_explore_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="strategy"):
        strategies.explore(PROB, "boltzmann", 0.1, 1, 1, 1, 0)
    with pytest.raises(ValueError, match="scale"):
        strategies.explore(PROB, "epsilon", 1.5, 1, 1, 1, 0)
    with pytest.raises(ValueError, match="n_members"):
        strategies.explore(PROB, "ensemble", 1.0, 1, 1, 1, 0, n_members=1)


# ------------------------------------------------------------------------------ measurements
def test_coverage_counts_cells() -> None:
    low, high, bins = np.array([0.0, 0.0]), np.array([4.0, 2.0]), (4, 2)  # unit cells
    centres = np.array([[0.5, 0.5], [0.6, 0.4], [3.5, 1.5], [2.5, 0.5]])
    assert evaluation.coverage(centres, low, high, bins) == pytest.approx(3 / 8)
    assert evaluation.coverage(
        np.array([[4.0, 2.0], [9.0, 1.0]]), low, high, bins
    ) == pytest.approx(1 / 8)
    grid = np.stack(np.meshgrid(np.arange(4) + 0.5, np.arange(2) + 0.5), -1).reshape(-1, 2)
    assert evaluation.coverage(grid, low, high, bins) == 1.0
    with pytest.raises(ValueError, match="bins"):
        evaluation.coverage(grid, low, high, (4, 0))


def test_violations() -> None:
    states = np.array([[[0.0, 0.4], [0.0, 0.55]], [[1.0, 0.7], [0.0, 0.5]]])
    count, worst = evaluation.violations(states, 0.5)
    assert count == 2 and worst == pytest.approx(0.2)
    assert evaluation.violations(states[:, :1] * 0, 0.5) == (0, 0.0)


def test_evaluate_weight_matches_the_lqr_return_when_nothing_is_active() -> None:
    problem = speed_limit.speed_limit_problem(w_max=0.0)
    P, K = lqr.dare(problem.A, problem.B, problem.Q, problem.R, problem.gamma)
    x0s = np.array([[-0.3, 0.0], [0.2, -0.1]])
    ev = evaluation.evaluate_weight(problem, P, 1, x0s, 15, 0)
    expected = [
        lqr.policy_return(
            problem.A, problem.B, problem.Q, problem.R, K, x0, None, None, problem.gamma, 15
        )
        for x0 in x0s
    ]
    np.testing.assert_allclose(ev.returns, expected, rtol=1e-6)
    assert ev.n_violations == 0


# ------------------------------------------------------------------------------ dual control
def test_posterior_update_is_the_batch_conjugate_posterior() -> None:
    rng = np.random.default_rng(7)
    m0, s0, sw, b = 0.3, 1.2, 0.1, -0.8
    u = rng.standard_normal(6)
    y = b * u + sw * rng.standard_normal(6)
    mean, var = np.array([m0]), np.array([s0**2])
    for ui, yi in zip(u, y, strict=True):
        mean, var = dual.posterior_update(mean, var, [ui], [yi], sw)
    precision = 1 / s0**2 + np.sum(u**2) / sw**2
    assert var[0] == pytest.approx(1 / precision)
    assert mean[0] == pytest.approx((m0 / s0**2 + np.sum(u * y) / sw**2) / precision)


def test_dual_action_without_bonus_is_the_cautious_action() -> None:
    x, mean, var = (
        np.array([1.0, -2.0, 0.5]),
        np.array([0.3, 0.0, -1.0]),
        np.array([1.0, 0.5, 0.01]),
    )
    u = dual.dual_action(x, mean, var, 0.1, 0.1, 1.0, 0.0)
    np.testing.assert_allclose(u, np.clip(-mean * x / (mean**2 + var + 0.1), -1, 1), atol=1e-10)


@pytest.mark.parametrize("eta", [0.05, 0.3, 2.0])
def test_dual_action_is_the_global_minimiser(eta: float) -> None:
    rng = np.random.default_rng(8)
    n = 50
    x, mean = rng.normal(0, 1, n), rng.normal(0, 0.5, n)
    var = rng.uniform(0.001, 1.5, n)
    u = dual.dual_action(x, mean, var, 0.1, 0.1, 1.5, eta)
    grid = np.tile(np.linspace(-1.5, 1.5, 30001), (n, 1))
    J_grid = dual.dual_objective(grid, x, mean, var, 0.1, 0.1, eta).min(axis=1)
    J = dual.dual_objective(u, x, mean, var, 0.1, 0.1, eta)
    assert np.all(J <= J_grid + 1e-9)
    assert np.all(np.abs(u) <= 1.5)


def test_oracle_closed_loop_is_geometric_without_noise() -> None:
    b, lam = np.array([0.5, -2.0]), 0.1
    run = dual.dual_control("oracle", b, 1.0, 5, 0.0, 1.0, 1e-12, lam, 100.0)
    ratio = lam / (b**2 + lam)
    np.testing.assert_allclose(run.states[:, -1], ratio**5, rtol=1e-9, atol=1e-10)


def test_certainty_equivalence_with_a_zero_estimate_never_learns() -> None:
    """The turn-off effect: b_hat = 0 gives u = 0, which teaches nothing about b."""
    run = dual.dual_control(
        "certainty_equivalence", np.array([1.0, -1.0]), 1.0, 8, 0.0, 1.0, 0.1, 0.1, 1.0
    )
    assert np.all(run.actions == 0.0)
    np.testing.assert_allclose(run.std, 1.0)
    probing = dual.dual_control(
        "dual", np.array([1.0, -1.0]), 1.0, 8, 0.0, 1.0, 0.1, 0.1, 1.0, probing_weight=0.3
    )
    assert probing.std[:, -1].max() < 0.2 and probing.costs.max() < run.costs.min()


def test_agent_actions_are_the_one_step_minimisers() -> None:
    x, mean, var, b = np.array([1.0, -0.5]), np.array([0.3, -1.0]), np.array([1.0, 0.2]), 2.0
    lam, u_max = 0.1, 10.0
    expected = {
        "oracle": -b * x / (b**2 + lam),
        "certainty_equivalence": -mean * x / (mean**2 + lam),
        "cautious": -mean * x / (mean**2 + var + lam),
    }
    for agent, u in expected.items():
        got = dual.agent_action(agent, x, mean, var, np.full(2, b), 0.1, lam, u_max, 0.0)
        np.testing.assert_allclose(got, u, rtol=1e-12)
    with pytest.raises(ValueError, match="agent"):
        dual.agent_action("bayes", x, mean, var, np.full(2, b), 0.1, lam, u_max, 0.0)


def test_dual_control_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="agent"):
        dual.dual_control("bayes", [1.0], 1.0, 2, 0.0, 1.0, 0.1, 0.1, 1.0)
    with pytest.raises(ValueError, match="prior_std"):
        dual.dual_control("dual", [1.0], 1.0, 2, 0.0, 0.0, 0.1, 0.1, 1.0)
