"""Tests of lgutils.practical_optimisation: the test problems against scipy's ODE solver, closed
forms and finite differences, the helpers against the same loops written by hand."""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from lgutils.core.nn import mlp_function, mlp_numpy
from lgutils.mpc import MPC, Cost, Model, MPCSolveError, SolverOptions
from lgutils.practical_optimisation import (
    INPUT_WEIGHT,
    WARM_STARTS,
    closed_loop_cost,
    displaced_chain,
    fit_value_network,
    linear_mpc_gain,
    mass_chain,
    mass_chain_mpc,
    random_mlp,
    time_batch,
    time_closed_loop,
    time_sensitivity,
)


def test_mass_chain_matches_the_ode():
    n, dt, u = 3, 0.5, 0.3
    A, B = mass_chain(n, dt)
    L = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)

    def ode(t, z):
        f = np.zeros(n)
        f[0] = u
        return np.concatenate([z[n:], -L @ z[:n] + f])

    z0 = np.array([1.0, -0.5, 0.2, 0.0, 0.3, -0.1])
    ref = solve_ivp(ode, (0, dt), z0, rtol=1e-12, atol=1e-12).y[:, -1]
    np.testing.assert_allclose(A @ z0 + B[:, 0] * u, ref, atol=1e-9)


def test_random_mlp_is_a_tanh_network():
    f = random_mlp(3, 5, depth=2, seed=1)
    x = np.array([0.3, -1.0, 2.0])
    y = float(f(x))
    assert np.isfinite(y)
    assert float(f(x)) == y and float(random_mlp(3, 5, depth=2, seed=2)(x)) != y
    # bounded hidden activations: |y| <= sum |W_out| + |b_out| (checked loosely via many inputs)
    ys = [float(f(v)) for v in np.random.default_rng(0).normal(size=(20, 3)) * 100]
    assert np.ptp(ys) < 10


def test_timing_helpers_return_consistent_numbers():
    mpc, A, B = mass_chain_mpc(2, 5, warm_start="primal-dual warm")
    out = time_closed_loop(mpc, lambda x, u: A @ x + B @ u, [1.0, -0.5, 0.0, 0.0], 4)
    assert out["times"].shape == (3,) and out["median_time"] > 0 and out["median_iterations"] >= 1
    b = time_batch(mpc, np.random.default_rng(0).uniform(-1, 1, (4, 4)), repeats=1)
    assert b["loop"] > 0 and b["map"] > 0 and b["max_action_gap"] < 1e-5
    assert set(WARM_STARTS) == {"cold", "primal warm", "primal-dual warm"}
    nn_mpc, _, _ = mass_chain_mpc(1, 3, nn_hidden=4)
    assert nn_mpc.policy([0.5, 0.0]).success


def test_displaced_chain_spreads_the_masses_at_rest():
    np.testing.assert_array_equal(displaced_chain(1), [1.5, 0.0])
    np.testing.assert_allclose(displaced_chain(3), [1.5, 0.25, -1.0, 0.0, 0.0, 0.0])


def test_mass_chain_mpc_passes_ipopt_options_to_every_solve():
    mpc, _, _ = mass_chain_mpc(1, 3, ipopt={"max_iter": 1})
    assert mpc.solver_options.ipopt == {"max_iter": 1}
    # one IPOPT iteration cannot solve the bounded problem from a displaced state
    with pytest.raises(MPCSolveError, match="Maximum_Iterations_Exceeded' after 1 iterations"):
        mpc.policy(displaced_chain(1))
    default, _, _ = mass_chain_mpc(1, 3)
    assert default.policy(displaced_chain(1)).success


# ---------------------------------------------------------------------------------------------
# the three later sections: sensitivities, a fitted terminal value, the gain of a linear MPC
# ---------------------------------------------------------------------------------------------
def test_learnable_model_gives_the_same_policy_and_finite_difference_sensitivities():
    fixed, A, B = mass_chain_mpc(1, 4)
    learn, _, _ = mass_chain_mpc(1, 4, learnable_model=True)
    s = np.array([0.3, -0.2])  # inside the bounds' inactive region: a smooth point
    assert learn.policy(s).action == pytest.approx(fixed.policy(s).action, abs=1e-7)
    sens = learn.policy_sensitivity(s)
    assert learn.n_phi == 4 + 2
    phi0, h = learn.flatten_phi({"A": A, "B": B}), 1e-6
    for k in range(learn.n_phi):
        e = np.zeros(learn.n_phi)
        e[k] = h
        fd = (learn.policy(s, phi0 + e).action - learn.policy(s, phi0 - e).action) / (2 * h)
        assert sens.d_action_d_phi[:, k] == pytest.approx(fd, abs=1e-5)


def test_terminal_cost_replaces_the_default_one():
    default, _, _ = mass_chain_mpc(1, 3)
    same, _, _ = mass_chain_mpc(1, 3, terminal_cost=lambda x: 10 * ca.sumsqr(x))
    none, _, _ = mass_chain_mpc(1, 3, terminal_cost=lambda x: 0)
    s = displaced_chain(1)
    assert same.policy(s).value == pytest.approx(default.policy(s).value, rel=1e-8)
    assert none.policy(s).value < default.policy(s).value
    with pytest.raises(ValueError, match="terminal_cost or nn_hidden"):
        mass_chain_mpc(1, 3, nn_hidden=4, terminal_cost=lambda x: 0)


def test_time_sensitivity_times_both_calls():
    mpc, _, _ = mass_chain_mpc(1, 3, learnable_model=True, method="qp")
    out = time_sensitivity(mpc, [[0.5, 0.0], [-0.2, 0.1]], repeats=2)
    assert out["solve_times"].shape == out["sensitivity_times"].shape == (2,)
    assert out["solve"] > 0 and out["sensitivity"] > 0
    assert out["ratio"] == pytest.approx(out["sensitivity"] / out["solve"])


def test_fit_value_network_fits_a_quadratic_and_is_reproducible():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(300, 2))
    y = 3.0 * X[:, 0] ** 2 + X[:, 0] * X[:, 1] + 0.5 * X[:, 1] ** 2 + 1.0
    layers = fit_value_network(X, y, 16, iterations=200)
    pred = mlp_numpy(layers, "tanh", X)[:, 0]
    assert np.linalg.norm(pred - y) / np.linalg.norm(y) < 0.02
    again = fit_value_network(X, y, 16, iterations=200)
    for (W, b), (W2, b2) in zip(layers, again, strict=True):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    # the CasADi function of the same layers gives the same numbers
    assert float(mlp_function(layers, "tanh")(X[0])) == pytest.approx(pred[0], rel=1e-12)


def test_closed_loop_cost_sums_the_stage_costs_and_the_tail():
    mpc, A, B = mass_chain_mpc(1, 3)
    x0, tail = displaced_chain(1), 2.0 * np.eye(2)
    out = closed_loop_cost(mpc, A, B, [x0, -x0], 4, tail)
    costs = []
    for start in (x0, -x0):  # the same loop, by hand
        x, total = start.copy(), 0.0
        mpc.reset_warm_start()
        for _ in range(4):
            u = mpc.policy(x).action
            total += x @ x + INPUT_WEIGHT * u @ u
            x = A @ x + B @ u
        costs.append(total + x @ tail @ x)
    np.testing.assert_allclose(out["costs"], costs, rtol=1e-6)
    assert out["cost"] == pytest.approx(sum(costs), rel=1e-6) and out["failures"] == 0


def test_linear_mpc_gain_is_the_one_step_closed_form_and_its_derivative():
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(3, 1))
    R, gamma = np.eye(1), 0.9
    mpc = MPC(
        Model(3, 1, dynamics=lambda x, u, p: ca.mtimes(ca.DM(A), x) + ca.mtimes(ca.DM(B), u)),
        Cost(
            stage=lambda x, u, p: ca.sumsqr(x) + ca.sumsqr(u),
            terminal=lambda x, p: ca.bilin(p["P"], x, x),
            discount=gamma,
        ),
        1,
        params={"P": (3, 3)},
        solver=SolverOptions(method="qp"),
    )

    def closed_form(P):
        P = 0.5 * (P + P.T)  # the cost x'Px sees the symmetric part
        return gamma * np.linalg.solve(R + gamma * B.T @ P @ B, B.T @ P @ A)

    M = rng.normal(size=(3, 3))
    P = M @ M.T + np.eye(3)
    K, dK = linear_mpc_gain(mpc, {"P": P})
    np.testing.assert_allclose(K, closed_form(P), rtol=1e-9)
    assert dK.shape == (1, 3, 9)
    h = 1e-6
    for k in range(9):
        E = np.zeros(9)
        E[k] = h
        fd = (closed_form(P + E.reshape(3, 3)) - closed_form(P - E.reshape(3, 3))) / (2 * h)
        np.testing.assert_allclose(dK[:, :, k], fd, atol=1e-7)


def test_linear_mpc_gain_refuses_an_mpc_with_active_bounds():
    mpc, _, _ = mass_chain_mpc(1, 3, learnable_model=True, method="qp")
    # a model that grows 1.5-fold per step: |u| <= 0.5 binds at a unit state
    with pytest.raises(ValueError, match="linear policy"):
        linear_mpc_gain(mpc, {"A": 1.5 * np.eye(2), "B": [[1.0], [0.0]]})
