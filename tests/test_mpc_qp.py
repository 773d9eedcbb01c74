"""The QP path of the MPC (``SolverOptions(method="qp")``, lgutils.mpc.qp) against IPOPT, the
closed forms of case study B (unconstrained and input-bounded), central finite differences of
its own solutions, and its failure modes (not a QP, infeasible, degenerate)."""

from __future__ import annotations

import copy

import casadi as ca
import numpy as np
import pytest

from lgutils.mpc import (
    MPC,
    Bounds,
    Constraints,
    Cost,
    Model,
    MPCSolveError,
    SolverOptions,
    closed_loop,
    linear_quadratic_mpc,
)
from lgutils.mpc_reinforce import bounded, model

ENV = model.case_b()
U_MAX = 0.5
QP = SolverOptions(method="qp")
#: IPOPT solving to the QP solver's accuracy: tight tolerance, bounds not relaxed
TIGHT = SolverOptions(ipopt={"tol": 1e-12, "bound_relax_factor": 0.0, "mu_target": 1e-12})


def case_b(solver: SolverOptions, u_max: float | None = None) -> MPC:
    bounds = None if u_max is None else Bounds(u_lb=-u_max, u_ub=u_max)
    return model.case_b_mpc(horizon=5, bounds=bounds, solver=solver)


def random_problems(seed: int, n: int):
    """``n`` random models (entries uniform on [-1, 1], as Fig. 4's) and states."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        A, B = rng.uniform(-1, 1, (4, 4)), rng.uniform(-1, 1, (4, 1))
        yield A, B, rng.normal(size=4) * 2


def general_mpc(solver: SolverOptions) -> MPC:
    """A QP with everything the transcription offers: hard, soft and terminal constraints,
    state and input bounds, a parametrised terminal cost, a discount and a move penalty."""
    Q, R = ENV.Q, ENV.R
    return MPC(
        Model(4, 1, lambda x, u, p: p["A"] @ x + p["B"] @ u),
        Cost(
            lambda x, u, p: x.T @ Q @ x + u.T @ R @ u,
            terminal=lambda x, p: x.T @ p["P"] @ x,
            discount=0.9,
            move_weight=[0.3],
        ),
        6,
        params={"A": (4, 4), "B": (4, 1), "P": (4, 4)},
        constraints=Constraints(
            ineq=lambda x, u, p: x[0] + u - 1.0,
            soft=lambda x, u, p: x[1:3] - 0.5,
            soft_linear=1.0,
            soft_quadratic=0.5,
            terminal_ineq=lambda x, p: x[0] - 2.0,
        ),
        bounds=Bounds(u_lb=-1.0, u_ub=1.0, x_lb=-3.0, x_ub=3.0),
        solver=solver,
    )


def general_phi(seed: int) -> tuple[np.ndarray, dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    phi = {
        "A": rng.uniform(-1, 1, (4, 4)),
        "B": rng.uniform(-1, 1, (4, 1)),
        "P": np.eye(4) * rng.uniform(0.5, 2.0),
    }
    return rng.normal(size=4), phi, rng.normal(size=1)


@pytest.fixture(scope="module")
def pairs():
    """(QP path, IPOPT) for case B unconstrained and with the input bound."""
    return {u: (case_b(QP, u), case_b(TIGHT, u)) for u in (None, U_MAX)}


# ---------------------------------------------------------------------------------------------
# the same solutions as IPOPT
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("u_max", [None, U_MAX])
def test_solutions_agree_with_ipopt(pairs, u_max) -> None:
    mqp, mnlp = pairs[u_max]
    saturated = 0
    for A, B, s in random_problems(1, 12):
        a, b = mqp.policy(s, {"A": A, "B": B}), mnlp.policy(s, {"A": A, "B": B})
        assert a.status == "Solve_Succeeded" and a.success and a.iterations == -1
        np.testing.assert_allclose(a.action, b.action, atol=1e-7)
        assert a.value == pytest.approx(b.value, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(a.x_pred, b.x_pred, atol=1e-7)
        np.testing.assert_allclose(a.u_pred, b.u_pred, atol=1e-7)
        saturated += int(np.any(np.abs(a.u_pred) >= U_MAX - 1e-9))
    if u_max is not None:
        assert saturated >= 3  # the bound was active


def test_general_qp_agrees_with_ipopt_policy_q_and_sensitivities() -> None:
    mqp, mnlp = general_mpc(QP), general_mpc(TIGHT)
    checked = 0
    for seed in range(12):
        s, phi, up = general_phi(seed)
        try:
            b = mnlp.policy_sensitivity(s, phi, u_prev=up)
        except MPCSolveError:
            continue  # infeasible draws are checked below
        a = mqp.policy_sensitivity(s, phi, u_prev=up)
        np.testing.assert_allclose(a.result.u_pred, b.result.u_pred, atol=1e-7)
        np.testing.assert_allclose(a.result.x_pred, b.result.x_pred, atol=1e-7)
        np.testing.assert_allclose(a.result.slack, b.result.slack, atol=1e-7)
        assert a.result.value == pytest.approx(b.result.value, rel=1e-8)
        for key in ("d_action_d_phi", "d_action_d_state", "d_action_d_u_prev"):
            np.testing.assert_allclose(getattr(a, key), getattr(b, key), atol=1e-6, err_msg=key)
        for key in ("d_value_d_phi", "d_value_d_state"):
            np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=1e-6, atol=1e-6)
        act = b.result.action
        qa, qb = (
            mqp.q_sensitivity(s, act, phi, u_prev=up),
            mnlp.q_sensitivity(s, act, phi, u_prev=up),
        )
        assert qa.result.value == pytest.approx(a.result.value, rel=1e-9)  # Q(s, pi(s)) = V(s)
        for key in ("d_q_d_phi", "d_q_d_state", "d_q_d_action", "d_q_d_u_prev"):
            np.testing.assert_allclose(getattr(qa, key), getattr(qb, key), rtol=1e-6, atol=1e-6)
        checked += 1
    assert checked >= 4


# ---------------------------------------------------------------------------------------------
# sensitivities: the closed forms of case study B and finite differences
# ---------------------------------------------------------------------------------------------
def test_one_step_horizon_sensitivity_equals_the_closed_form() -> None:
    """H = 1: ``u = -gamma (R + gamma B'PB)^{-1} B'PA s`` (parts of the solution that are
    structurally zero at H = 1 keep their place in the QP path's output)."""
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(3, 1))
    M = rng.normal(size=(3, 3))
    Q, R, P, gamma = np.eye(3), np.eye(1), M @ M.T + np.eye(3), 0.9
    phi = {"A": A, "B": B, "Q": Q, "R": R, "P": P}
    sens = linear_quadratic_mpc(3, 1, 1, discount=gamma, solver=QP).policy_sensitivity(
        np.ones(3), phi
    )
    K = gamma * np.linalg.solve(R + gamma * B.T @ P @ B, B.T @ P @ A)
    np.testing.assert_allclose(sens.d_action_d_state, -K, rtol=1e-10, atol=1e-12)


def test_unconstrained_sensitivity_equals_the_closed_form(pairs) -> None:
    mqp = pairs[None][0]
    for A, B, s in random_problems(2, 10):
        u, du = model.mpc_action_jacobian(s, A, B, ENV.Q, ENV.R, horizon=5)
        sens = mqp.policy_sensitivity(s, {"A": A, "B": B})
        np.testing.assert_allclose(sens.result.action, u, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(sens.d_action_d_phi, du, rtol=1e-8, atol=1e-10)
        K = model.mpc_gain(A, B, ENV.Q, ENV.R, horizon=5)
        np.testing.assert_allclose(sens.d_action_d_state, -K, rtol=1e-8, atol=1e-10)


def test_bounded_sensitivity_equals_the_active_set_closed_form(pairs) -> None:
    mqp = pairs[U_MAX][0]
    free, pinned = 0, 0
    for A, B, s in random_problems(3, 40):
        u, du, active = bounded.bounded_action_jacobian(s, A, B, ENV.Q, ENV.R, U_MAX)
        U = bounded.solve_box_qp(A, B, ENV.Q, ENV.R, s[None], U_MAX).U[0, 0]
        if np.any(np.abs(np.abs(U[active == 0]) - U_MAX) < 1e-4):
            continue  # weakly active: no derivative
        sens = mqp.policy_sensitivity(s, {"A": A, "B": B})
        np.testing.assert_allclose(sens.result.action, u, atol=1e-10)
        scale = max(1.0, np.abs(du).max())
        np.testing.assert_allclose(sens.d_action_d_phi, du, atol=1e-8 * scale)
        if np.any(active != 0):
            free += int(active[0] == 0)
            pinned += int(active[0] != 0)
    assert free >= 3 and pinned >= 3  # active bounds on later inputs, and on u_0 itself


def _central(f, x: np.ndarray, h: float) -> np.ndarray:
    """Central differences of the vector function ``f`` at ``x``: shape (len(f(x)), len(x))."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.atleast_1d(f(x + e)) - np.atleast_1d(f(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


def test_sensitivities_equal_finite_differences_with_active_constraints() -> None:
    mqp = general_mpc(QP)
    s, phi, up = general_phi(5)  # u_0 free, later inputs saturated, soft constraints violated
    sens = mqp.policy_sensitivity(s, phi, u_prev=up)
    res = sens.result
    assert np.any(res.slack > 1e-3) and np.any(np.abs(res.u_pred) >= 1.0 - 1e-9)
    phiv, h = mqp.flatten_phi(phi), 1e-6

    def policy(s_=s, p_=phiv, u_=up):
        return mqp.policy(s_, p_, u_prev=u_)

    fd_phi = _central(lambda p: policy(p_=p).action, phiv, h)
    fd_s = _central(lambda x: policy(s_=x).action, s, h)
    fd_up = _central(lambda x: policy(u_=x).action, up, h)
    np.testing.assert_allclose(sens.d_action_d_phi, fd_phi, atol=1e-6)
    np.testing.assert_allclose(sens.d_action_d_state, fd_s, atol=1e-6)
    np.testing.assert_allclose(sens.d_action_d_u_prev, fd_up, atol=1e-6)
    # values: a larger step, as the solver's last digits (multiplier times residual) divided
    # by the step would dominate; the active set does not change within it
    h = 1e-4
    fdv_phi = _central(lambda p: policy(p_=p).value, phiv, h)[0]
    fdv_s = _central(lambda x: policy(s_=x).value, s, h)[0]
    np.testing.assert_allclose(sens.d_value_d_phi, fdv_phi, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sens.d_value_d_state, fdv_s, rtol=1e-6, atol=1e-6)
    a = res.action + 0.1
    q = mqp.q_sensitivity(s, a, phi, u_prev=up)
    fdq_a = _central(lambda x: mqp.q_value(s, x, phiv, u_prev=up).value, a, h)[0]
    fdq_phi = _central(lambda p: mqp.q_value(s, a, p, u_prev=up).value, phiv, h)[0]
    np.testing.assert_allclose(q.d_q_d_action, fdq_a, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(q.d_q_d_phi, fdq_phi, rtol=1e-6, atol=1e-6)


def test_degenerate_active_set_gives_the_least_squares_derivative() -> None:
    """The same bound twice (an input bound and an identical inequality): OSQP splits the
    multiplier between them, both count as active and the KKT matrix is singular; DAQP keeps
    one. Both give the derivative of the saturated action, 0."""
    for qpsol in ("daqp", "osqp"):
        mpc = MPC(
            Model(1, 1, lambda x, u, p: x + u),
            Cost(lambda x, u, p: x**2 + 0.1 * u**2),
            3,
            constraints=Constraints(ineq=lambda x, u, p: u - 0.5),
            bounds=Bounds(u_lb=-0.5, u_ub=0.5),
            solver=SolverOptions(method="qp", qpsol=qpsol),
        )
        sens = mpc.policy_sensitivity([-5.0])
        assert sens.result.action[0] == pytest.approx(0.5, abs=1e-8)
        assert sens.d_action_d_state[0, 0] == pytest.approx(0.0, abs=1e-9)
        fd = (mpc.policy([-5.0 + 1e-6]).value - mpc.policy([-5.0 - 1e-6]).value) / 2e-6
        assert sens.d_value_d_state[0] == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("qpsol", ["qrqp", "qpoases", "osqp"])
def test_other_qp_solvers_give_the_same_sensitivities(pairs, qpsol) -> None:
    mqp = case_b(SolverOptions(method="qp", qpsol=qpsol), U_MAX)
    ref = pairs[U_MAX][0]
    for A, B, s in random_problems(4, 5):
        a, b = (
            mqp.policy_sensitivity(s, {"A": A, "B": B}),
            ref.policy_sensitivity(s, {"A": A, "B": B}),
        )
        np.testing.assert_allclose(a.result.u_pred, b.result.u_pred, atol=1e-7)
        np.testing.assert_allclose(a.d_action_d_phi, b.d_action_d_phi, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# batches and the closed loop
# ---------------------------------------------------------------------------------------------
def test_batches_equal_single_solves(pairs) -> None:
    mqp = pairs[U_MAX][0]
    A, B, _ = next(random_problems(5, 1))
    phi = {"A": A, "B": B}
    S = np.random.default_rng(6).normal(size=(7, 4)) * 2
    out = mqp.policy_sensitivity_batch(S, phi)
    for i in range(len(S)):
        one = mqp.policy_sensitivity(S[i], phi)
        np.testing.assert_allclose(out["actions"][i], one.result.action, atol=1e-12)
        assert out["values"][i] == pytest.approx(one.result.value, rel=1e-12)
        np.testing.assert_allclose(out["d_action_d_phi"][i], one.d_action_d_phi, atol=1e-10)
        np.testing.assert_allclose(out["d_action_d_state"][i], one.d_action_d_state, atol=1e-10)
        np.testing.assert_allclose(out["d_value_d_phi"][i], one.d_value_d_phi, atol=1e-10)
    for method in ("loop", "map"):
        res = mqp.policy_batch(S, phi, method=method)
        assert res.success.all() and set(res.statuses) == {"Solve_Succeeded"}
        np.testing.assert_allclose(res.actions, out["actions"], atol=1e-12)
        np.testing.assert_allclose(res.values, out["values"], rtol=1e-12)


def test_a_copy_solves_on_its_own(pairs) -> None:
    """A deep copy (as of a policy) gets buffers of its own: solving with it leaves the
    original's results alone."""
    mqp = pairs[None][0]
    A, B, s = next(random_problems(7, 1))
    before = mqp.policy_sensitivity(s, {"A": A, "B": B})
    twin = copy.deepcopy(mqp)
    other = twin.policy_sensitivity(2 * s, {"A": A, "B": B})
    np.testing.assert_allclose(other.result.action, 2 * before.result.action, rtol=1e-10)
    after = mqp.policy_sensitivity(s, {"A": A, "B": B})
    np.testing.assert_array_equal(after.d_action_d_phi, before.d_action_d_phi)


def test_closed_loop_runs_on_the_qp_path(pairs) -> None:
    mqp, mnlp = pairs[U_MAX]
    phi = {"A": ENV.A, "B": ENV.B}

    def plant(x, u):
        return ENV.A @ x + ENV.B @ u

    runs = [closed_loop(m, plant, ENV.x0 * 3, 6, phi=phi) for m in (mqp, mnlp)]
    np.testing.assert_allclose(runs[0].states, runs[1].states, atol=1e-6)


def test_the_torch_layer_trains_through_the_qp_path() -> None:
    """The layer of chapter 09 on the QP path: the closed form's six outputs on case B, and
    torch's gradcheck (central differences) with input bounds strictly active and inactive."""
    pytest.importorskip("torch")
    from lgutils.mpc_in_rl_library import layer, solvers

    rng = np.random.default_rng(0)
    phi, S = rng.uniform(-1, 1, 20), rng.normal(size=(5, 4)) * 2.0
    got = solvers.MPCSolver(case_b(QP)).solve(S, phi, sensitivities=True)
    ref = solvers.RiccatiSolver.case_b().solve(S, phi, sensitivities=True)
    for name in solvers.PolicySolution._fields:
        a, b = getattr(got, name), getattr(ref, name)
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10 * max(1.0, np.abs(b).max()))
    mpc = linear_quadratic_mpc(2, 1, 4, bounds=Bounds(u_lb=-1.0, u_ub=1.0), solver=QP)
    phi = mpc.flatten_phi(
        {
            "A": [[1.1, 0.3], [0.0, 0.9]],
            "B": [[0.5], [1.0]],
            "Q": np.diag([1.0, 0.5]),
            "R": [[0.1]],
            "P": np.diag([2.0, 1.0]),
        }
    )
    cand = np.random.default_rng(0).normal(size=(300, 2)) * 3.0
    S, _ = layer.gradcheck_states(mpc, phi, cand)
    assert layer.gradcheck_layer(solvers.MPCSolver(mpc), S, phi)


# ---------------------------------------------------------------------------------------------
# what is not a QP, and failed solves
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, culprit",
    [
        (dict(dynamics=lambda x, u, p: ca.sin(x) + u), "Model.dynamics"),
        (dict(stage=lambda x, u, p: x**4 + u**2), "Cost.stage"),
        (dict(terminal=lambda x, p: ca.exp(x)), "Cost.terminal"),
        (dict(ineq=lambda x, u, p: x**2 - 1.0), "Constraints.ineq"),
    ],
)
def test_a_problem_that_is_not_a_qp_is_refused_by_name(kwargs, culprit) -> None:
    with pytest.raises(ValueError, match=rf"{culprit}.*not (quadratic|linear)"):
        MPC(
            Model(1, 1, kwargs.get("dynamics", lambda x, u, p: x + u)),
            Cost(kwargs.get("stage", lambda x, u, p: x**2 + u**2), terminal=kwargs.get("terminal")),
            3,
            constraints=Constraints(ineq=kwargs.get("ineq")),
            solver=QP,
        )


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        SolverOptions(method="sqp")
    with pytest.raises(ValueError, match="qpsol"):
        case_b(SolverOptions(method="qp", qpsol="no_such_solver"))


def test_an_infeasible_qp_raises_with_the_solvers_status() -> None:
    """x_{k+1} = x_k + u_k with |u| <= 0.1 cannot bring x = 1 below 0.5 in one step."""
    mpc = MPC(
        Model(1, 1, lambda x, u, p: x + u),
        Cost(lambda x, u, p: x**2 + u**2),
        3,
        bounds=Bounds(u_lb=-0.1, u_ub=0.1, x_ub=0.5),
        solver=QP,
    )
    assert mpc.policy([0.45]).success
    with pytest.raises(MPCSolveError) as info:
        mpc.policy([1.0])
    assert info.value.status.startswith("daqp: infeasible")
    np.testing.assert_array_equal(info.value.state, [1.0])
    with pytest.raises(MPCSolveError) as info:
        mpc.policy_sensitivity_batch(np.array([[0.0], [1.0]]))
    assert info.value.index == 1 and "infeasible" in info.value.status
    res = mpc.policy_batch(np.array([[0.0], [1.0]]), method="map", raise_on_failure=False)
    assert list(res.success) == [True, False] and "infeasible" in res.statuses[1]
    with pytest.raises(MPCSolveError) as info:
        mpc.q_value([0.0], [0.5])  # outside the input bounds: Q = +inf
    assert info.value.status == "infeasible_fixed_data"
