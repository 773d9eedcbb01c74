"""Solver failures are never silent: deliberately infeasible, iteration-limited and non-finite
MPC problems raise :class:`lgutils.mpc.MPCSolveError` carrying the status, the state and the
parameters, and a closed loop asked to continue records each failure, and every constraint
violation of the plant, in its result (checked against violations computed by hand).
"""

from __future__ import annotations

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

A1, B1 = np.array([[1.0]]), np.array([[1.0]])
PHI1 = {"A": A1, "B": B1, "Q": np.eye(1), "R": np.eye(1), "P": np.eye(1)}


def boxed_integrator(**kw) -> MPC:
    """x+ = x + u with |u| <= 0.5 and |x_k| <= 1 for k >= 1: infeasible from |s| > 1.5."""
    bounds = Bounds(u_lb=-0.5, u_ub=0.5, x_lb=[-1.0], x_ub=[1.0])
    return linear_quadratic_mpc(1, 1, 3, bounds=bounds, **kw)


def assert_carries(err: MPCSolveError, status: str, state, phi: dict) -> None:
    assert err.status == status, err.status
    np.testing.assert_array_equal(err.state, state)
    assert set(err.phi) == set(phi)
    for name, value in phi.items():
        np.testing.assert_array_equal(err.phi[name], value)
    assert status in str(err) or err.status == "infeasible_fixed_data"


# ------------------------------------------------------------------------------------------
# one solve
# ------------------------------------------------------------------------------------------
def test_infeasible_problem_raises_with_status_state_and_parameters():
    mpc = boxed_integrator()
    s = np.array([2.0])  # x_1 = 2 + u >= 1.5 > 1 whatever u in [-0.5, 0.5]
    for call in (
        lambda: mpc.policy(s, PHI1),
        lambda: mpc.q_value(s, [0.0], PHI1),
        lambda: mpc.policy_sensitivity(s, PHI1),
        lambda: mpc.q_sensitivity(s, [0.0], PHI1),
    ):
        with pytest.raises(MPCSolveError) as info:
            call()
        assert_carries(info.value, "Infeasible_Problem_Detected", s, PHI1)
        assert info.value.iterations > 0
    assert mpc.policy([1.4], PHI1).success  # feasible just inside: the bound is where theory says


def test_iteration_limit_raises_with_status_and_iterations():
    phi = {"c": np.array(2.0)}
    mpc = MPC(
        Model(1, 1, dynamics=lambda x, u, p: ca.sin(x) + u**3),
        Cost(lambda x, u, p: (x - p["c"]) ** 4 + u**2),
        5,
        params={"c": ()},
        solver=SolverOptions(ipopt={"max_iter": 1}, warm_start=False),
    )
    with pytest.raises(MPCSolveError) as info:
        mpc.policy([3.0], phi)
    assert_carries(info.value, "Maximum_Iterations_Exceeded", [3.0], phi)
    assert info.value.iterations == 1


def test_non_finite_numbers_raise_instead_of_returning_them():
    phi = {"c": np.array(1e300)}
    mpc = MPC(
        Model(1, 1, dynamics=lambda x, u, p: x + u),
        Cost(lambda x, u, p: p["c"] * x**2 + u**2),
        3,
        params={"c": ()},
        solver=SolverOptions(nlpsol={"show_eval_warnings": False}),
    )
    assert np.isfinite(mpc.policy([1.0], phi).value)
    with pytest.raises(MPCSolveError) as info:
        mpc.policy([1e5], phi)
    assert_carries(info.value, "Invalid_Number_Detected", [1e5], phi)
    # a CasADi map of the solver cannot report a status: it detects the non-finite result
    batch = mpc.policy_batch([[1.0], [1e5]], phi, method="map", raise_on_failure=False)
    assert list(batch.success) == [True, False] and batch.statuses[1] == "map_failed"
    assert np.isnan(batch.values[1]) and np.isfinite(batch.values[0])
    with pytest.raises(MPCSolveError) as info:
        mpc.policy_batch([[1.0], [1e5]], phi, method="map")
    assert info.value.index == 1 and info.value.status == "map_failed"


def test_map_batches_check_the_fixed_data_like_single_solves():
    mpc = boxed_integrator()
    S, A = np.array([[0.0], [0.0]]), np.array([[0.2], [0.9]])  # 0.9 is outside |u| <= 0.5
    for method in ("loop", "map"):
        batch = mpc.q_value_batch(S, A, PHI1, method=method, raise_on_failure=False)
        assert list(batch.success) == [True, False], method
        assert batch.statuses[1] == "infeasible_fixed_data" and np.isnan(batch.values[1])
        with pytest.raises(MPCSolveError) as info:
            mpc.q_value_batch(S, A, PHI1, method=method)
        assert info.value.index == 1 and info.value.status == "infeasible_fixed_data"
        np.testing.assert_array_equal(info.value.action, A[1])


def test_solver_options_that_make_casadi_throw_still_give_mpc_solve_error():
    mpc = boxed_integrator(solver=SolverOptions(nlpsol={"error_on_fail": True}))
    with pytest.raises(MPCSolveError) as info:
        mpc.policy([2.0], PHI1)
    assert_carries(info.value, "Infeasible_Problem_Detected", [2.0], PHI1)


def test_batch_records_failures_when_asked_to_continue():
    mpc = boxed_integrator()
    S = np.array([[0.5], [2.0], [-3.0], [1.0]])
    batch = mpc.policy_batch(S, PHI1, raise_on_failure=False)
    assert list(batch.success) == [True, False, False, True]
    assert batch.statuses[1] == batch.statuses[2] == "Infeasible_Problem_Detected"
    assert np.all(np.isnan(batch.actions[1:3])) and np.all(np.isfinite(batch.actions[[0, 3]]))
    with pytest.raises(MPCSolveError) as info:
        mpc.policy_batch(S, PHI1)
    assert info.value.index == 1
    np.testing.assert_array_equal(info.value.state, S[1])


# ------------------------------------------------------------------------------------------
# closed loops
# ------------------------------------------------------------------------------------------
#: a kick of +1.5 at t = 2 makes the state unrecoverable (|s| > 1.5), one of -1.5 at t = 4
#: brings it back
KICKS = {2: 1.5, 4: -1.5}


def kicked_plant(x: np.ndarray, u: np.ndarray, t: list[int]) -> np.ndarray:
    x_next = x + u + KICKS.get(t[0], 0.0)
    t[0] += 1
    return x_next


def path_constrained_mpc() -> MPC:
    """The boxed integrator with a hard path constraint u <= 0.4 (the input bound is 0.5)."""
    return boxed_integrator(constraints=Constraints(ineq=lambda x, u, p: u - 0.4))


def test_closed_loop_raises_at_the_failed_step_by_default():
    clock = [0]
    with pytest.raises(MPCSolveError) as info:
        closed_loop(boxed_integrator(), lambda x, u: kicked_plant(x, u, clock), [0.5], 8, PHI1)
    assert info.value.status == "Infeasible_Problem_Detected"
    assert info.value.index == 3 and info.value.state[0] > 1.5


def test_closed_loop_records_failures_and_violations_when_asked_to_continue(capfd):
    clock = [0]
    rng = np.random.default_rng(0)
    noise = 0.3 * rng.standard_normal((8, 1))
    mpc = path_constrained_mpc()
    run = closed_loop(
        mpc,
        lambda x, u: kicked_plant(x, u, clock),
        [0.5],
        8,
        PHI1,
        noise=noise,
        on_failure="record",
    )
    assert capfd.readouterr().out == ""  # nothing printed: everything is in the result
    # the steps whose state no input can bring back into [-1, 1] are exactly the failures
    unrecoverable = np.abs(run.states[:-1, 0]) > 1.5
    np.testing.assert_array_equal(~run.success, unrecoverable)
    assert unrecoverable.any() and (~unrecoverable[4:]).any()  # it failed, then recovered
    assert run.n_failures == int(unrecoverable.sum())
    for err in run.failures:
        assert err.status == "Infeasible_Problem_Detected" and run.statuses[err.index] == err.status
        np.testing.assert_array_equal(err.state, run.states[err.index])
        np.testing.assert_array_equal(err.phi["A"], A1)
    assert all(run.statuses[t] == "Solve_Succeeded" for t in np.flatnonzero(run.success))
    assert np.all(np.isnan(run.values[~run.success])) and np.all(
        np.isfinite(run.values[run.success])
    )
    # the run went on, with actions in the input bounds, and the plant followed them
    assert np.all(np.abs(run.actions) <= 0.5)
    expected = [0.5]
    for t in range(8):
        expected.append(expected[-1] + run.actions[t, 0] + KICKS.get(t, 0.0))
    np.testing.assert_allclose(run.states[:, 0], expected, rtol=0, atol=1e-12)
    # violations, by hand: state bounds |x| <= 1 and the path constraint u <= 0.4
    x, a = run.states[:, 0], run.actions[:, 0]
    by_hand = np.maximum.reduce([np.zeros(9), np.abs(x) - 1.0, np.append(a - 0.4, 0.0)])
    np.testing.assert_allclose(run.violations, by_hand, rtol=0, atol=1e-12)
    assert run.max_violation == pytest.approx(by_hand.max()) and run.max_violation > 0.5


def test_closed_loop_fallback_follows_the_last_successful_plan():
    clock = [0]
    mpc = boxed_integrator()
    run = closed_loop(
        mpc, lambda x, u: kicked_plant(x, u, clock), [0.5], 6, PHI1, on_failure="record"
    )
    last_ok = int(np.flatnonzero(run.success)[np.flatnonzero(run.success) < 3][-1])
    # re-solve at the state of the last success: its plan's later inputs are the fallbacks
    plan = mpc.policy(run.states[last_ok], PHI1).u_pred[:, 0]
    for t in range(last_ok + 1, 6):
        if run.success[t]:
            break
        k = min(t - last_ok, len(plan) - 1)
        assert run.actions[t, 0] == pytest.approx(plan[k], abs=1e-7)


def test_closed_loop_rejects_an_unknown_failure_mode():
    with pytest.raises(ValueError, match="on_failure"):
        closed_loop(boxed_integrator(), lambda x, u: x + u, [0.0], 3, PHI1, on_failure="ignore")
