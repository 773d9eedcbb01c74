"""An MPC evaluated at many states: a warm-started loop, or CasADi's ``map`` of the solver.

:func:`solve_batch` loops over the states with a warm start chained from one solve to the next
(``method="loop"``, the default), or hands all of them to a CasADi ``map`` of the solver
(``method="map"``, cold starts). ``benchmarks/mpc_solve_times.py`` measures both: on the book's
test problems (a few states, horizon 20) the map took 0.7-0.9 times the loop's time per state,
the difference being the Python overhead of one call per state; the loop is the default because
it reports each state's status and iteration count, which a map cannot: it checks the fixed data
as a single solve does, then recomputes the objective and the constraints at each returned point
and flags non-finite numbers, violated constraints and an objective that differs from the one
returned (an aborted solve returns its starting point), but a solve stopped by the iteration
limit at a feasible point goes unnoticed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from lgutils.core.validate import as_array
from lgutils.mpc import qp
from lgutils.mpc.results import BatchResult, MPCSolveError

__all__ = ["solve_batch", "sensitivity_batch"]


def _previous_inputs(mpc: Any, U_prev: Any, N: int) -> np.ndarray | None:
    if mpc.use_u_prev:
        if U_prev is None:
            raise ValueError(
                f"U_prev of shape ({N}, {mpc.nu}) is required because this MPC uses u_prev"
            )
        return as_array("U_prev", U_prev, (N, mpc.nu))
    if U_prev is not None:
        raise ValueError("U_prev was given but this MPC was built without use_u_prev/move_weight")
    return None


def _empty(mpc: Any, N: int) -> dict[str, Any]:
    H = mpc.horizon
    return dict(
        actions=np.full((N, mpc.nu), np.nan),
        values=np.full(N, np.nan),
        x_pred=np.full((N, H + 1, mpc.nx), np.nan),
        u_pred=np.full((N, H, mpc.nu), np.nan),
        success=np.zeros(N, dtype=bool),
        statuses=["not_solved"] * N,
        iterations=np.full(N, -1, dtype=int),
        solve_times=np.full(N, np.nan),
    )


def _loop(mpc, mode, S, A, U_prev, phiv, raise_on_failure, warm_start, out) -> None:
    for i in range(S.shape[0]):
        a = None if A is None else A[i]
        up = None if U_prev is None else U_prev[i]
        try:
            res, _ = mpc.solve(mode, S[i], a, up, phiv, warm_start, index=i)
        except MPCSolveError as exc:
            if raise_on_failure:
                raise
            out["statuses"][i] = exc.status
            out["iterations"][i] = exc.iterations
            continue
        out["actions"][i], out["values"][i] = res.action, res.value
        out["x_pred"][i], out["u_pred"][i] = res.x_pred, res.u_pred
        out["success"][i], out["statuses"][i] = True, res.status
        out["iterations"][i], out["solve_times"][i] = res.iterations, res.solve_time


def _map_solve(mpc, mode, S, A, U_prev, phiv):
    """All states through one CasADi map; returns the solutions, objectives and constraints."""
    b, N = mpc.problem(mode), S.shape[0]
    maps = b.cache.setdefault("maps", {})
    if N not in maps:
        maps[N] = b.solver.map(N, "serial")
    Pm = np.stack(
        [
            mpc.parameter_vector(
                mode, S[i], None if A is None else A[i], None if U_prev is None else U_prev[i], phiv
            )
            for i in range(N)
        ],
        axis=1,
    )
    W0 = np.stack([mpc.cold_guess(mode, S[i]) for i in range(N)], axis=1)
    fixed_fail: dict[int, MPCSolveError] = {}
    for i in range(N):
        try:
            mpc.check_fixed_data(mode, S[i], None if A is None else A[i], Pm[:, i], phiv, i)
        except MPCSolveError as exc:
            fixed_fail[i] = exc
    t0 = time.perf_counter()
    sol = maps[N](
        x0=W0,
        p=Pm,
        lbx=np.tile(b.lbw[:, None], (1, N)),
        ubx=np.tile(b.ubw[:, None], (1, N)),
        lbg=np.tile(b.lbg[:, None], (1, N)),
        ubg=np.tile(b.ubg[:, None], (1, N)),
    )
    elapsed = time.perf_counter() - t0
    Wopt = np.asarray(sol["x"], dtype=float).reshape(b.n_w, N)
    F = np.asarray(sol["f"], dtype=float).ravel()
    # a map reports no status: recompute the objective and the constraints at the returned
    # point (a solve aborted by IPOPT returns its starting point and f = 0)
    with np.errstate(invalid="ignore", over="ignore"):
        if ("fg", N) not in maps:
            maps[("fg", N)] = b.fg.map(N, "serial")
        F_at, G_at = maps[("fg", N)](np.nan_to_num(Wopt), Pm)
    F_at = np.asarray(F_at, dtype=float).ravel()
    Gv = np.asarray(G_at, dtype=float).reshape(-1, N) if b.lbg.size else np.zeros((0, N))
    return Wopt, F, F_at, Gv, fixed_fail, elapsed


def _map(mpc, mode, S, A, U_prev, phiv, raise_on_failure, out) -> None:
    b, N = mpc.problem(mode), S.shape[0]
    Wopt, F, F_at, Gv, fixed_fail, elapsed = _map_solve(mpc, mode, S, A, U_prev, phiv)
    for i in range(N):
        if i in fixed_fail:
            if raise_on_failure:
                raise fixed_fail[i]
            out["statuses"][i] = fixed_fail[i].status
            continue
        w = Wopt[:, i]
        viol = max(
            0.0,
            float(np.max(b.lbg - Gv[:, i], initial=0.0)),
            float(np.max(Gv[:, i] - b.ubg, initial=0.0)),
            float(np.max(b.lbw - w, initial=0.0)),
            float(np.max(w - b.ubw, initial=0.0)),
        )
        ok = (
            np.all(np.isfinite(w))
            and np.isfinite(F[i])
            and np.isfinite(F_at[i])
            and abs(F_at[i] - F[i]) <= 1e-6 * max(1.0, abs(F_at[i]))
            and np.all(np.isfinite(Gv[:, i]))
            and viol < 1e-6
        )
        if not ok:
            if raise_on_failure:
                raise mpc.solve_error(
                    f"MPC {mode} batch solve (map) failed at index {i}: constraint violation "
                    f"{viol:.3g}, or a non-finite or inconsistent objective ({F[i]:.6g} "
                    f"returned, {F_at[i]:.6g} at the returned point)",
                    "map_failed",
                    S[i],
                    None if A is None else A[i],
                    phiv,
                    index=i,
                )
            out["statuses"][i] = "map_failed"
            continue
        u_pred, x_pred = mpc.plan(mode, w, S[i], None if A is None else A[i])
        out["u_pred"][i], out["x_pred"][i] = u_pred, x_pred
        out["actions"][i], out["values"][i] = u_pred[0], F[i]
        out["success"][i], out["statuses"][i] = True, "map_converged"
        out["solve_times"][i] = elapsed / N


def _map_qp(mpc, mode, S, A, U_prev, phiv, raise_on_failure, out) -> None:
    """``method="map"`` with ``SolverOptions(method="qp")``: one mapped call of the QP, each
    solution checked (:func:`lgutils.mpc.qp.check_solution`), so statuses are reported."""
    N = S.shape[0]
    As = [None] * N if A is None else A
    Up = [None] * N if U_prev is None else U_prev
    P = np.stack([mpc.parameter_vector(mode, S[i], As[i], Up[i], phiv) for i in range(N)])
    parts, viol, elapsed = qp.solve_many(mpc, mode, P)
    for i in range(N):
        try:
            mpc.check_fixed_data(mode, S[i], As[i], P[i], phiv, i)
            if not viol[i] <= qp.KKT_TOL:
                raise qp.solve_failure(mpc, mode, P[i], float(viol[i]), S[i], As[i], phiv, i)
        except MPCSolveError as exc:
            if raise_on_failure:
                raise
            out["statuses"][i], out["iterations"][i] = exc.status, exc.iterations
            continue
        u_pred, x_pred = mpc.plan(mode, parts["w"][i], S[i], As[i])
        out["u_pred"][i], out["x_pred"][i] = u_pred, x_pred
        out["actions"][i], out["values"][i] = u_pred[0], parts["f"][i, 0]
        out["success"][i], out["statuses"][i] = True, qp.SUCCESS
        out["solve_times"][i] = elapsed / N


def solve_batch(
    mpc: Any,
    mode: str,
    S: Any,
    A: Any = None,
    phi: Any = None,
    *,
    U_prev: Any = None,
    method: str = "loop",
    raise_on_failure: bool = True,
    warm_start: bool | None = None,
) -> BatchResult:
    """``mpc``'s policy (``mode="policy"``) or Q-value (``"q"``) at many states.

    Parameters
    ----------
    mpc : lgutils.mpc.MPC
    mode : {"policy", "q"}
    S : array_like, shape (N, nx)
        States, one per row.
    A : array_like, shape (N, nu)
        Actions, one per row (``mode="q"`` only).
    phi : dict or array_like, optional
        Shared parameter values.
    U_prev : array_like, shape (N, nu), optional
        Previous inputs (when the MPC uses them).
    method : {"loop", "map"}
        ``"loop"``: one solve after the other, each warm-started from the previous one
        (statuses and iterations are reported). ``"map"``: CasADi's ``map`` of the solver
        (cold starts; failures detected from the fixed data and from the objective and
        constraints recomputed at the returned point, not from a status; iterations reported
        as -1). With ``SolverOptions(method="qp")``, one mapped call of the QP whose solutions
        are checked as in a single solve (:func:`lgutils.mpc.qp.solve_many`).
    raise_on_failure : bool
        Raise :class:`MPCSolveError` at the first failed solve (default), or mark it with
        ``success = False`` and NaN values and go on.
    warm_start : bool, optional
        Override the MPC's warm-start choice for the loop.

    Returns
    -------
    BatchResult
    """
    S = as_array("S", S, (None, mpc.nx))
    N = S.shape[0]
    A = as_array("A", A, (N, mpc.nu)) if mode == "q" else None
    U_prev = _previous_inputs(mpc, U_prev, N)
    phiv = mpc.phi_vector(phi)
    if method not in ("loop", "map"):
        raise ValueError(f"method must be 'loop' or 'map', got {method!r}")
    out = _empty(mpc, N)
    if method == "loop":
        _loop(mpc, mode, S, A, U_prev, phiv, raise_on_failure, warm_start, out)
    elif mpc.solver_options.method == "qp":
        _map_qp(mpc, mode, S, A, U_prev, phiv, raise_on_failure, out)
    else:
        _map(mpc, mode, S, A, U_prev, phiv, raise_on_failure, out)
    return BatchResult(**out)


def sensitivity_batch(
    mpc: Any, S: Any, phi: Any = None, *, U_prev: Any = None, warm_start: bool | None = None
) -> dict[str, np.ndarray]:
    """``mpc.policy_sensitivity`` at many states (a loop with warm starts; with
    ``SolverOptions(method="qp")`` one mapped call and batched KKT solves,
    :func:`lgutils.mpc.qp.sensitivity_batch`).

    Returns
    -------
    dict
        ``"actions"`` (N, nu), ``"values"`` (N,), ``"d_action_d_phi"`` (N, nu, n_phi),
        ``"d_action_d_state"`` (N, nu, nx), ``"d_value_d_phi"`` (N, n_phi),
        ``"d_value_d_state"`` (N, nx), and ``"d_action_d_u_prev"`` (N, nu, nu) when used.
    """
    S = as_array("S", S, (None, mpc.nx))
    N = S.shape[0]
    U_prev = _previous_inputs(mpc, U_prev, N)
    if mpc.solver_options.method == "qp":
        return qp.sensitivity_batch(mpc, S, mpc.phi_vector(phi), U_prev)
    keys = ["d_action_d_phi", "d_action_d_state", "d_value_d_phi", "d_value_d_state"]
    if mpc.use_u_prev:
        keys.append("d_action_d_u_prev")
    out: dict[str, list] = {k: [] for k in ["actions", "values", *keys]}
    for i in range(N):
        try:
            sens = mpc.policy_sensitivity(
                S[i], phi, u_prev=None if U_prev is None else U_prev[i], warm_start=warm_start
            )
        except MPCSolveError as exc:
            exc.index = i
            raise
        out["actions"].append(sens.result.action)
        out["values"].append(sens.result.value)
        for k in keys:
            out[k].append(getattr(sens, k))
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}
