"""Tests of lgutils.mpc against independent computations: scipy's Riccati solver, central finite
differences, scipy's ODE solver and optimiser, and closed-form least squares."""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest
import scipy.linalg as sla
from scipy.integrate import solve_ivp
from scipy.optimize import minimize

from lgutils.mpc import (
    MPC,
    Bounds,
    Constraints,
    Cost,
    Model,
    MPCSolveError,
    Params,
    SolverOptions,
    collocation_coefficients,
    discretize,
    sensitivity,
)

TIGHT = {"tol": 1e-12}


def random_stabilisable(
    rng: np.random.Generator, nx: int, nu: int
) -> tuple[np.ndarray, np.ndarray]:
    """A random (A, B) that is stabilisable (checked with the PBH test on unstable modes)."""
    while True:
        A = rng.normal(size=(nx, nx)) / np.sqrt(nx) * 1.2
        B = rng.normal(size=(nx, nu))
        ok = True
        for lam in np.linalg.eigvals(A):
            if abs(lam) >= 1 - 1e-9:
                M = np.hstack([A - lam * np.eye(nx), B])
                ok &= np.linalg.matrix_rank(M, tol=1e-8) == nx
        if ok and np.max(np.abs(np.linalg.eigvals(A))) > 1.0:  # keep some unstable ones
            return A, B


def lq_mpc(
    nx: int, nu: int, H: int, discount: float = 1.0, bounds: Bounds | None = None, **nlpsol
) -> MPC:
    return MPC(
        Model(nx, nu, dynamics=lambda x, u, p: p["A"] @ x + p["B"] @ u),
        Cost(
            stage=lambda x, u, p: ca.bilin(p["Q"], x, x) + ca.bilin(p["R"], u, u),
            terminal=lambda x, p: ca.bilin(p["P"], x, x),
            discount=discount,
        ),
        H,
        params={"A": (nx, nx), "B": (nx, nu), "Q": (nx, nx), "R": (nu, nu), "P": (nx, nx)},
        bounds=bounds,
        solver=SolverOptions(ipopt=TIGHT, nlpsol=nlpsol),
    )


def rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(x) - ref)) / max(np.max(np.abs(ref)), 1e-12))


# ------------------------------------------------------------------------------------------------
# Q^MPC with the LQR terminal cost is Q* (paper Sec. III.A)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,nx,nu,gamma", [(0, 2, 1, 1.0), (1, 3, 2, 1.0), (2, 4, 1, 0.9)])
def test_q_mpc_with_lqr_terminal_cost_equals_q_star(seed, nx, nu, gamma):
    rng = np.random.default_rng(seed)
    A, B = random_stabilisable(rng, nx, nu)
    Q = np.diag(rng.uniform(0.5, 2.0, nx))
    R = np.diag(rng.uniform(0.1, 1.0, nu))
    # discounted DARE: P = Q + g A'PA - g^2 A'PB (R + g B'PB)^-1 B'PA
    P = sla.solve_discrete_are(np.sqrt(gamma) * A, np.sqrt(gamma) * B, Q, R)
    K = np.linalg.solve(R + gamma * B.T @ P @ B, gamma * B.T @ P @ A)
    phi = {"A": A, "B": B, "Q": Q, "R": R, "P": P}
    for H in (1, 3, 8):
        mpc = lq_mpc(nx, nu, H, discount=gamma)
        for _ in range(3):
            s, a = rng.normal(size=nx), rng.normal(size=nu)
            xn = A @ s + B @ a
            q_star = s @ Q @ s + a @ R @ a + gamma * xn @ P @ xn
            assert mpc.q_value(s, a, phi=phi).value == pytest.approx(q_star, rel=1e-6)
            res = mpc.policy(s, phi=phi)
            assert res.value == pytest.approx(s @ P @ s, rel=1e-6)
            np.testing.assert_allclose(
                res.action, -K @ s, rtol=1e-6, atol=1e-8 * np.abs(K @ s).max()
            )
            assert res.success and res.iterations >= 0 and res.solve_time > 0
            assert res.x_pred.shape == (H + 1, nx) and res.u_pred.shape == (H, nu)


def test_zero_terminal_cost_differs_from_q_star_and_matches_riccati_recursion():
    rng = np.random.default_rng(3)
    A, B = random_stabilisable(rng, 3, 1)
    Q, R = np.eye(3), np.eye(1)
    s, a = rng.normal(size=3), rng.normal(size=1)
    for H in (1, 4):
        mpc = lq_mpc(3, 1, H)
        P = np.zeros((3, 3))  # finite-horizon cost-to-go by backward Riccati recursion
        for _ in range(H - 1):
            P = Q + A.T @ P @ A - A.T @ P @ B @ np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        xn = A @ s + B @ a
        q_ref = s @ Q @ s + a @ R @ a + xn @ P @ xn
        q = mpc.q_value(s, a, phi={"A": A, "B": B, "Q": Q, "R": R, "P": np.zeros((3, 3))}).value
        assert q == pytest.approx(q_ref, rel=1e-6)


# ------------------------------------------------------------------------------------------------
# sensitivities against central finite differences
# ------------------------------------------------------------------------------------------------
def fd_jacobian(fun, x0: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    cols = []
    for e in np.eye(x0.size):
        cols.append(
            (np.atleast_1d(fun(x0 + eps * e)) - np.atleast_1d(fun(x0 - eps * e))) / (2 * eps)
        )
    return np.array(cols).T


def check_all_sensitivities(mpc: MPC, s: np.ndarray, a: np.ndarray, phi: dict) -> None:
    f0 = mpc.flatten_phi(phi)
    sens = mpc.policy_sensitivity(s, phi=phi)
    fd = fd_jacobian(lambda f: mpc.policy(s, phi=f).action, f0)
    assert rel_err(sens.d_action_d_phi, fd) < 1e-5
    fd = fd_jacobian(lambda x: mpc.policy(x, phi=f0).action, s)
    assert rel_err(sens.d_action_d_state, fd) < 1e-5
    fd = fd_jacobian(lambda f: mpc.value(s, phi=f).value, f0)
    assert rel_err(sens.d_value_d_phi, fd.ravel()) < 1e-5
    qs = mpc.q_sensitivity(s, a, phi=phi)
    fd = fd_jacobian(lambda f: mpc.q_value(s, a, phi=f).value, f0)
    assert rel_err(qs.d_q_d_phi, fd.ravel()) < 1e-5
    fd = fd_jacobian(lambda x: mpc.q_value(x, a, phi=f0).value, s)
    assert rel_err(qs.d_q_d_state, fd.ravel()) < 1e-5
    fd = fd_jacobian(lambda u: mpc.q_value(s, u, phi=f0).value, a)
    assert rel_err(qs.d_q_d_action, fd.ravel()) < 1e-5
    by_name = sens.by_name()
    for name, (sl, shape) in mpc.phi_slices.items():
        assert by_name[name].shape == (mpc.nu, *shape)
        np.testing.assert_array_equal(by_name[name].reshape(mpc.nu, -1), sens.d_action_d_phi[:, sl])


def test_sensitivities_unconstrained_match_finite_differences():
    rng = np.random.default_rng(4)
    A, B = random_stabilisable(rng, 3, 2)
    phi = {"A": A, "B": B, "Q": np.eye(3), "R": 0.5 * np.eye(2), "P": 2 * np.eye(3)}
    check_all_sensitivities(lq_mpc(3, 2, 4), rng.normal(size=3), rng.normal(size=2), phi)


def test_policy_sensitivity_of_lq_mpc_at_origin_is_the_feedback_gain():
    rng = np.random.default_rng(5)
    A, B = random_stabilisable(rng, 3, 1)
    Q, R = np.eye(3), np.eye(1)
    P = sla.solve_discrete_are(A, B, Q, R)
    K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    sens = lq_mpc(3, 1, 3).policy_sensitivity(
        np.zeros(3), phi={"A": A, "B": B, "Q": Q, "R": R, "P": P}
    )
    np.testing.assert_allclose(sens.d_action_d_state, -K, rtol=1e-6)


def test_sensitivities_with_active_state_constraint_match_finite_differences():
    A = np.array([[1.0, 0.1], [0.0, 1.0]])
    B = np.array([[0.005], [0.1]])
    mpc = MPC(
        Model(2, 1, dynamics=lambda x, u, p: p["A"] @ x + p["B"] @ u),
        Cost(
            lambda x, u, p: ca.sumsqr(x) + p["r"] * ca.sumsqr(u),
            terminal=lambda x, p: 10 * ca.sumsqr(x),
        ),
        10,
        params={"A": (2, 2), "B": (2, 1), "r": (), "vmax": ()},
        constraints=Constraints(ineq=lambda x, u, p, k: -x[1] - p["vmax"] if k > 0 else []),
        bounds=Bounds(u_lb=-5.0, u_ub=5.0),
        solver=SolverOptions(ipopt=TIGHT),
    )
    phi = {"A": A, "B": B, "r": 0.1, "vmax": 0.3}
    s = np.array([1.0, 0.0])
    res = mpc.policy(s, phi=phi)
    assert np.min(res.x_pred[1:, 1]) == pytest.approx(-0.3, abs=1e-6)  # the constraint is active
    assert -5 < res.action[0] < 5  # the input is not at its bound
    sens = mpc.policy_sensitivity(s, phi=phi)
    assert abs(sens.by_name()["vmax"][0]) > 1e-3  # the active constraint moves the action
    check_all_sensitivities(mpc, s, np.array([-1.5]), phi)


# ------------------------------------------------------------------------------------------------
# failures are explicit
# ------------------------------------------------------------------------------------------------
def scalar_mpc(model: dict | None = None, **kw) -> MPC:
    return MPC(
        Model(1, 1, dynamics=lambda x, u, p: x + u, **(model or {})),
        Cost(stage=lambda x, u, p: x**2 + u**2),
        3,
        **kw,
    )


def test_infeasible_problem_raises_with_status_state_and_phi():
    mpc = MPC(
        Model(1, 1, dynamics=lambda x, u, p: p["a"] * x + u),
        Cost(lambda x, u, p: x**2 + u**2),
        3,
        params={"a": ()},
        bounds=Bounds(u_lb=-0.1, u_ub=0.1, x_lb=-1.0, x_ub=1.0),
    )
    with pytest.raises(MPCSolveError) as info:
        mpc.policy([5.0], phi={"a": 1.0})
    err = info.value
    assert isinstance(err, RuntimeError)
    assert err.status == "Infeasible_Problem_Detected"
    np.testing.assert_array_equal(err.state, [5.0])
    assert err.phi["a"] == 1.0
    with pytest.raises(MPCSolveError):
        mpc.q_value([5.0], [0.0], phi={"a": 1.0})


def test_action_outside_bounds_and_iteration_limit_raise():
    mpc = scalar_mpc(bounds=Bounds(u_lb=-1.0, u_ub=1.0))
    with pytest.raises(MPCSolveError) as info:
        mpc.q_value([0.0], [2.0])
    assert info.value.status == "infeasible_fixed_data"
    np.testing.assert_array_equal(info.value.action, [2.0])
    nonlinear = MPC(
        Model(1, 1, dynamics=lambda x, u, p: ca.sin(x) + u**3),
        Cost(lambda x, u, p: (x - 1) ** 4 + u**2),
        5,
        solver=SolverOptions(ipopt={"max_iter": 1}, warm_start=False),
    )
    with pytest.raises(MPCSolveError) as info:
        nonlinear.policy([3.0])
    assert info.value.status == "Maximum_Iterations_Exceeded"


def test_hard_constraint_on_fixed_data_raises_before_solving():
    mpc = scalar_mpc(
        constraints=Constraints(ineq=lambda x, u, p: x - 1.0)
    )  # at k = 0 this involves only s
    assert mpc.policy([0.5]).success
    with pytest.raises(MPCSolveError) as info:
        mpc.policy([2.0])
    assert info.value.status == "infeasible_fixed_data" and info.value.iterations == 0


# ------------------------------------------------------------------------------------------------
# batches
# ------------------------------------------------------------------------------------------------
def test_batched_and_one_at_a_time_agree():
    rng = np.random.default_rng(6)
    A = np.array([[1.0, 0.1], [0.0, 1.0]])
    B = np.array([[0.005], [0.1]])
    phi = {"A": A, "B": B, "r": 0.1, "vmax": 0.3}
    mpc = MPC(
        Model(2, 1, dynamics=lambda x, u, p: p["A"] @ x + p["B"] @ u),
        Cost(lambda x, u, p: ca.sumsqr(x) + p["r"] * ca.sumsqr(u)),
        8,
        params={"A": (2, 2), "B": (2, 1), "r": (), "vmax": ()},
        constraints=Constraints(ineq=lambda x, u, p, k: -x[1] - p["vmax"] if k > 0 else []),
        bounds=Bounds(u_lb=-2.0, u_ub=2.0),
        solver=SolverOptions(ipopt={"tol": 1e-10}),
    )
    S = np.column_stack([rng.uniform(-1, 1, 12), rng.uniform(-0.1, 1, 12)])
    Acts = rng.uniform(-1, 1, size=(12, 1))
    single = np.array([mpc.policy(s, phi=phi, warm_start=False).action for s in S])
    single_q = np.array(
        [mpc.q_value(s, a, phi=phi, warm_start=False).value for s, a in zip(S, Acts, strict=True)]
    )
    for method in ("loop", "map"):
        batch = mpc.policy_batch(S, phi=phi, method=method)
        np.testing.assert_allclose(batch.actions, single, atol=1e-7)
        assert batch.success.all() and batch.x_pred.shape == (12, 9, 2)
        qb = mpc.q_value_batch(S, Acts, phi=phi, method=method)
        np.testing.assert_allclose(qb.values, single_q, rtol=1e-7)
    sens = mpc.policy_sensitivity_batch(S[:3], phi=phi)
    for i in range(3):
        np.testing.assert_allclose(
            sens["d_action_d_phi"][i],
            mpc.policy_sensitivity(S[i], phi=phi).d_action_d_phi,
            atol=1e-7,
        )


def test_batch_failure_is_marked_or_raised():
    mpc = scalar_mpc(bounds=Bounds(u_lb=-0.1, u_ub=0.1, x_lb=-1.0, x_ub=1.0))
    S = np.array([[0.5], [5.0], [-0.2]])
    out = mpc.policy_batch(S, raise_on_failure=False)
    np.testing.assert_array_equal(out.success, [True, False, True])
    assert np.isnan(out.actions[1]).all() and out.statuses[1] == "Infeasible_Problem_Detected"
    with pytest.raises(MPCSolveError) as info:
        mpc.policy_batch(S)
    assert info.value.index == 1


# ------------------------------------------------------------------------------------------------
# arguments
# ------------------------------------------------------------------------------------------------
def test_unknown_missing_or_misshaped_parameters_raise_value_error_naming_them():
    mpc = lq_mpc(2, 1, 2)
    good = {"A": np.eye(2), "B": np.ones((2, 1)), "Q": np.eye(2), "R": np.eye(1), "P": np.eye(2)}
    with pytest.raises(ValueError, match="'Z'"):
        mpc.policy(np.zeros(2), phi={**good, "Z": 1.0})
    with pytest.raises(ValueError, match=r"phi\['B'\] must have shape \(2, 1\)"):
        mpc.policy(np.zeros(2), phi={**good, "B": np.ones(2)})
    with pytest.raises(ValueError, match="'P'"):
        mpc.policy(np.zeros(2), phi={k: v for k, v in good.items() if k != "P"})
    with pytest.raises(ValueError, match="length 15"):
        mpc.policy(np.zeros(2), phi=np.zeros(5))
    with pytest.raises(ValueError, match="phi is required"):
        mpc.policy(np.zeros(2))
    with pytest.raises(ValueError, match=r"s must be a vector of shape \(2,\)"):
        mpc.policy(np.zeros(3), phi=good)
    with pytest.raises(ValueError, match="integrator"):
        scalar_mpc(model={"integrator": "euler", "dt": 0.1})
    with pytest.raises(ValueError, match="stage_cost must return a scalar"):
        MPC(Model(2, 1, dynamics=lambda x, u, p: x), Cost(lambda x, u, p: x), 2)
    # a flat vector in row-major order is the same as the dict
    flat = mpc.flatten_phi(good)
    np.testing.assert_array_equal(mpc.unflatten_phi(flat)["B"], good["B"])
    assert mpc.policy([1.0, -1.0], phi=flat).value == pytest.approx(
        mpc.policy([1.0, -1.0], phi=good).value
    )


def test_changing_phi_does_not_rebuild_the_solver():
    mpc = scalar_mpc(params=Params({"w": ()}, default={"w": 1.0}))
    solver = mpc.problem("policy").solver
    mpc.policy([1.0])
    mpc.policy([1.0], phi={"w": 2.0})
    assert mpc.problem("policy").solver is solver


# ------------------------------------------------------------------------------------------------
# stage index, input moves, soft constraints
# ------------------------------------------------------------------------------------------------
def test_move_penalty_matches_closed_form_least_squares():
    # x+ = x + u, cost sum x_k^2 + u_k^2 + w (u_k - u_{k-1})^2 + x_H^2; unconstrained QP in u
    H, w, s, u_prev = 4, 3.0, 1.5, -0.7
    mpc = MPC(
        Model(1, 1, dynamics=lambda x, u, p: x + u),
        Cost(lambda x, u, p: x**2 + u**2, terminal=lambda x, p: x**2, move_weight=[w]),
        H,
        solver=SolverOptions(ipopt=TIGHT),
    )
    # residual vector r(u) = M u + c, cost = |r|^2
    L = np.tril(np.ones((H, H)))  # x_{k+1} = s + sum_{j<=k} u_j
    D = np.eye(H) - np.eye(H, k=-1)
    M = np.vstack([np.vstack([np.zeros((1, H)), L[:-1]]), np.eye(H), np.sqrt(w) * D, L[-1:]])
    c = np.concatenate(
        [np.full(H, s), np.zeros(H), np.sqrt(w) * np.r_[-u_prev, np.zeros(H - 1)], [s]]
    )
    u_opt = np.linalg.lstsq(M, -c, rcond=None)[0]
    res = mpc.policy([s], u_prev=[u_prev])
    np.testing.assert_allclose(res.u_pred.ravel(), u_opt, rtol=1e-8)
    assert res.value == pytest.approx(np.sum((M @ u_opt + c) ** 2), rel=1e-8)
    sens = mpc.policy_sensitivity([s], u_prev=[u_prev])
    fd = fd_jacobian(lambda up: mpc.policy([s], u_prev=up).action, np.array([u_prev]))
    assert rel_err(sens.d_action_d_u_prev, fd) < 1e-5
    with pytest.raises(ValueError, match="u_prev"):
        mpc.policy([s])


def test_stage_dependent_equality_applies_at_stage_zero_only():
    # two copies of a scalar system (a 2-scenario tree): the inputs must agree at k = 0 only
    mpc = MPC(
        Model(2, 2, dynamics=lambda x, u, p: ca.vertcat(1.0 * x[0] + u[0], 2.0 * x[1] + u[1])),
        Cost(lambda x, u, p: ca.sumsqr(x) + ca.sumsqr(u), terminal=lambda x, p: ca.sumsqr(x)),
        3,
        constraints=Constraints(eq=lambda x, u, p, k: u[0] - u[1] if k == 0 else []),
        solver=SolverOptions(ipopt=TIGHT),
    )
    res = mpc.policy([1.0, 1.0])
    assert res.u_pred[0, 0] == pytest.approx(res.u_pred[0, 1], abs=1e-9)
    assert abs(res.u_pred[1, 0] - res.u_pred[1, 1]) > 1e-3
    # Q with a non-anticipative action works, an anticipative one is infeasible fixed data
    assert mpc.q_value([1.0, 1.0], res.action).value == pytest.approx(res.value, rel=1e-8)
    with pytest.raises(MPCSolveError, match="fixed data"):
        mpc.q_value([1.0, 1.0], [0.0, 1.0])


def test_soft_constraint_matches_scipy_optimiser():
    # x+ = x + u with |u| <= 0.2 cannot keep x <= 0.5 from x0 = 1: the soft constraint gives way
    H, lin, quad = 3, 2.0, 5.0
    mpc = MPC(
        Model(1, 1, dynamics=lambda x, u, p: x + u),
        Cost(lambda x, u, p: 0.1 * u**2, terminal=lambda x, p: x**2),
        H,
        constraints=Constraints(
            soft=lambda x, u, p, k: x - 0.5 if k > 0 else [],
            terminal_soft=lambda x, p: x - 0.5,
            soft_linear=lin,
            soft_quadratic=quad,
        ),
        bounds=Bounds(u_lb=-0.2, u_ub=0.2),
        solver=SolverOptions(ipopt=TIGHT),
    )
    res = mpc.policy([1.0])

    def cost(u):
        x = 1.0 + np.cumsum(u)
        viol = np.maximum(x - 0.5, 0.0)  # stages 1..H-1 and the terminal state H
        return 0.1 * np.sum(u**2) + x[-1] ** 2 + np.sum(lin * viol + quad * viol**2)

    ref = minimize(
        cost,
        np.zeros(H),
        bounds=[(-0.2, 0.2)] * H,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    assert res.value == pytest.approx(ref.fun, rel=1e-6)
    np.testing.assert_allclose(res.u_pred.ravel(), ref.x, atol=1e-5)
    np.testing.assert_allclose(res.slack, np.maximum(res.x_pred[1:, 0] - 0.5, 0.0), atol=1e-6)
    assert res.slack[0] > 0.1  # the constraint does give way


# ------------------------------------------------------------------------------------------------
# continuous time
# ------------------------------------------------------------------------------------------------
def ode(x, u, p):
    """A damped oscillator with a cubic damping term."""
    return ca.vertcat(x[1], -x[0] - 0.5 * x[1] ** 3 + u[0])


@pytest.mark.parametrize(
    "integrator,kw,tol",
    [
        ("rk4", {"substeps": 4}, 1e-6),
        ("collocation", {"degree": 3}, 1e-6),
        ("collocation", {"degree": 2}, 1e-3),
    ],
)
def test_continuous_time_predictions_agree_with_solve_ivp(integrator, kw, tol):
    dt, H = 0.2, 6
    mpc = MPC(
        Model(2, 1, dynamics=ode, dt=dt, integrator=integrator, **kw),
        Cost(stage=lambda x, u, p: ca.sumsqr(x) + ca.sumsqr(u)),
        H,
        bounds=Bounds(u_lb=-1.0, u_ub=1.0),
    )
    res = mpc.policy([1.0, 0.5])
    x = np.array([1.0, 0.5])
    for k in range(H):
        u = res.u_pred[k, 0]
        sol = solve_ivp(
            lambda t, y, u=u: [y[1], -y[0] - 0.5 * y[1] ** 3 + u],
            (0, dt),
            x,
            rtol=1e-12,
            atol=1e-12,
        )
        x = sol.y[:, -1]
        np.testing.assert_allclose(res.x_pred[k + 1], x, atol=tol)
        np.testing.assert_allclose(
            mpc.model_step(res.x_pred[k], res.u_pred[k]), res.x_pred[k + 1], atol=1e-9
        )
    F = discretize(ode, 2, 1, dt, method=integrator, **kw)
    np.testing.assert_allclose(
        np.asarray(F(res.x_pred[0], res.u_pred[0], [])).ravel(), res.x_pred[1], atol=1e-9
    )


def test_collocation_coefficients_integrate_polynomials_exactly():
    # Radau with d points integrates x' = t^(2d-2) exactly over [0, 1]
    for d in (1, 2, 3):
        tau, C, D = collocation_coefficients(d)
        assert tau[-1] == pytest.approx(1.0) and D.sum() == pytest.approx(1.0)
        # the derivative of the interpolant of t^m is exact for m <= d
        for m in range(d + 1):
            np.testing.assert_allclose(
                C.T @ tau**m, m * tau[1:] ** max(m - 1, 0) if m else 0.0, atol=1e-10
            )


def test_closed_loop_of_lq_mpc_follows_the_lqr_closed_loop():
    from lgutils.mpc import closed_loop

    rng = np.random.default_rng(7)
    A, B = random_stabilisable(rng, 3, 1)
    Q, R = np.eye(3), np.eye(1)
    P = sla.solve_discrete_are(A, B, Q, R)
    K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    phi = {"A": A, "B": B, "Q": Q, "R": R, "P": P}
    x0 = rng.normal(size=3)
    run = closed_loop(lq_mpc(3, 1, 2), lambda x, u: A @ x + B @ u, x0, 6, phi)
    x = x0
    for t in range(6):
        np.testing.assert_allclose(run.actions[t], -K @ x, rtol=1e-6, atol=1e-9)
        x = (A - B @ K) @ x
        np.testing.assert_allclose(run.states[t + 1], x, rtol=1e-6, atol=1e-9)
    assert run.plans.shape == (6, 3, 3) and np.all(run.iterations >= 0)


# ------------------------------------------------------------------------------------------------
# formulation and solver options that change the path to the solution, not the solution
# ------------------------------------------------------------------------------------------------
def test_free_terminal_state_equals_bounds_written_as_constraint_rows():
    # terminal_state_bounds=False bounds x_1..x_{H-1} only; the same problem written with
    # explicit inequality rows (no variable bounds) must have the same solution
    model = Model(2, 1, ode, dt=0.3, integrator="collocation", degree=2)

    def cost(x, u, p):
        return ca.sumsqr(x - ca.DM([1.0, 0.0])) + 0.01 * ca.sumsqr(u)

    def term(x, p):  # pulls x_H above the bound
        return 10 * (x[0] - 1.0) ** 2

    bounds = Bounds(u_lb=-2.0, u_ub=2.0, x_ub=[0.5, np.inf], terminal=False)
    a = MPC(model, Cost(cost, term), 5, bounds=bounds)

    def rows(x, u, p, k):
        return ca.MX(0, 1) if k == 0 else x[0] - 0.5

    b = MPC(
        model, Cost(cost, term), 5, constraints=Constraints(ineq=rows), bounds=Bounds(-2.0, 2.0)
    )
    ra, rb = a.policy([0.3, 0.0]), b.policy([0.3, 0.0])
    np.testing.assert_allclose(ra.u_pred, rb.u_pred, atol=1e-6)
    np.testing.assert_allclose(ra.x_pred, rb.x_pred, atol=1e-6)
    assert ra.x_pred[1:-1, 0].max() <= 0.5 + 1e-6
    assert ra.x_pred[-1, 0] > 0.6  # the last state is free


def test_q_problem_is_built_on_first_use_and_agrees_with_the_policy():
    mpc = MPC(
        Model(2, 1, ode, integrator="rk4", dt=0.2),
        Cost(lambda x, u, p: ca.sumsqr(x) + ca.sumsqr(u)),
        4,
        bounds=Bounds(u_lb=-1.0, u_ub=1.0),
        solver=SolverOptions(ipopt=TIGHT),
    )
    assert "policy" in mpc._problems and "q" not in mpc._problems  # built on first use
    res = mpc.policy([1.0, 0.5])
    q = mpc.q_value([1.0, 0.5], res.action)  # Q(s, pi(s)) = V(s)
    assert "q" in mpc._problems
    assert q.value == pytest.approx(res.value, rel=1e-8)


def test_lagrangian_parameter_gradient_equals_casadis_lam_p():
    rng = np.random.default_rng(3)
    A, B = random_stabilisable(rng, 3, 1)
    phi = {"A": A, "B": B, "Q": np.eye(3), "R": np.eye(1), "P": np.eye(3)}
    mpc = lq_mpc(3, 1, 3, bounds=Bounds(u_lb=-0.2, u_ub=0.2), calc_lam_p=True)
    s, a = rng.normal(size=3), np.array([0.1])
    for mode, act in (("policy", None), ("q", a)):
        _, raw = mpc.solve(mode, s, act, None, mpc.flatten_phi(phi), False)
        np.testing.assert_allclose(
            sensitivity.lagrangian_grad_p(mpc, mode, raw),
            -np.asarray(raw.sol["lam_p"]).ravel(),
            atol=1e-9,
        )


def test_shift_moves_each_stage_and_its_multipliers_one_stage_ahead():
    # a discrete-time MPC's rows are the dynamics of stages 0..H-1, nx each, and its variables
    # (u_k, x_{k+1}) per stage; after the shift stage k holds what stage k + 1 held
    nx, nu, H = 2, 1, 4
    mpc = MPC(
        Model(nx, nu, lambda x, u, p: ca.vertcat(x[1], -0.5 * x[0] + u[0])),
        Cost(lambda x, u, p: ca.sumsqr(x) + ca.sumsqr(u)),
        H,
        bounds=Bounds(u_lb=-0.3, u_ub=0.3),
    )
    mpc.policy([1.0, -1.0])
    w, lx, lg = (v.copy() for v in mpc.warm_point("policy"))
    mpc.shift_warm_start()
    w2, lx2, lg2 = mpc.warm_point("policy")
    m = nu + nx
    np.testing.assert_array_equal(w2[: (H - 1) * m], w[m:])
    np.testing.assert_array_equal(w2[(H - 1) * m :], w[(H - 1) * m :])  # last stage repeated
    np.testing.assert_array_equal(lx2[: (H - 1) * m], lx[m:])
    np.testing.assert_array_equal(lg2[: (H - 1) * nx], lg[nx:])
    np.testing.assert_array_equal(lg2[(H - 1) * nx :], lg[(H - 1) * nx :])


def test_warm_ipopt_options_give_the_same_closed_loop_in_fewer_iterations():
    from lgutils.mpc import closed_loop

    def build(warm_ipopt=None):
        return MPC(
            Model(2, 1, ode, dt=0.2, integrator="collocation", degree=2),
            Cost(lambda x, u, p: ca.sumsqr(x) + 0.1 * ca.sumsqr(u)),
            8,
            bounds=Bounds(u_lb=-0.5, u_ub=0.5, x_lb=[-2, -0.5]),
            solver=SolverOptions(warm_ipopt=warm_ipopt),
        )

    def plant(x, u):
        return build().model_step(x, u)

    cold = closed_loop(build(), plant, [1.0, 0.0], 10)
    warm_mpc = build(warm_ipopt={"warm_start_init_point": "yes", "mu_init": 1e-6})
    warm = closed_loop(warm_mpc, plant, [1.0, 0.0], 10)
    assert cold.states[:, 1].min() < -0.5 + 1e-6  # the state bound is active
    assert "warm_solver" in warm_mpc.problem("policy").cache
    np.testing.assert_allclose(warm.actions, cold.actions, atol=1e-6)
    assert warm.iterations[1:].sum() < cold.iterations[1:].sum()
    with pytest.raises(ValueError, match="warm_ipopt must be a dict"):
        build(warm_ipopt=["mu_init"])


def test_the_documented_example_runs():
    import doctest

    from lgutils.mpc import controller

    failures, tried = doctest.testmod(controller, raise_on_error=False, verbose=False)
    assert tried > 0 and failures == 0
