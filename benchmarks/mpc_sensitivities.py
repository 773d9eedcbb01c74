"""Solve-and-gradient cost per state of case study B's MPC, three ways, side by side.

The MPC of case study B (horizon 5, model ``(A_phi, B_phi)`` as parameters, cost
``x^T Q x + R u^2``, no terminal cost or constraints) is evaluated at many states, each time
returning ``u_0*`` and ``d u_0* / d phi`` (20 numbers), by

1. ``lgutils``' general sensitivity: :meth:`lgutils.mpc.MPC.policy_sensitivity`, one state
   (with its own model) per call, on its two paths: the NLP path (CasADi + IPOPT, then implicit
   differentiation of the optimality conditions, warm starts), and the QP path
   (``SolverOptions(method="qp")``: CasADi's conic interface to DAQP, then the KKT system at
   the active set, :mod:`lgutils.mpc.qp`); and the QP path's batched call
   (:meth:`~lgutils.mpc.MPC.policy_sensitivity_batch`, states sharing one model, as when a
   policy is trained);
2. the batched closed form of :mod:`lgutils.mpc_reinforce.model` (Riccati recursion and its adjoint,
   numpy), for a batch of states each with its *own* model -- the conservative case -- and for
   the chapter's setting, where the states of a batch share one model;
3. cvxpylayers (a differentiable convex-optimisation layer, as in the source of Fig. 4): the
   same QP as a DPP cvxpy problem with parameters ``A, B, x0``; forward solve plus backward
   pass for ``u_0``, one state at a time and as a batched call.

All are checked to return the same action and gradient as the closed form (the largest relative
gaps are printed, and the script fails if one above 1e-6 is not cvxpylayers' default
configuration). The script prints the cost per state of each method and the ratios; its last two
lines are::

    general_speedup_vs_cvxpylayers <per-state cost of cvxpylayers (its fastest configuration) /
                                    per-state cost of the general path's QP route, one state
                                    with its own model per call>
    speedup_vs_cvxpylayers <per-state cost of cvxpylayers (its fastest configuration) /
                            per-state cost of the closed form with one model per state>

cvxpylayers runs with its default settings (SCS, iterative LSQR derivative: its gradient is off
by tens of per cent on this badly scaled QP, see the "rel. gap" column) and with settings that
make its gradient exact (SCS tolerances 1e-10, dense derivative); the speedup uses the fastest of
its four configurations, so it is a lower bound for an accurate cvxpylayers.

cvxpylayers is a benchmark-only dependency (``pip install -r benchmarks/requirements.txt``);
neither the book nor :mod:`lgutils` imports it.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/mpc_sensitivities.py [--states 100] [--batch 4096]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from lgutils.mpc import SolverOptions  # noqa: E402
from lgutils.mpc_reinforce import model  # noqa: E402

ENV = model.case_b()


def problems(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` random models (entries uniform on [-1, 1], as Fig. 4's initial models) and states."""
    rng = np.random.default_rng(seed)
    A = rng.uniform(-1, 1, (n, 4, 4))
    B = rng.uniform(-1, 1, (n, 4, 1))
    X = rng.normal(size=(n, 4)) * 2.0
    return A, B, X


def best_of(fn, repeats: int) -> float:
    """Smallest wall-clock time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def closed_form_distinct(A, B, X):
    """u_0* and d u_0*/d phi at each state, each with its own model (forward + adjoint sweep)."""
    K = model.mpc_gain(A, B, ENV.Q, ENV.R)
    u = -np.einsum("rij,rj->ri", K, X)
    du = model.mpc_gain_vjp(A, B, ENV.Q, ENV.R, -X[:, None, :])  # (r, 20): d u_0 / d phi
    return u, du


def closed_form_shared(A, B, X):
    """The chapter's setting: every state of the batch shares one model A (4, 4), B (4, 1)."""
    K, dK = model.mpc_gain_jacobian(A, B, ENV.Q, ENV.R)  # (1, 4), (1, 4, 20)
    u = -X @ K.T
    du = -np.einsum("ijp,rj->rip", dK, X)[:, 0]
    return u, du


def lgutils_general(mpc, A, B, X):
    out_u, out_du = [], []
    for i in range(X.shape[0]):
        sens = mpc.policy_sensitivity(X[i], phi={"A": A[i], "B": B[i]})
        out_u.append(sens.result.action)
        out_du.append(sens.d_action_d_phi[0])
    return np.asarray(out_u), np.asarray(out_du)


def cvxpy_layer():
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    n, m, H = 4, 1, 5
    A = cp.Parameter((n, n))
    B = cp.Parameter((n, m))
    x0 = cp.Parameter(n)
    x = cp.Variable((n, H + 1))
    u = cp.Variable((m, H))
    cost = 0
    cons = [x[:, 0] == x0]
    for k in range(H):
        cost += ENV.Q[0, 0] * cp.sum_squares(x[:, k]) + ENV.R[0, 0] * cp.sum_squares(u[:, k])
        cons.append(x[:, k + 1] == A @ x[:, k] + B @ u[:, k])
    problem = cp.Problem(cp.Minimize(cost), cons)
    assert problem.is_dpp()
    return CvxpyLayer(problem, parameters=[A, B, x0], variables=[u])


#: cvxpylayers' settings: its defaults (SCS accuracy, iterative LSQR derivative) and settings
#: that make its gradient exact here (tight SCS tolerances, dense derivative of the cone program)
CVXPY_SETTINGS = {
    "default": {},
    "accurate": {"eps_abs": 1e-10, "eps_rel": 1e-10, "mode": "dense"},
}


def cvxpylayers_single(layer, A, B, X, solver_args):
    import torch

    out_u, out_du = [], []
    for i in range(X.shape[0]):
        At = torch.tensor(A[i], requires_grad=True)
        Bt = torch.tensor(B[i], requires_grad=True)
        (u,) = layer(At, Bt, torch.tensor(X[i]), solver_args=solver_args)
        u[0, 0].backward()
        out_u.append(u[0, 0].item())
        out_du.append(np.concatenate([At.grad.numpy().ravel(), Bt.grad.numpy().ravel()]))
    return np.asarray(out_u)[:, None], np.asarray(out_du)


def cvxpylayers_batched(layer, A, B, X, solver_args):
    import torch

    At = torch.tensor(A, requires_grad=True)
    Bt = torch.tensor(B, requires_grad=True)
    (u,) = layer(At, Bt, torch.tensor(X), solver_args=solver_args)
    u[:, 0, 0].sum().backward()  # the states are independent: one backward gives every gradient
    du = np.concatenate(
        [At.grad.numpy().reshape(len(X), -1), Bt.grad.numpy().reshape(len(X), -1)], axis=1
    )
    return u[:, 0, :1].detach().numpy(), du


def rel_gap(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def time_general(As, Bs, Xs, u_ref, du_ref) -> tuple[list, float, float]:
    """The general path, with IPOPT and with the QP solver: table rows and seconds per state."""
    n = len(Xs)
    rows, times = [], []
    for name, solver, repeats in (
        ("lgutils general sensitivity (CasADi/IPOPT)", None, 2),
        ("lgutils general sensitivity, QP path (CasADi/DAQP)", SolverOptions(method="qp"), 5),
    ):
        mpc = model.case_b_mpc(horizon=5, solver=solver)
        lgutils_general(mpc, As[:5], Bs[:5], Xs[:5])  # build and warm up
        t = best_of(lambda m=mpc: lgutils_general(m, As, Bs, Xs), repeats) / n
        u, du = lgutils_general(mpc, As, Bs, Xs)
        rows.append((name, t, rel_gap(u, u_ref), rel_gap(du, du_ref)))
        times.append(t)
    return rows, times[0], times[1]


def time_qp_batch(As, Bs, Xs) -> tuple[tuple, float]:
    """The QP path's batched call (``policy_sensitivity_batch``: states sharing one model)."""
    n = len(Xs)
    mpc = model.case_b_mpc(horizon=5, solver=SolverOptions(method="qp"))
    phi = {"A": As[0], "B": Bs[0]}
    mpc.policy_sensitivity_batch(Xs, phi)  # build the map and warm up
    t = best_of(lambda: mpc.policy_sensitivity_batch(Xs, phi), 5) / n
    out = mpc.policy_sensitivity_batch(Xs, phi)
    u_ref, du_ref = closed_form_shared(As[0], Bs[0], Xs)
    name = "lgutils QP path, batched call, shared model"
    return (
        name,
        t,
        rel_gap(out["actions"], u_ref),
        rel_gap(out["d_action_d_phi"][:, 0], du_ref),
    ), t


def time_cvxpylayers(As, Bs, Xs, u_ref, du_ref) -> tuple[list, float | None]:
    """cvxpylayers in its four configurations: table rows and the fastest seconds per state."""
    n, rows, times = len(Xs), [], []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layer = cvxpy_layer()
            cvxpylayers_single(layer, As[:3], Bs[:3], Xs[:3], {})  # warm up
            for name, sargs in CVXPY_SETTINGS.items():
                t_single = best_of(lambda a=sargs: cvxpylayers_single(layer, As, Bs, Xs, a), 2) / n
                u_c, du_c = cvxpylayers_single(layer, As, Bs, Xs, sargs)
                rows.append(
                    (f"cvxpylayers {name}, one state per call", t_single)
                    + (rel_gap(u_c, u_ref), rel_gap(du_c, du_ref))
                )
                t_batch = best_of(lambda a=sargs: cvxpylayers_batched(layer, As, Bs, Xs, a), 2) / n
                u_c, du_c = cvxpylayers_batched(layer, As, Bs, Xs, sargs)
                rows.append(
                    (f"cvxpylayers {name}, batched call", t_batch)
                    + (rel_gap(u_c, u_ref), rel_gap(du_c, du_ref))
                )
                times += [t_single, t_batch]
    except ImportError as exc:
        print(f"cvxpylayers not installed ({exc}); pip install -r benchmarks/requirements.txt")
        return rows, None
    return rows, min(times)  # the fastest cvxpylayers configuration, accurate or not


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=100, help="states for the per-state solvers")
    parser.add_argument("--batch", type=int, default=4096, help="states for the closed form")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    A, B, X = problems(max(args.states, args.batch), args.seed)
    n = args.states
    As, Bs, Xs = A[:n], B[:n], X[:n]

    # reference answers from the closed form (checked against IPOPT and finite differences in
    # tests/test_mpc_reinforce.py)
    u_ref, du_ref = closed_form_distinct(As, Bs, Xs)
    rows, t_lg, t_qp = time_general(As, Bs, Xs, u_ref, du_ref)
    row, t_qp_batch = time_qp_batch(As, Bs, Xs)
    rows.append(row)

    t_cf = best_of(lambda: closed_form_distinct(A, B, X), 5) / len(X)
    t_cf_shared = best_of(lambda: closed_form_shared(A[0], B[0], X), 5) / len(X)
    u_sh, du_sh = closed_form_shared(As[0], Bs[0], Xs)
    u_sh_ref, du_sh_ref = closed_form_distinct(np.repeat(As[:1], n, 0), np.repeat(Bs[:1], n, 0), Xs)
    rows += [
        ("closed form, one model per state", t_cf, 0.0, 0.0),
        (
            "closed form, shared model (chapter)",
            t_cf_shared,
            rel_gap(u_sh, u_sh_ref),
            rel_gap(du_sh, du_sh_ref),
        ),
    ]
    cvx_rows, t_cvx = time_cvxpylayers(As, Bs, Xs, u_ref, du_ref)
    rows += cvx_rows

    print(f"states: {n} for the per-state solvers, {len(X)} for the closed form")
    width = max(len(r[0]) for r in rows)
    print(f"{'method':<{width}}  {'us/state':>10}  {'rel. gap u':>10}  {'rel. gap du/dphi':>16}")
    for name, t, gu, gd in rows:
        print(f"{name:<{width}}  {1e6 * t:10.2f}  {gu:10.1e}  {gd:16.1e}")
    for row in rows:  # the gradients agree with the closed form (cvxpylayers' defaults aside)
        assert "default" in row[0] or max(row[2], row[3]) < 1e-6, row
    print(f"ratio lgutils general / closed form (one model per state): {t_lg / t_cf:.0f}")
    print(f"ratio lgutils general IPOPT / QP path: {t_lg / t_qp:.1f}")
    print(f"ratio QP path one state per call / batched call: {t_qp / t_qp_batch:.1f}")
    print(f"ratio closed form one model per state / shared model: {t_cf / t_cf_shared:.1f}")
    if t_cvx is not None:
        print(f"ratio cvxpylayers (fastest configuration) / lgutils general: {t_cvx / t_lg:.2f}")
        print(f"general_speedup_vs_cvxpylayers {t_cvx / t_qp:.1f}")
        print(f"speedup_vs_cvxpylayers {t_cvx / t_cf:.0f}")


if __name__ == "__main__":
    main()
