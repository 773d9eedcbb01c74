"""Case study B with an input bound: the MPC is no longer linear (beyond the paper).

The MPC of :mod:`lgutils.mpc_reinforce.model` with the actuator limit ``|u_k| <= u_max``:

    min_{u_0..u_{H-1}}  sum_{k<H} x_k^T Q x_k + u_k^T R u_k
    s.t.  x_{k+1} = A_phi x_k + B_phi u_k,  x_0 = s,  -u_max <= u_k <= u_max.

``u_{H-1}`` still plans to be 0 (no cost sees its effect), so the decision is
``U = (u_0, ..., u_{H-2})`` of size ``nu = (H - 1) m``. Eliminating the states ("condensing")
gives the box-constrained quadratic program

    min_U  U^T Hq U + 2 U^T Gq s   s.t.  |U| <= u_max,

with ``Hq = sum_k Gamma_k^T Q Gamma_k + I (x) R`` (positive definite) and
``Gq = sum_k Gamma_k^T Q A_phi^k``, where ``x_k = A_phi^k s + Gamma_k U``. The policy
``pi(s) = u_0*(s)`` is piecewise affine in ``s``: on each *active set* (which entries sit at a
bound) it is the solution of a linear system. With ``nu = 4`` there are ``3^4 = 81`` possible
active sets, so the program is solved exactly, batched over states, by trying all of them and
keeping the one that satisfies the optimality (KKT) conditions.

Its sensitivity is the active-set one, the same that :meth:`lgutils.mpc.MPC.policy_sensitivity`
computes implicitly: with the free entries ``f`` and the active ones fixed at their bounds,
``Hq_ff U_f = -(Hq_fa U_a + Gq_f s)``, so

    d u_0* = -lambda^T (dHq U + dGq s),   lambda = embed(Hq_ff^{-1}) e_0,

(``lambda = 0`` when ``u_0`` itself is at a bound: then the action does not move). ``dHq`` and
``dGq`` come from forward-mode differentiation of the condensing. The derivative is exact
wherever the active set is locally constant (strict complementarity).

The environment applies the actuator limit too: the sampled action ``a = u_0* + sigma_a eps`` is
clipped to ``[-u_max, u_max]`` before it acts and is charged (as
:class:`lgutils.core.envs.LinearQuadraticEnv` does with ``action_low``/``action_high``); REINFORCE's
log-probability uses the sampled, unclipped action.

Shapes as in :mod:`lgutils.mpc_reinforce.model`: ``r`` runs (models), ``N`` states or episodes,
``n = 4`` states, ``m = 1`` input, ``n_phi = 20``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from lgutils.core import lqr
from lgutils.core.validate import (
    as_array,
    as_vector,
    check_in_open_interval,
    check_positive_int,
)
from lgutils.mpc_reinforce.model import CaseB, case_b, check_models, check_weights
from lgutils.mpc_reinforce.rollout import Batch, play_episodes

__all__ = [
    "condense",
    "condense_jacobian",
    "active_set_patterns",
    "BoxQPSolution",
    "solve_box_qp",
    "bounded_action_jacobian",
    "finite_difference_bounded_action_jacobian",
    "bounded_episodes",
    "bounded_gradient",
    "bounded_rollout",
    "bounded_reference_returns",
]

_KKT_TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# condensing
# ---------------------------------------------------------------------------------------------
def _powers_and_gammas(A: np.ndarray, B: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Phi_k = A^k (r, H, n, n) and Gamma_k (r, H, n, nu), k = 0..H-1, nu = (H - 1) m."""
    r, n, m = B.shape
    nu = (H - 1) * m
    Phi = np.empty((r, H, n, n))
    Phi[:, 0] = np.eye(n)
    for k in range(1, H):
        Phi[:, k] = A @ Phi[:, k - 1]
    Gam = np.zeros((r, H, n, nu))
    for k in range(1, H):
        for j in range(k):
            Gam[:, k, :, j * m : (j + 1) * m] = Phi[:, k - 1 - j] @ B
    return Phi, Gam


def _condense(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, H: int
) -> tuple[np.ndarray, np.ndarray]:
    r, n, m = B.shape
    Phi, Gam = _powers_and_gammas(A, B, H)
    GamT = np.swapaxes(Gam, -1, -2)
    Hq = np.kron(np.eye(H - 1), R) + np.sum(GamT @ Q @ Gam, axis=1)
    Gq = np.sum(GamT @ Q @ Phi, axis=1)
    return 0.5 * (Hq + np.swapaxes(Hq, -1, -2)), Gq


def _condense_jacobian(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, H: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hq, Gq and their derivatives along every parameter.

    dHq has shape (r, n_phi, nu, nu), dGq (r, n_phi, nu, n).
    """
    r, n, m = B.shape
    nu = (H - 1) * m
    npar = n * n + n * m
    eye = np.eye(npar)
    dA = eye[:, : n * n].reshape(npar, n, n)
    dB = eye[:, n * n :].reshape(npar, n, m)
    Phi, Gam = _powers_and_gammas(A, B, H)
    dPhi = np.zeros((r, npar, H, n, n))
    for k in range(1, H):
        dPhi[:, :, k] = dA @ Phi[:, None, k - 1] + A[:, None] @ dPhi[:, :, k - 1]
    dGam = np.zeros((r, npar, H, n, nu))
    for k in range(1, H):
        for j in range(k):
            dGam[:, :, k, :, j * m : (j + 1) * m] = (
                dPhi[:, :, k - 1 - j] @ B[:, None] + Phi[:, None, k - 1 - j] @ dB
            )
    GamT = np.swapaxes(Gam, -1, -2)[:, None]  # (r, 1, H, nu, n)
    dGamT = np.swapaxes(dGam, -1, -2)
    dHq = np.sum(dGamT @ Q @ Gam[:, None] + GamT @ Q @ dGam, axis=2)
    dGq = np.sum(dGamT @ Q @ Phi[:, None] + GamT @ Q @ dPhi, axis=2)
    Hq, Gq = _condense(A, B, Q, R, H)
    return Hq, Gq, 0.5 * (dHq + np.swapaxes(dHq, -1, -2)), dGq


def condense(
    A_phi: np.ndarray, B_phi: np.ndarray, Q: np.ndarray, R: np.ndarray, horizon: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """The condensed quadratic program of the MPC: cost ``U^T Hq U + 2 U^T Gq s + const``.

    Parameters
    ----------
    A_phi : array_like, shape (n, n) or (r, n, n)
        Model state matrix (one model or r models).
    B_phi : array_like, shape (n, m) or (r, n, m)
        Model input matrix.
    Q, R : array_like, shapes (n, n) and (m, m)
        Stage-cost weights (PSD and PD).
    horizon : int
        MPC horizon H >= 2.

    Returns
    -------
    Hq : numpy.ndarray, shape (nu, nu) or (r, nu, nu), nu = (H - 1) m
        Positive definite.
    Gq : numpy.ndarray, shape (nu, n) or (r, nu, n)
    """
    A, B, batched = check_models(A_phi, B_phi)
    Qm, Rm = check_weights(Q, R, A.shape[-1], B.shape[-1])
    H = check_positive_int("horizon", horizon, minimum=2)
    Hq, Gq = _condense(A, B, Qm, Rm, H)
    return (Hq, Gq) if batched else (Hq[0], Gq[0])


def condense_jacobian(
    A_phi: np.ndarray, B_phi: np.ndarray, Q: np.ndarray, R: np.ndarray, horizon: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`condense` and its derivatives with respect to ``phi`` (forward mode).

    Returns
    -------
    Hq, Gq
        As in :func:`condense` (batched: leading r).
    dHq : numpy.ndarray, shape (n_phi, nu, nu) or (r, n_phi, nu, nu)
    dGq : numpy.ndarray, shape (n_phi, nu, n) or (r, n_phi, nu, n)
        ``dHq[p] = d Hq / d phi_p`` with ``phi = [vec(A_phi); vec(B_phi)]``.
    """
    A, B, batched = check_models(A_phi, B_phi)
    Qm, Rm = check_weights(Q, R, A.shape[-1], B.shape[-1])
    H = check_positive_int("horizon", horizon, minimum=2)
    out = _condense_jacobian(A, B, Qm, Rm, H)
    return out if batched else tuple(o[0] for o in out)


# ---------------------------------------------------------------------------------------------
# the box-constrained QP by enumeration of active sets
# ---------------------------------------------------------------------------------------------
def active_set_patterns(nu: int) -> np.ndarray:
    """All ``3^nu`` active sets of a box: entries -1 (at the lower bound), 0 (free), +1 (upper).

    Returns
    -------
    numpy.ndarray of int, shape (3^nu, nu)
        The all-free pattern first.
    """
    nu = check_positive_int("nu", nu)
    if nu > 8:
        raise ValueError(f"nu must be at most 8 for enumeration (3^nu patterns), got {nu}")
    pats = np.array(list(itertools.product((0, -1, 1), repeat=nu)), dtype=int)
    return pats


class _Tables(NamedTuple):
    pats: np.ndarray  # (P, nu)
    Minv: np.ndarray  # (r, P, nu, nu): embedded inverses of Hq_ff
    c: np.ndarray  # (r, P, nu): U_p = c_p - Nmat_p s
    Nmat: np.ndarray  # (r, P, nu, n)
    gc: np.ndarray  # (r, P, nu): gradient Hq U_p + Gq s = gc_p - gN_p s
    gN: np.ndarray  # (r, P, nu, n)
    hdiag: np.ndarray  # (r, nu): diagonal of Hq


def _tables(Hq: np.ndarray, Gq: np.ndarray, u_max: float) -> _Tables:
    r, nu, n = Gq.shape
    pats = active_set_patterns(nu)
    P = pats.shape[0]
    Minv = np.zeros((r, P, nu, nu))
    for p, pat in enumerate(pats):
        f = np.flatnonzero(pat == 0)
        if f.size:
            Minv[:, p][:, f[:, None], f[None, :]] = np.linalg.inv(Hq[:, f[:, None], f[None, :]])
    a = pats * u_max  # (P, nu)
    HA = np.einsum("rij,pj->rpi", Hq, a)  # Hq a_p
    c = a[None] - np.einsum("rpij,rpj->rpi", Minv, HA)
    Nmat = Minv @ Gq[:, None]
    gc = np.einsum("rij,rpj->rpi", Hq, c)
    gN = Hq[:, None] @ Nmat - Gq[:, None]
    return _Tables(pats, Minv, c, Nmat, gc, gN, np.diagonal(Hq, axis1=-2, axis2=-1).copy())


class BoxQPSolution(NamedTuple):
    """Solutions of the condensed MPC at a batch of states.

    Attributes
    ----------
    U : (r, N, nu)
        Optimal ``(u_0, ..., u_{H-2})`` (``u_{H-1} = 0``).
    pattern : (r, N) int
        Index of the active set in :func:`active_set_patterns`.
    lam : (r, N, nu, m)
        ``embed(Hq_ff^{-1})[:, :m]``: ``d u_0* = -lam^T (dHq U + dGq s)``.
    kkt_violation : (r, N)
        Largest violation of the optimality conditions by the chosen active set (0 when exact).
    """

    U: np.ndarray
    pattern: np.ndarray
    lam: np.ndarray
    kkt_violation: np.ndarray


def _violation(pats: np.ndarray, U: np.ndarray, g: np.ndarray, u_max: float) -> np.ndarray:
    """Largest KKT violation of candidate solutions (pattern entries broadcast against U, g)."""
    scale = 1.0 + np.abs(g).max(axis=-1, keepdims=True)
    free_viol = np.where(pats == 0, np.abs(U) - u_max, 0.0) / max(u_max, 1.0)
    # at the upper bound the cost must not decrease inwards (g <= 0), at the lower g >= 0
    dual_viol = np.where(pats == 1, g, np.where(pats == -1, -g, 0.0)) / scale
    return np.maximum(np.maximum(free_viol.max(axis=-1), dual_viol.max(axis=-1)), 0.0)


def _enumerate(tab: _Tables, X: np.ndarray, u_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Best pattern index and its violation (r, N), trying all patterns at once (the fallback)."""
    U = tab.c[:, :, None, :] - np.einsum("rpin,rNn->rpNi", tab.Nmat, X)  # (r, P, N, nu)
    g = tab.gc[:, :, None, :] - np.einsum("rpin,rNn->rpNi", tab.gN, X)
    viol = _violation(tab.pats[None, :, None, :], U, g, u_max)  # (r, P, N)
    n_active = np.abs(tab.pats).sum(-1)[None, :, None]
    best = np.argmin(viol + _KKT_TOL * n_active, axis=1)  # ties: fewest active bounds
    return best, np.take_along_axis(viol, best[:, None, :], axis=1)[:, 0]


def _gather(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """table (r, P, ...) at per-state pattern indices idx (r, N) -> (r, N, ...)."""
    r, P = table.shape[:2]
    flat = idx + P * np.arange(r)[:, None]
    return np.take(table.reshape(r * P, *table.shape[2:]), flat, axis=0)


def _evaluate(tab: _Tables, idx: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    U = _gather(tab.c, idx) - np.einsum("rNin,rNn->rNi", _gather(tab.Nmat, idx), X)
    g = _gather(tab.gc, idx) - np.einsum("rNin,rNn->rNi", _gather(tab.gN, idx), X)
    return U, g


def _solve(tab: _Tables, X: np.ndarray, u_max: float, m: int, max_iter: int = 12) -> BoxQPSolution:
    """X (r, N, n) -> the solution at every state.

    A primal-dual active-set iteration (guess the active set from the current point and
    multipliers, solve on it, repeat; usually 1-3 passes) with the precomputed tables; states
    where it does not reach the KKT conditions fall back to trying every active set.
    """
    r, N, _ = X.shape
    nu = tab.c.shape[-1]
    weights = 3 ** np.arange(nu - 1, -1, -1)  # pattern index of itertools.product((0, -1, 1))
    code = np.zeros((r, N, nu), dtype=int)  # 0 free, 1 lower, 2 upper
    step = 1.0 / tab.hdiag[:, None, :]  # 1 / Hq_ii: a Newton-like scaling of the multiplier
    for _ in range(max_iter):
        idx = code @ weights
        U, g = _evaluate(tab, idx, X)
        trial = U - step * g  # the multiplier of a bound is -g
        new = np.where(trial > u_max, 2, np.where(trial < -u_max, 1, 0))
        if np.array_equal(new, code):
            break
        code = new
    idx = code @ weights
    U, g = _evaluate(tab, idx, X)
    viol = _violation(tab.pats[idx], U, g, u_max)
    bad = viol > 1e3 * _KKT_TOL
    if bad.any():
        for j in np.flatnonzero(bad.any(axis=1)):
            sub = _Tables(tab.pats, *(t[j : j + 1] for t in tab[1:]))
            best, v = _enumerate(sub, X[j : j + 1, bad[j]], u_max)
            idx[j, bad[j]], viol[j, bad[j]] = best[0], v[0]
        U, g = _evaluate(tab, idx, X)
    lam = _gather(tab.Minv[..., :m], idx)
    return BoxQPSolution(U, idx, lam, viol)


def solve_box_qp(
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    X: np.ndarray,
    u_max: float,
    horizon: int = 5,
) -> BoxQPSolution:
    """Solve the input-bounded MPC exactly at many states, for one or r models.

    Every active set is tried; the one that satisfies the KKT conditions (primal feasibility of
    the free entries, the right sign of the gradient at the bounds) is kept. The problem is
    strictly convex, so that active set gives the unique optimum (ties at weakly active bounds
    give the same ``U``).

    Parameters
    ----------
    A_phi, B_phi, Q, R, horizon
        As in :func:`condense` (r models, or one).
    X : array_like, shape (r, N, n), or (N, n) with one model
        States.
    u_max : float
        The bound ``|u_k| <= u_max`` (> 0).

    Returns
    -------
    BoxQPSolution
        With a leading run axis of size 1 for one model.
    """
    A, B, batched = check_models(A_phi, B_phi)
    r, n, m = B.shape
    Qm, Rm = check_weights(Q, R, n, m)
    H = check_positive_int("horizon", horizon, minimum=2)
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    X = as_array("X", X, (r, None, n) if batched else (None, n))
    if not batched:
        X = X[None]
    Hq, Gq = _condense(A, B, Qm, Rm, H)
    return _solve(_tables(Hq, Gq, u_max), X, u_max, m)


def bounded_action_jacobian(
    s: np.ndarray,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    u_max: float,
    horizon: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``u_0*(s; phi)`` of the input-bounded MPC and its active-set derivative ``d u_0*/d phi``.

    Parameters
    ----------
    s : array_like, shape (n,)
    A_phi, B_phi, Q, R, u_max, horizon
        One model, as in :func:`solve_box_qp`.

    Returns
    -------
    u : numpy.ndarray, shape (m,)
    du_dphi : numpy.ndarray, shape (m, n_phi)
        Zero when ``u_0`` is at a bound.
    active : numpy.ndarray of int, shape (nu,)
        The active set (-1 lower, 0 free, +1 upper) of ``(u_0, ..., u_{H-2})``.
    """
    A, B, _ = check_models(A_phi, B_phi)
    n, m = B.shape[1:]
    s = as_vector("s", s, n)
    Qm, Rm = check_weights(Q, R, n, m)
    H = check_positive_int("horizon", horizon, minimum=2)
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    Hq, Gq, dHq, dGq = _condense_jacobian(A, B, Qm, Rm, H)
    tab = _tables(Hq, Gq, u_max)
    sol = _solve(tab, s[None, None], u_max, m)
    U, lam = sol.U[0, 0], sol.lam[0, 0]  # (nu,), (nu, m)
    rhs = dHq[0] @ U + dGq[0] @ s  # (n_phi, nu)
    du = -(rhs @ lam).T  # (m, n_phi)
    return U[:m], du, tab.pats[sol.pattern[0, 0]]


def finite_difference_bounded_action_jacobian(
    s: np.ndarray,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    u_max: float,
    horizon: int = 5,
    step: float = 1e-6,
) -> np.ndarray:
    """``d u_0* / d phi`` of the input-bounded MPC by central finite differences of the solver.

    Meaningful where the active set does not change within ``+-step`` of ``phi``.

    Parameters
    ----------
    s, A_phi, B_phi, Q, R, u_max, horizon
        As in :func:`bounded_action_jacobian`.
    step : float
        Perturbation h > 0 of each parameter.

    Returns
    -------
    numpy.ndarray, shape (m, n_phi)
    """
    A, B, _ = check_models(A_phi, B_phi)
    n, m = B.shape[1:]
    s = as_vector("s", s, n)
    Qm, Rm = check_weights(Q, R, n, m)
    H = check_positive_int("horizon", horizon, minimum=2)
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    h = check_in_open_interval("step", step, 0.0, np.inf)
    phi = np.concatenate([A[0].ravel(), B[0].ravel()])
    P = np.concatenate([phi + h * np.eye(phi.size), phi - h * np.eye(phi.size)])
    Ap, Bp = P[:, : n * n].reshape(-1, n, n), P[:, n * n :].reshape(-1, n, m)
    Hq, Gq = _condense(Ap, Bp, Qm, Rm, H)
    X = np.broadcast_to(s, (P.shape[0], 1, n))
    u0 = _solve(_tables(Hq, Gq, u_max), X, u_max, m).U[:, 0, :m]  # (2 n_phi, m)
    k = phi.size
    return ((u0[:k] - u0[k:]) / (2.0 * h)).T


# ---------------------------------------------------------------------------------------------
# episodes and the REINFORCE gradient
# ---------------------------------------------------------------------------------------------
def bounded_episodes(
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    env: CaseB,
    u_max: float,
    horizon: int,
    action_std: float,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
    with_jacobian: bool,
) -> tuple[Batch, dict[str, np.ndarray | None]]:
    """Episodes of the input-bounded MPC on ``env``, and the tape its REINFORCE gradient needs.

    :func:`bounded_rollout` without the checks, for the learners' loops: the closed loop of
    :func:`lgutils.mpc_reinforce.rollout.play_episodes` with the box-QP solution as the policy.

    Parameters
    ----------
    A_phi, B_phi : numpy.ndarray, shapes (r, n, n) and (r, n, m)
        One model per run.
    env : CaseB
        The true system.
    u_max, horizon, action_std
        The input bound (> 0), the MPC horizon H >= 2, the exploration std sigma_a >= 0.
    action_noise, process_noise : numpy.ndarray, shapes (r, N, T, m) and (r, N, T, n)
        Standard normal numbers.
    with_jacobian : bool
        Whether to differentiate the condensed program (for :func:`bounded_gradient`).

    Returns
    -------
    batch : Batch
    tape : dict
        ``"U"`` (r, N, T, nu) the plans, ``"lam"`` (r, N, T, nu, m) the sensitivity rows of
        :class:`BoxQPSolution`, ``"kkt_violation"`` (r, N, T), and ``"dHq"``, ``"dGq"`` of
        :func:`condense_jacobian` (None without ``with_jacobian``).
    """
    r, N, T, m = action_noise.shape
    if with_jacobian:
        Hq, Gq, dHq, dGq = _condense_jacobian(A_phi, B_phi, env.Q, env.R, horizon)
    else:
        Hq, Gq = _condense(A_phi, B_phi, env.Q, env.R, horizon)
        dHq = dGq = None
    tab = _tables(Hq, Gq, u_max)
    nu = Hq.shape[-1]
    plans = np.empty((r, N, T, nu))
    lams = np.empty((r, N, T, nu, m))
    viol = np.zeros((r, N, T))

    def policy(x: np.ndarray, t: int) -> np.ndarray:
        sol = _solve(tab, x, u_max, m)
        plans[:, :, t], lams[:, :, t], viol[:, :, t] = sol.U, sol.lam, sol.kkt_violation
        return sol.U[..., :m]

    batch = play_episodes(policy, env, action_std, action_noise, process_noise, u_max)
    tape = {"U": plans, "lam": lams, "dHq": dHq, "dGq": dGq, "kkt_violation": viol}
    return batch, tape


def bounded_gradient(
    batch: Batch, returns_normalised: np.ndarray, tape: dict, action_std: float
) -> np.ndarray:
    """Gradient (r, n_phi) of the REINFORCE surrogate loss with the input-bounded MPC policy.

    ``L = -(1/N) sum_i G_i sum_t log pi(a_it | s_it)`` with ``d log pi / d u = (a - u) /
    sigma_a^2`` and the active-set sensitivity ``d u_0 = -lam^T (dHq U + dGq s)``. No checks:
    ``batch`` and ``tape`` from :func:`bounded_episodes` with ``with_jacobian=True``,
    ``returns_normalised`` (r, N), ``action_std`` > 0.
    """
    Gn = returns_normalised
    N = Gn.shape[1]
    T = batch.means.shape[2]
    score = (batch.actions - batch.means) / action_std**2 * Gn[:, :, None, None] / N  # (r,N,T,m)
    # L = -sum w log pi,  d log pi = score du0,  du0 = -lam^T (dHq U + dGq s)
    #   => dL = sum_s (lam score)^T (dHq U + dGq s)
    v = np.einsum("rNtim,rNtm->rNti", tape["lam"], score)  # (r, N, T, nu)
    W1 = np.einsum("rNti,rNtj->rij", v, tape["U"])
    W2 = np.einsum("rNti,rNtj->rij", v, batch.states[:, :, :T])
    return np.einsum("rpij,rij->rp", tape["dHq"], W1) + np.einsum("rpij,rij->rp", tape["dGq"], W2)


def bounded_rollout(
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    u_max: float,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
    action_std: float = 0.01,
    horizon: int = 5,
) -> Batch:
    """Episodes of the input-bounded MPC policy with exploration on the true case-B system.

    ``a_t = u_0*(x_t) + sigma_a eps_t`` is clipped to ``[-u_max, u_max]`` before it acts and is
    charged; ``Batch.actions`` holds the unclipped samples.

    Parameters
    ----------
    A_phi, B_phi : array_like, shapes (r, n, n) and (r, n, m)
        One model per run.
    u_max : float
        Input bound (> 0).
    action_noise : array_like, shape (r, N, T, m)
        Standard normal exploration noise.
    process_noise : array_like, shape (r, N, T, n)
        Standard normal process noise.
    action_std : float
        sigma_a >= 0.
    horizon : int
        MPC horizon H >= 2.

    Returns
    -------
    Batch
    """
    env = case_b()
    A = as_array("A_phi", A_phi, (None, 4, 4))
    r = A.shape[0]
    B = as_array("B_phi", B_phi, (r, 4, 1))
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    action_noise = as_array("action_noise", action_noise, (r, None, None, 1))
    process_noise = as_array("process_noise", process_noise, (r, *action_noise.shape[1:3], 4))
    action_std = check_in_open_interval("action_std", action_std, -1e-300, np.inf)
    H = check_positive_int("horizon", horizon, minimum=2)
    batch, _ = bounded_episodes(A, B, env, u_max, H, action_std, action_noise, process_noise, False)
    return batch


def bounded_reference_returns(
    u_max: float, n_episodes: int = 4096, seed: int = 0, action_std: float = 0.01, horizon: int = 5
) -> dict[str, float]:
    """Monte Carlo returns of two reference policies under the input bound (no closed form).

    - ``"J_true_model_mpc"``: the input-bounded MPC with the true model (horizon ``horizon``);
    - ``"J_clipped_lqr"``: the infinite-horizon LQR gain with its action clipped to the bound.

    Both play with the exploration noise and the environment's clipping, over the 10-step
    episodes of case study B, on common random numbers.

    Returns
    -------
    dict
        The two mean returns and ``"stderr"``, the larger of their standard errors.
    """
    env = case_b()
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    N = check_positive_int("n_episodes", n_episodes, minimum=2)
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))
    T = env.horizon
    z = rng.standard_normal((1, N, T, 5))
    eps, w = z[..., :1], z[..., 1:]
    batch = bounded_rollout(env.A[None], env.B[None], u_max, eps, w, action_std, horizon)
    G_mpc = batch.rewards.sum(axis=-1)[0]
    _, K = lqr.dare(env.A, env.B, env.Q, env.R)
    KT = -K.T  # the LQR policy u = -K x, clipped by the environment
    lqr_batch = play_episodes(lambda x, t: x @ KT, env, action_std, eps, w, u_max)
    G_lqr = lqr_batch.rewards.sum(axis=-1)[0]
    se = max(G_mpc.std(ddof=1), G_lqr.std(ddof=1)) / np.sqrt(N)
    return {
        "J_true_model_mpc": float(G_mpc.mean()),
        "J_clipped_lqr": float(G_lqr.mean()),
        "stderr": float(se),
    }
