"""Tests of the robust multi-stage MPC against scenario-tree QPs solved independently with numpy."""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest

from lgutils.mpc import (
    Bounds,
    Cost,
    Model,
    Params,
    Scaling,
    ScenarioMPC,
    ScenarioTree,
    SoftBounds,
    SolverOptions,
    scenario_grid,
)

DT = 0.1


def _rk4_linear(theta, dt=DT):
    """Exact RK4 step of dx/dt = theta x + u (scalar, u held): x+ = a x + b u."""
    h = dt * theta
    a = 1 + h + h**2 / 2 + h**3 / 6 + h**4 / 24
    b = dt * (1 + h / 2 + h**2 / 6 + h**3 / 24)
    return a, b


def _tree_qp(x0, thetas, weights, H, r_move=0.0, u_prev=0.0, q=1.0, ref=0.0):
    """Minimise sum_i w_i [sum_{k<H} q (x^i_k - ref)^2 + q (x^i_H - ref)^2 + r du^2] with u^i_0 shared.

    Decision vector: (u_0, u^1_1..u^1_{H-1}, ..., u^S_1..u^S_{H-1}); least squares in numpy.
    """
    S = len(thetas)
    n = 1 + S * (H - 1)
    rows, rhs = [], []
    for i, (th, w) in enumerate(zip(thetas, weights, strict=True)):
        a, b = _rk4_linear(th)

        def col(k, i=i):
            return 0 if k == 0 else 1 + i * (H - 1) + (k - 1)

        # x_k = a^k x0 + sum_j a^(k-1-j) b u_j
        for k in range(H + 1):
            row = np.zeros(n)
            for j in range(k):
                row[col(j)] += a ** (k - 1 - j) * b
            const = a**k * x0 - ref  # stage costs at k < H and the terminal cost at k = H
            rows.append(np.sqrt(w * q) * row)
            rhs.append(-np.sqrt(w * q) * const)
        if r_move > 0:
            for k in range(H):
                row = np.zeros(n)
                row[col(k)] += 1.0
                c = 0.0
                if k == 0:
                    c = -u_prev
                else:
                    row[col(k - 1)] -= 1.0
                rows.append(np.sqrt(w * r_move) * row)
                rhs.append(-np.sqrt(w * r_move) * c)
    sol, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return sol


def _mpc(thetas, H, weights=None, r_move=None, x_scale=None, u_scale=None, soft=None, **bounds):
    return ScenarioMPC(
        Model(1, 1, lambda x, u, th: th[0] * x + u, integrator="rk4", dt=DT),
        Cost(
            lambda x, u, p: (x[0] - p["r"]) ** 2,
            lambda x, p: (x[0] - p["r"]) ** 2,
            move_weight=None if r_move is None else [r_move],
        ),
        H,
        ScenarioTree(np.asarray(thetas, float)[:, None], weights),
        params=Params({"r": ()}, default={"r": 0.0}),
        bounds=Bounds(**bounds),
        soft=soft,
        scaling=Scaling(x_scale, u_scale),
        solver=SolverOptions(ipopt={"tol": 1e-12}),
    )


@pytest.mark.parametrize("weights", [None, [0.5, 0.3, 0.2]])
def test_scenario_tree_matches_the_numpy_qp_and_is_non_anticipative(weights):
    thetas, H = [-1.0, 0.5, 2.0], 4
    w = np.full(3, 1 / 3) if weights is None else np.array(weights)
    mpc = _mpc(thetas, H, weights=weights)
    res = mpc.policy([1.5], {"r": 0.2})
    sol = _tree_qp(1.5, thetas, w, H, ref=0.2)
    np.testing.assert_allclose(res.u_pred[:, 0, 0], sol[0], atol=1e-7)  # shared first input
    for i in range(3):
        np.testing.assert_allclose(
            res.u_pred[i, 1:, 0], sol[1 + i * (H - 1) : 1 + (i + 1) * (H - 1)], atol=1e-6
        )
    # recourse: later inputs differ between the branches
    assert np.ptp(res.u_pred[:, 1, 0]) > 1e-3
    np.testing.assert_allclose(res.action, [sol[0]], atol=1e-7)
    # predictions follow each scenario's own dynamics
    for i, th in enumerate(thetas):
        a, b = _rk4_linear(th)
        x = 1.5
        for k in range(H):
            x = a * x + b * res.u_pred[i, k, 0]
            np.testing.assert_allclose(res.x_pred[i, k + 1, 0], x, atol=1e-8)


def test_move_penalty_and_scaling_leave_the_physical_solution_unchanged():
    thetas, H = [-0.5, 1.0], 3
    sol = _tree_qp(-1.0, thetas, [0.5, 0.5], H, r_move=0.3, u_prev=0.7)
    plain = _mpc(thetas, H, r_move=0.3).policy([-1.0], u_prev=[0.7])
    np.testing.assert_allclose(plain.action, [sol[0]], atol=1e-7)
    # scaled variables: the move weight then acts on u / u_scale, so scale it back
    scaled = _mpc(thetas, H, r_move=0.3 * 4.0, x_scale=[10.0], u_scale=[2.0]).policy(
        [-1.0], u_prev=[0.7]
    )
    np.testing.assert_allclose(scaled.action, plain.action, atol=1e-6)
    np.testing.assert_allclose(scaled.x_pred, plain.x_pred, atol=1e-6)


def test_soft_upper_bound_is_exact_with_a_large_linear_penalty_and_violated_with_a_small_one():
    # unstable system pushed up by the reference 2.0; soft bound x <= 1
    kw = dict(u_lb=[-5.0], u_ub=[5.0])
    hard = _mpc([0.5], 3, soft=SoftBounds([1.0], 1e3, terminal=True), **kw).policy(
        [0.0], {"r": 2.0}
    )
    assert hard.x_pred[0, 1:, 0].max() <= 1.0 + 1e-6
    soft = _mpc([0.5], 3, soft=SoftBounds([1.0], 1e-3, terminal=True), **kw).policy(
        [0.0], {"r": 2.0}
    )
    assert soft.x_pred[0, 1:, 0].max() > 1.5
    assert np.all(soft.slack >= -1e-7)


def test_scenario_grid_and_errors():
    g = scenario_grid([1.0, 1.05, 0.95], [1.0, 1.1, 0.9])
    assert g.shape == (9, 2)
    assert {tuple(r) for r in g} == {(a, b) for a in (1.0, 1.05, 0.95) for b in (1.0, 1.1, 0.9)}
    with pytest.raises(ValueError, match="weights must be non-negative and sum to 1"):
        _mpc([1.0, 2.0], 2, weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="u_prev of shape"):
        _mpc([1.0], 2, r_move=0.1).policy([0.0])
    with pytest.raises(ValueError, match="x_lb must have shape"):
        _mpc([1.0], 2, x_lb=[0.0, 1.0])


def test_terminal_bounds_false_leaves_the_last_state_free_like_do_mpc():
    kw = dict(x_ub=[1.0], u_lb=[-5.0], u_ub=[5.0])
    with_t = _mpc([0.0], 3, **kw).policy([0.0], {"r": 2.0})
    assert with_t.x_pred[0, 1:, 0].max() <= 1.0 + 1e-6
    without = _mpc([0.0], 3, terminal=False, **kw).policy([0.0], {"r": 2.0})
    assert without.x_pred[0, 1:-1, 0].max() <= 1.0 + 1e-6
    assert without.x_pred[0, -1, 0] > 1.1  # x_H runs toward the reference


# ---------------------------------------------------------------------------------------------
# Cost.terminal_derivatives: IPOPT's derivative functions from a closed-form terminal cost
# ---------------------------------------------------------------------------------------------
def _softplus_terminal(x, p):
    """A curved terminal cost: softplus of a weighted sum plus a quadratic, in physical units."""
    z = 3.0 * x[0] - 2.0 * x[1] + p["c"]
    return ca.log(1 + ca.exp(z)) + 0.5 * x[0] ** 2 + x[0] * x[1]


def _softplus_derivatives(x, p):
    """Its gradient and Hessian by hand."""
    a = ca.DM([3.0, -2.0])
    z = 3.0 * x[0] - 2.0 * x[1] + p["c"]
    sig = 1 / (1 + ca.exp(-z))
    quad = ca.DM([[1.0, 1.0], [1.0, 0.0]])
    return sig * a + quad @ x, sig * (1 - sig) * (a @ a.T) + quad


def _oscillator(closed_form: bool) -> ScenarioMPC:
    """A 3-scenario damped oscillator with a nonlinear term, scaled variables, unequal weights."""

    def dynamics(x, u, theta):
        return ca.vertcat(x[1], -theta[0] * x[0] - 0.5 * x[1] + 0.2 * ca.sin(x[0]) + u[0])

    return ScenarioMPC(
        Model(2, 1, dynamics, integrator="collocation", dt=0.2, degree=2),
        Cost(
            lambda x, u, p: ca.sumsqr(x) + 0.1 * ca.sumsqr(u),
            _softplus_terminal,
            terminal_derivatives=_softplus_derivatives if closed_form else None,
        ),
        4,
        ScenarioTree([[0.8], [1.0], [1.3]], weights=[0.2, 0.5, 0.3]),
        params=Params({"c": ()}, default={"c": 0.3}),
        bounds=Bounds([-2.0], [2.0]),
        scaling=Scaling([2.0, 0.5], [3.0]),
        solver=SolverOptions(ipopt={"tol": 1e-12}),
    )


def test_closed_form_terminal_derivatives_give_ipopt_the_automatic_derivatives():
    # IPOPT's gradient, Jacobian and Lagrangian Hessian of the MPC whose terminal cost brings
    # its derivatives equal CasADi's AD of the same NLP (through the scenarios' weights and the
    # variable scaling), and the solution is the one of the MPC without them
    fast, plain = _oscillator(True), _oscillator(False)
    b = fast.mpc.problem("policy")
    w, P, f, g = (b.nlp[k] for k in ("x", "p", "f", "g"))
    lam_f, lam_g = ca.MX.sym("lam_f"), ca.MX.sym("lam_g", g.numel())
    ad = {
        "nlp_grad_f": ca.Function("gf", [w, P], [f, ca.gradient(f, w)]),
        "nlp_jac_g": ca.Function("jg", [w, P], [g, ca.jacobian(g, w)]),
        "nlp_hess_l": ca.Function(
            "hl", [w, P, lam_f, lam_g], [ca.triu(ca.hessian(lam_f * f + ca.dot(lam_g, g), w)[0])]
        ),
    }
    rng = np.random.default_rng(0)
    for _ in range(3):
        wv, pv = rng.normal(size=b.n_w), rng.normal(size=b.n_p)
        args = {"nlp_hess_l": (wv, pv, 0.7, rng.normal(size=g.numel()))}
        for name, ref in ad.items():
            got = b.solver.get_function(name)(*args.get(name, (wv, pv)))
            want = ref(*args.get(name, (wv, pv)))
            got, want = (list(v) if isinstance(v, tuple | list) else [v] for v in (got, want))
            for a, c in zip(got, want, strict=True):
                np.testing.assert_allclose(
                    np.array(ca.densify(a)), np.array(ca.densify(c)), atol=1e-10
                )
    x0 = np.array([0.8, -0.4])
    r_fast, r_plain = fast.policy(x0, {"c": 0.3}), plain.policy(x0, {"c": 0.3})
    np.testing.assert_allclose(r_fast.x_pred, r_plain.x_pred, atol=1e-8)
    np.testing.assert_allclose(r_fast.action, r_plain.action, atol=1e-8)
    assert abs(r_fast.value - r_plain.value) < 1e-9


def test_terminal_derivatives_are_checked():
    def stage(x, u, p):
        return ca.sumsqr(x)

    with pytest.raises(ValueError, match="terminal_derivatives needs a terminal cost"):
        Cost(stage, terminal_derivatives=lambda x, p: (x, x @ x.T))
    with pytest.raises(ValueError, match="terminal_derivatives must be callable"):
        Cost(stage, lambda x, p: ca.sumsqr(x), terminal_derivatives=3)

    def build(derivatives):
        return ScenarioMPC(
            Model(2, 1, lambda x, u, th: ca.vertcat(x[1], u[0]), dt=0.1),
            Cost(stage, lambda x, p: ca.sumsqr(x), terminal_derivatives=derivatives),
            2,
            ScenarioTree([[1.0]]),
        )

    with pytest.raises(ValueError, match=r"hessian must have shape \(2, 2\)"):
        build(lambda x, p: (2 * x, ca.DM.eye(3)))
    with pytest.raises(ValueError, match=r"must return \(gradient, hessian\)"):
        build(lambda x, p: 2 * x)
