"""Derivatives of an MPC's solution: the policy's ``d u_0*/d(s, phi)`` and the values' gradients.

With ``SolverOptions(method="qp")`` both functions hand over to :mod:`lgutils.mpc.qp` (the
same results, from the QP's KKT system); what follows describes the NLP path.

- ``d u_0* / d(s, phi)``: CasADi's own derivative of the ``nlpsol`` solution (its reverse mode,
  evaluated at the nominal solution without re-solving). CasADi linearises the KKT conditions
  at the solution with the active set read from the signs of the multipliers, and treats *any*
  non-zero multiplier as active. IPOPT's interior-point multipliers of inactive constraints are
  tiny but not zero, so :func:`active_multipliers` zeroes every inequality multiplier that is
  smaller than its constraint's distance to the bound (``lam * slack ~ mu`` at an interior-point
  solution; ``clip_inactive_lam=True`` alone misses near-active rows) before differentiating;
  without this every bound looks active and the derivative is 0. The KKT system is solved in
  the least-squares sense (``sens_linsol="lsqr"``), which equals the exact solve where it is
  regular. Exact wherever strict complementarity and linearly independent active constraints
  hold; checked against central finite differences in ``tests/test_mpc.py``. At degenerate
  points (weakly active or dependent active constraints) the solution map need not be
  differentiable; the result is then the least-squares solution of the singular linearised KKT
  system, not a one-sided derivative.
- ``d Q / d(s, a, phi)`` and ``d V / d(s, phi)``: the gradient of the Lagrangian with respect to
  the parameters at the solution (envelope theorem, paper ref. [58]; CasADi's ``lam_p`` output
  equals ``-grad_p L``).
"""

from __future__ import annotations

from typing import Any

import casadi as ca
import numpy as np

from lgutils.mpc import qp
from lgutils.mpc.results import PolicySensitivity, QSensitivity

__all__ = [
    "active_multipliers",
    "lagrangian_grad_p",
    "policy_sensitivity",
    "q_sensitivity",
    "split_parameters",
]


def active_multipliers(
    val: np.ndarray, lam: np.ndarray, lb: np.ndarray, ub: np.ndarray
) -> np.ndarray:
    """Multipliers cleaned for CasADi's active-set detection (which treats any ``lam != 0`` as active).

    An interior-point solution has ``lam_i * slack_i ~ mu`` for every inequality; the row is
    taken as active when its multiplier exceeds its distance to the bound, else its multiplier
    is set to 0. Equality rows (``lb == ub``) are always active; an exactly-zero multiplier
    there gets a tiny positive value so that it still counts as active.
    """
    lam = lam.copy()
    eq = lb == ub
    lam[eq] = np.where(lam[eq] == 0.0, 1e-300, lam[eq])
    with np.errstate(invalid="ignore"):
        dist = np.where(lam > 0, ub - val, val - lb)
    inactive = ~eq & (np.abs(lam) <= np.maximum(dist, 0.0))
    lam[inactive] = 0.0
    return lam


def lagrangian_grad_p(mpc: Any, mode: str, raw: Any) -> np.ndarray:
    """``grad_p (f + lam_g^T g)`` at a solution, shape (n_p,): ``dV/dp`` (or ``dQ/dp``) by the
    envelope theorem, and the negative of CasADi's ``lam_p`` output.

    ``raw`` is the :class:`lgutils.mpc.controller.RawSolution` of the solve.
    """
    b = mpc.problem(mode)
    if "lagp" not in b.cache:
        w = ca.MX.sym("w", b.n_w)
        p = ca.MX.sym("p", b.n_p)
        lam = ca.MX.sym("lam_g", b.lbg.size)
        J, G = b.fg(w, p)
        fn = ca.Function(f"grad_p_{mode}", [w, p, lam], [ca.gradient(J + ca.dot(lam, G), p)])
        b.cache["lagp"] = fn.expand() if mpc.solver_options.nlpsol.get("expand", True) else fn
    out = b.cache["lagp"](raw.sol["x"], raw.p, raw.sol["lam_g"])
    return np.asarray(out, dtype=float).ravel()


def split_parameters(mpc: Any, mode: str, vec: np.ndarray) -> dict[str, np.ndarray]:
    """Split a derivative along ``P = [s, (a), (u_prev), phi]`` (its last axis) into its parts."""
    out, i = {}, 0
    out["s"] = vec[..., i : i + mpc.nx]
    i += mpc.nx
    if mode == "q":
        out["a"] = vec[..., i : i + mpc.nu]
        i += mpc.nu
    if mpc.use_u_prev:
        out["u_prev"] = vec[..., i : i + mpc.nu]
        i += mpc.nu
    out["phi"] = vec[..., i:]
    return out


def _action_jacobian(mpc: Any, raw: Any, grad: np.ndarray) -> np.ndarray:
    """``d u_0* / dP``, shape (nu, n_p), by CasADi's reverse mode through the solver."""
    b, nu = mpc.problem("policy"), mpc.nu
    sol = raw.sol
    lam_g = active_multipliers(
        np.asarray(sol["g"], dtype=float).ravel(),
        np.asarray(sol["lam_g"], dtype=float).ravel(),
        b.lbg,
        b.ubg,
    )
    lam_x = active_multipliers(
        np.asarray(sol["x"], dtype=float).ravel(),
        np.asarray(sol["lam_x"], dtype=float).ravel(),
        b.lbw,
        b.ubw,
    )
    seeds = np.zeros((b.n_w, nu))
    seeds[b.idx_u[0], np.arange(nu)] = 1.0
    if "rev" not in b.cache:
        b.cache["rev"] = b.solver.reverse(nu)
    out = b.cache["rev"](
        x0=raw.w0,
        p=raw.p,
        lbx=b.lbw,
        ubx=b.ubw,
        lbg=b.lbg,
        ubg=b.ubg,
        lam_x0=raw.lam_x0,
        lam_g0=raw.lam_g0,
        out_x=sol["x"],
        out_f=sol["f"],
        out_g=sol["g"],
        out_lam_x=lam_x,
        out_lam_g=lam_g,
        out_lam_p=-grad,
        adj_x=seeds,
        adj_f=np.zeros((1, nu)),
        adj_g=np.zeros((b.lbg.size, nu)),
        adj_lam_x=np.zeros((b.n_w, nu)),
        adj_lam_g=np.zeros((b.lbg.size, nu)),
        adj_lam_p=np.zeros((b.n_p, nu)),
    )
    return np.asarray(out["adj_p"], dtype=float).reshape(b.n_p, nu).T


def policy_sensitivity(
    mpc: Any, s: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
) -> PolicySensitivity:
    """Solve eq. (14) and differentiate ``u_0*`` and ``V`` with respect to ``phi`` and ``s``.

    At degenerate points -- a weakly active constraint (zero multiplier) or active constraints
    whose gradients are linearly dependent -- ``u_0*`` need not be differentiable; the result
    is then the least-squares solution of the singular linearised KKT system, not a one-sided
    derivative. Check ``result`` for such points (e.g. several constraints pinning the same
    input) when exactness matters.

    Parameters
    ----------
    mpc : lgutils.mpc.MPC
    s, phi, u_prev, warm_start
        As in :meth:`lgutils.mpc.MPC.policy`.

    Returns
    -------
    PolicySensitivity
    """
    if mpc.solver_options.method == "qp":
        return qp.policy_sensitivity(mpc, s, phi, u_prev=u_prev)
    s, _, u_prev, phiv = mpc.check_inputs(s, None, u_prev, phi, "policy")
    res, raw = mpc.solve("policy", s, None, u_prev, phiv, warm_start)
    grad = lagrangian_grad_p(mpc, "policy", raw)
    jac = _action_jacobian(mpc, raw, grad)
    if not (np.all(np.isfinite(jac)) and np.all(np.isfinite(grad))):
        raise mpc.solve_error(
            "MPC sensitivity is not finite", "non_finite", s, None, phiv, res.iterations
        )
    J = split_parameters(mpc, "policy", jac)
    g = split_parameters(mpc, "policy", grad)
    return PolicySensitivity(
        result=res,
        d_action_d_phi=J["phi"].copy(),
        d_action_d_state=J["s"].copy(),
        d_value_d_phi=g["phi"].copy(),
        d_value_d_state=g["s"].copy(),
        d_action_d_u_prev=J["u_prev"].copy() if mpc.use_u_prev else None,
        phi_slices=dict(mpc.phi_slices),
    )


def q_sensitivity(
    mpc: Any, s: Any, a: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
) -> QSensitivity:
    """Solve eq. (13) with ``u_0 = a`` and return ``d Q / d(phi, s, a)``.

    The derivative is the gradient of the Lagrangian with respect to the parameters at the
    solution (paper ref. [58]; CasADi's ``lam_p`` output is its negative).
    """
    if mpc.solver_options.method == "qp":
        return qp.q_sensitivity(mpc, s, a, phi, u_prev=u_prev)
    s, a, u_prev, phiv = mpc.check_inputs(s, a, u_prev, phi, "q")
    res, raw = mpc.solve("q", s, a, u_prev, phiv, warm_start)
    grad = lagrangian_grad_p(mpc, "q", raw)
    if not np.all(np.isfinite(grad)):
        raise mpc.solve_error(
            "MPC sensitivity is not finite", "non_finite", s, a, phiv, res.iterations
        )
    g = split_parameters(mpc, "q", grad)
    return QSensitivity(
        result=res,
        d_q_d_phi=g["phi"].copy(),
        d_q_d_state=g["s"].copy(),
        d_q_d_action=g["a"].copy(),
        d_q_d_u_prev=g["u_prev"].copy() if mpc.use_u_prev else None,
        phi_slices=dict(mpc.phi_slices),
    )
