"""Case study B's policy (paper Sec. V.B, eq. 14): the MPC with a learnable linear model.

The MPC has the prediction model ``x_{k+1} = A_phi x_k + B_phi u_k``, horizon ``H = 5``, stage
cost ``x^T Q x + u^T R u`` and no terminal cost or constraints. Without constraints it is a
linear feedback: dynamic programming on the model (a finite Riccati recursion with ``P_H = 0``)
gives

    K_t = (R + B_phi^T P_{t+1} B_phi)^{-1} B_phi^T P_{t+1} A_phi,
    P_t = Q + A_phi^T P_{t+1} (A_phi - B_phi K_t),        u_0* = -K_0(phi) s,

so ``u_{H-1} = 0`` (no cost sees its effect) and ``pi_phi(s) = -K_0(phi) s``. This module
evaluates ``K_0``, its Jacobian ``d K_0 / d phi`` (forward-mode differentiation of the
recursion) and its vector-Jacobian product (the adjoint sweep), batched over independent runs;
the same MPC as a general :class:`lgutils.mpc.MPC` is :func:`case_b_mpc`.

Shapes: ``n`` states, ``m`` inputs, ``r`` models (runs); ``phi`` is the flat vector
``[vec(A_phi); vec(B_phi)]`` (row-major), ``n_phi = n^2 + n m`` -- the order of
:meth:`lgutils.mpc.MPC.flatten_phi` for ``params={"A": (n, n), "B": (n, m)}``.

The functions without the ``mpc_`` prefix (:func:`check_models`, :func:`riccati_gains`,
:func:`riccati_vjp`, ...) are the unchecked, batched building blocks that the learners of
:mod:`lgutils.mpc_reinforce.reinforce`, :mod:`~lgutils.mpc_reinforce.bounded` and
:mod:`~lgutils.mpc_reinforce.qlearning` call in their inner loops, after checking their inputs
once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lgutils.core.envs import CASE_STUDY_B
from lgutils.core.validate import (
    as_array,
    as_matrix,
    as_vector,
    check_in_open_interval,
    check_pd,
    check_positive_int,
    check_psd,
)
from lgutils.mpc import MPC, Bounds, Cost, Model, SolverOptions

__all__ = [
    "CaseB",
    "case_b",
    "split_phi",
    "join_phi",
    "check_models",
    "check_weights",
    "check_finite",
    "riccati_gains",
    "riccati_vjp",
    "mpc_gain",
    "mpc_gain_jacobian",
    "mpc_gain_vjp",
    "mpc_action_jacobian",
    "finite_difference_action_jacobian",
    "mpc_plan",
    "case_b_mpc",
]


class CaseB(NamedTuple):
    """The environment of case study B as arrays (see :data:`lgutils.core.envs.CASE_STUDY_B`).

    Attributes
    ----------
    A : (n, n) true state matrix.      B : (n, m) true input matrix.
    Q : (n, n) state weight.           R : (m, m) input weight.
    x0 : (n,) initial state of every episode.
    noise_std : float, process-noise standard deviation (per state).
    horizon : int, episode length T (steps).
    """

    A: np.ndarray
    B: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    x0: np.ndarray
    noise_std: float
    horizon: int


def case_b() -> CaseB:
    """The case-study-B system: the numbers of :data:`lgutils.core.envs.CASE_STUDY_B` as arrays."""
    c = CASE_STUDY_B
    return CaseB(
        A=np.asarray(c["A"], dtype=float),
        B=np.asarray(c["B"], dtype=float),
        Q=np.asarray(c["Q"], dtype=float),
        R=np.asarray(c["R"], dtype=float),
        x0=np.asarray(c["x0"], dtype=float),
        noise_std=float(c["noise_std"]),
        horizon=int(c["horizon"]),
    )


# ---------------------------------------------------------------------------------------------
# parameters and the checks of the public functions
# ---------------------------------------------------------------------------------------------
def split_phi(phi: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Split flat parameters ``phi`` of shape ``(..., n^2 + n m)`` into ``A_phi`` and ``B_phi``.

    Returns
    -------
    A_phi : numpy.ndarray, shape (..., n, n)
    B_phi : numpy.ndarray, shape (..., n, m)
    """
    n = check_positive_int("n", n)
    m = check_positive_int("m", m)
    phi = as_array("phi", phi)
    if phi.ndim < 1 or phi.shape[-1] != n * n + n * m:
        raise ValueError(f"phi must have shape (..., {n * n + n * m}), got shape {phi.shape}")
    lead = phi.shape[:-1]
    return phi[..., : n * n].reshape((*lead, n, n)), phi[..., n * n :].reshape((*lead, n, m))


def join_phi(A_phi: np.ndarray, B_phi: np.ndarray) -> np.ndarray:
    """Flatten ``A_phi (..., n, n)`` and ``B_phi (..., n, m)`` into ``phi (..., n^2 + n m)``."""
    A_phi = as_array("A_phi", A_phi)
    B_phi = as_array("B_phi", B_phi)
    if A_phi.ndim < 2 or A_phi.shape[-1] != A_phi.shape[-2]:
        raise ValueError(f"A_phi must have shape (..., n, n), got shape {A_phi.shape}")
    if B_phi.shape[:-1] != A_phi.shape[:-1]:
        raise ValueError(
            f"B_phi must have shape {(*A_phi.shape[:-1], 'm')} to match A_phi, got {B_phi.shape}"
        )
    lead = A_phi.shape[:-2]
    return np.concatenate([A_phi.reshape((*lead, -1)), B_phi.reshape((*lead, -1))], axis=-1)


def check_models(A_phi: object, B_phi: object) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate one model or a batch of models; return them batched, and whether they were.

    Parameters
    ----------
    A_phi : array_like, shape (n, n) or (r, n, n)
        Model state matrix (one model or a batch of r models).
    B_phi : array_like, shape (n, m) or (r, n, m)
        Model input matrix, batched like ``A_phi``.

    Returns
    -------
    A : numpy.ndarray, shape (r, n, n)
    B : numpy.ndarray, shape (r, n, m)
        With ``r = 1`` for one model.
    batched : bool
        Whether ``A_phi`` had a leading batch axis (so results keep it).

    Raises
    ------
    ValueError
        Naming ``A_phi`` or ``B_phi`` when a shape does not fit or an entry is not finite.
    """
    A_arr = as_array("A_phi", A_phi)
    batched = A_arr.ndim == 3
    if not batched:
        A_arr = as_matrix("A_phi", A_arr)[None]
    n = A_arr.shape[-1]
    A_arr = as_array("A_phi", A_arr, (None, n, n))
    B_arr = as_array("B_phi", B_phi)
    if not batched:
        B_arr = as_matrix("B_phi", B_arr, n, None)[None]
    B_arr = as_array("B_phi", B_arr, (A_arr.shape[0], n, None))
    return A_arr, B_arr, batched


def check_weights(Q: object, R: object, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The stage-cost weights checked: ``Q`` (n, n) symmetric PSD, ``R`` (m, m) symmetric PD.

    Returns
    -------
    (Q, R) : float arrays of shapes (n, n) and (m, m).
    """
    return check_psd("Q", Q, n), check_pd("R", R, m)


def check_finite(what: str, *arrays: np.ndarray) -> None:
    """Raise a ValueError naming ``what`` if an array of the recursion is not finite.

    The Riccati recursion overflows only for model entries far too large for float64; the
    message says so.
    """
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError(
            f"{what} is not finite: the Riccati recursion overflowed for these A_phi, B_phi "
            "(entries too large for float64); pass models with moderate entries"
        )


# ---------------------------------------------------------------------------------------------
# the MPC policy in closed form
# ---------------------------------------------------------------------------------------------
def riccati_gains(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, H: int
) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """The gain ``K_0`` of the H-step Riccati recursion with ``P_H = 0``, and its tape.

    The unchecked, batched kernel of :func:`mpc_gain` (for loops that checked their inputs once).

    Parameters
    ----------
    A : numpy.ndarray, shape (r, n, n)
    B : numpy.ndarray, shape (r, n, m)
        The r models.
    Q, R : numpy.ndarray, shapes (n, n) and (m, m)
        Checked stage-cost weights.
    H : int
        Horizon (number of Riccati steps), >= 1.

    Returns
    -------
    K : numpy.ndarray, shape (r, m, n)
        ``K_0``: the MPC's action is ``u_0* = -K_0 s``.
    tape : list of H tuples ``(P_{k+1}, K_k, S_k, A - B K_k)``
        One per iteration, from ``k = H - 1`` down to ``k = 0`` (so ``tape[-1][1]`` is ``K_0``
        and ``tape[H - 1 - k]`` holds ``P_{k+1}`` and ``K_k``), with
        ``S_k = R + B^T P_{k+1} B``: what :func:`riccati_vjp` and the Q-function of
        :mod:`lgutils.mpc_reinforce.qlearning` need.
    """
    r, n, m = B.shape
    P = np.zeros((r, n, n))
    BT = np.swapaxes(B, -1, -2)
    AT = np.swapaxes(A, -1, -2)
    K = np.zeros((r, m, n))
    tape = []
    for _ in range(H):
        PB = P @ B
        S = R + BT @ PB
        K = np.linalg.solve(S, np.swapaxes(PB, -1, -2) @ A)
        Acl = A - B @ K
        tape.append((P, K, S, Acl))
        P = Q + AT @ P @ Acl
        P = 0.5 * (P + np.swapaxes(P, -1, -2))
    return K, tape


def _gain(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, H: int) -> np.ndarray:
    return riccati_gains(A, B, Q, R, H)[0]


def _sym(X: np.ndarray) -> np.ndarray:
    return 0.5 * (X + np.swapaxes(X, -1, -2))


def riccati_vjp(
    A: np.ndarray, B: np.ndarray, tape: list[tuple[np.ndarray, ...]], gK: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reverse mode through the recursion: the gradient of ``<gK, K_0>`` w.r.t. A and B.

    The unchecked, batched kernel of :func:`mpc_gain_vjp`: ``A`` (r, n, n), ``B`` (r, n, m),
    ``tape`` from :func:`riccati_gains` on the same models, the cotangent ``gK`` (r, m, n);
    returns ``(gA, gB)`` of shapes (r, n, n) and (r, n, m).

    Last iteration, K = S^{-1} G with S = R + B^T P B, G = B^T P A:
    ``bar_G = S^{-1} bar_K``, ``bar_S = -bar_G K^T``. Earlier iterations enter only through
    ``P_out = Q + A_K^T P A_K + K^T R K`` (Joseph form, stationary in K at the optimum), so for a
    symmetric adjoint Y of P_out: ``bar_P = A_K Y A_K^T``, ``bar_A = 2 P A_K Y``,
    ``bar_B = -2 P A_K Y K^T``.
    """
    AT = np.swapaxes(A, -1, -2)
    BT = np.swapaxes(B, -1, -2)
    P, K, S, _ = tape[-1]
    bG = np.linalg.solve(S, gK)  # S symmetric
    bS = -bG @ np.swapaxes(K, -1, -2)
    PB = P @ B
    gA = PB @ bG
    gB = P @ A @ np.swapaxes(bG, -1, -2) + PB @ (bS + np.swapaxes(bS, -1, -2))
    Y = _sym(B @ bG @ AT + B @ bS @ BT)
    for P, K, _, Acl in reversed(tape[:-1]):
        PAY = P @ Acl @ Y
        gA = gA + 2.0 * PAY
        gB = gB - 2.0 * PAY @ np.swapaxes(K, -1, -2)
        Y = _sym(Acl @ Y @ np.swapaxes(Acl, -1, -2))
    return gA, gB


def _gain_jacobian(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, H: int
) -> tuple[np.ndarray, np.ndarray]:
    """K_0 and d K_0 / d phi by forward-mode differentiation of the recursion (all directions).

    Returns K (r, m, n) and dK (r, n_phi, m, n) (direction first).
    """
    r, n, m = B.shape
    npar = n * n + n * m
    # unit tangents of A and B, one per parameter (row-major, A first)
    eye = np.eye(npar)
    dA = eye[:, : n * n].reshape(npar, n, n)
    dB = eye[:, n * n :].reshape(npar, n, m)
    AT = np.swapaxes(A, -1, -2)
    BT = np.swapaxes(B, -1, -2)
    dAT = np.swapaxes(dA, -1, -2)
    dBT = np.swapaxes(dB, -1, -2)
    P = np.zeros((r, n, n))
    dP = np.zeros((r, npar, n, n))
    K = np.zeros((r, m, n))
    dK = np.zeros((r, npar, m, n))
    for _ in range(H):
        PA, PB = P @ A, P @ B
        S = R + BT @ PB  # (r, m, m)
        G = BT @ PA  # (r, m, n)
        K = np.linalg.solve(S, G)
        Pe = P[:, None]
        dS = dBT @ PB[:, None] + BT[:, None] @ dP @ B[:, None] + BT[:, None] @ Pe @ dB
        dG = dBT @ PA[:, None] + BT[:, None] @ dP @ A[:, None] + BT[:, None] @ Pe @ dA
        dK = np.linalg.solve(S[:, None], dG - dS @ K[:, None])
        Acl = A - B @ K
        dAcl = dA - dB @ K[:, None] - B[:, None] @ dK
        Pn = Q + AT @ P @ Acl
        dPn = dAT @ (P @ Acl)[:, None] + AT[:, None] @ dP @ Acl[:, None] + (AT @ P)[:, None] @ dAcl
        P = 0.5 * (Pn + np.swapaxes(Pn, -1, -2))
        dP = 0.5 * (dPn + np.swapaxes(dPn, -1, -2))
    return K, dK


def mpc_gain(
    A_phi: np.ndarray, B_phi: np.ndarray, Q: np.ndarray, R: np.ndarray, horizon: int = 5
) -> np.ndarray:
    """Gain of the unconstrained MPC with model ``(A_phi, B_phi)``: ``u_0* = -K s``.

    The MPC minimises ``sum_{k<H} x_k^T Q x_k + u_k^T R u_k`` over ``u_0..u_{H-1}`` subject to
    ``x_{k+1} = A_phi x_k + B_phi u_k``, ``x_0 = s`` (no terminal cost); ``K = K_0`` of the
    Riccati recursion with ``P_H = 0``. Defined for every model because ``R`` is positive
    definite.

    Parameters
    ----------
    A_phi : array_like, shape (n, n) or (r, n, n)
        Model state matrix (one model or a batch of r models).
    B_phi : array_like, shape (n, m) or (r, n, m)
        Model input matrix.
    Q : array_like, shape (n, n)
        State weight, symmetric PSD.
    R : array_like, shape (m, m)
        Input weight, symmetric PD.
    horizon : int, default 5
        Prediction horizon H (number of planned inputs).

    Returns
    -------
    numpy.ndarray, shape (m, n) or (r, m, n)
    """
    A, B, batched = check_models(A_phi, B_phi)
    Qm, Rm = check_weights(Q, R, A.shape[-1], B.shape[-1])
    K = _gain(A, B, Qm, Rm, check_positive_int("horizon", horizon))
    check_finite("the gain K", K)
    return K if batched else K[0]


def mpc_gain_jacobian(
    A_phi: np.ndarray, B_phi: np.ndarray, Q: np.ndarray, R: np.ndarray, horizon: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """The MPC gain ``K`` and its Jacobian ``d K / d phi`` in closed form.

    Forward-mode differentiation of the Riccati recursion of :func:`mpc_gain`, all
    ``n_phi = n^2 + n m`` directions at once (vectorised over models and directions).

    Parameters
    ----------
    A_phi, B_phi, Q, R, horizon
        As in :func:`mpc_gain`.

    Returns
    -------
    K : numpy.ndarray, shape (m, n) or (r, m, n)
    dK : numpy.ndarray, shape (m, n, n_phi) or (r, m, n, n_phi)
        ``dK[..., i, j, p] = d K_ij / d phi_p`` with ``phi = [vec(A_phi); vec(B_phi)]``.
    """
    A, B, batched = check_models(A_phi, B_phi)
    Qm, Rm = check_weights(Q, R, A.shape[-1], B.shape[-1])
    K, dK = _gain_jacobian(A, B, Qm, Rm, check_positive_int("horizon", horizon))
    check_finite("the gain K or its Jacobian", K, dK)
    dK = np.moveaxis(dK, 1, -1)
    return (K, dK) if batched else (K[0], dK[0])


def mpc_gain_vjp(
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    cotangent: np.ndarray,
    horizon: int = 5,
) -> np.ndarray:
    """Gradient of ``<cotangent, K(phi)>`` with respect to ``phi``, by reverse mode.

    The adjoint of the Riccati recursion of :func:`mpc_gain`: one backward sweep whatever the
    number of parameters (equal to ``einsum("...ij,...ijp->...p", cotangent, dK)`` with ``dK``
    from :func:`mpc_gain_jacobian`).

    Parameters
    ----------
    A_phi, B_phi, Q, R, horizon
        As in :func:`mpc_gain` (one model or a batch of r models).
    cotangent : array_like, shape (m, n) or (r, m, n)
        Weights of the entries of K (e.g. ``d loss / d K``).

    Returns
    -------
    numpy.ndarray, shape (n_phi,) or (r, n_phi)
    """
    A, B, batched = check_models(A_phi, B_phi)
    r, n, m = B.shape
    Qm, Rm = check_weights(Q, R, n, m)
    c = as_array("cotangent", cotangent, (r, m, n) if batched else (m, n))
    _, tape = riccati_gains(A, B, Qm, Rm, check_positive_int("horizon", horizon))
    gA, gB = riccati_vjp(A, B, tape, c if batched else c[None])
    check_finite("the gradient", gA, gB)
    g = join_phi(gA, gB)
    return g if batched else g[0]


def mpc_action_jacobian(
    s: np.ndarray,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    horizon: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """``u_0*(s; phi)`` and ``d u_0* / d phi`` at one state, from the closed form.

    Parameters
    ----------
    s : array_like, shape (n,)
        The state.
    A_phi, B_phi, Q, R, horizon
        One model, as in :func:`mpc_gain`.

    Returns
    -------
    u : numpy.ndarray, shape (m,)
    du_dphi : numpy.ndarray, shape (m, n_phi)
        Columns in the order of :meth:`lgutils.mpc.MPC.flatten_phi` (A row-major, then B).
    """
    A = as_matrix("A_phi", A_phi)
    A = as_matrix("A_phi", A, A.shape[0], A.shape[0])
    s = as_vector("s", s, A.shape[0])
    K, dK = mpc_gain_jacobian(A, B_phi, Q, R, horizon)
    return -K @ s, -np.einsum("ijp,j->ip", dK, s)


def finite_difference_action_jacobian(
    s: np.ndarray,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    horizon: int = 5,
    step: float = 1e-5,
) -> np.ndarray:
    """``d u_0* / d phi`` at one state by central finite differences of :func:`mpc_gain`.

    Parameters
    ----------
    s, A_phi, B_phi, Q, R, horizon
        As in :func:`mpc_action_jacobian`.
    step : float
        Perturbation h > 0 of each parameter (truncation error O(h^2)).

    Returns
    -------
    numpy.ndarray, shape (m, n_phi)
    """
    A = as_matrix("A_phi", A_phi)
    n = A.shape[0]
    A = as_matrix("A_phi", A, n, n)
    B = as_matrix("B_phi", B_phi, n, None)
    s = as_vector("s", s, n)
    h = check_in_open_interval("step", step, 0.0, np.inf)
    m = B.shape[1]
    Qm, Rm = check_weights(Q, R, n, m)
    H = check_positive_int("horizon", horizon)
    phi = join_phi(A, B)
    E = h * np.eye(phi.size)
    plus = _gain(*split_phi(phi + E, n, m), Qm, Rm, H)  # (n_phi, m, n)
    minus = _gain(*split_phi(phi - E, n, m), Qm, Rm, H)
    check_finite("the perturbed gains", plus, minus)
    return (-(plus - minus) @ s / (2.0 * h)).T


def mpc_plan(
    s: np.ndarray,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    horizon: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """The MPC's whole plan at state ``s``: predicted states and planned inputs.

    The time-varying gains of the recursion, ``u_k = -K_k x_k`` with
    ``x_{k+1} = A_phi x_k + B_phi u_k`` (what the MPC believes will happen).

    Parameters
    ----------
    s, A_phi, B_phi, Q, R, horizon
        As in :func:`mpc_action_jacobian`.

    Returns
    -------
    x_pred : numpy.ndarray, shape (H + 1, n)
    u_pred : numpy.ndarray, shape (H, m)
    """
    A = as_matrix("A_phi", A_phi)
    n = A.shape[0]
    A = as_matrix("A_phi", A, n, n)
    B = as_matrix("B_phi", B_phi, n, None)
    s = as_vector("s", s, n)
    Qm, Rm = check_weights(Q, R, n, B.shape[1])
    H = check_positive_int("horizon", horizon)
    _, tape = riccati_gains(A[None], B[None], Qm, Rm, H)
    gains = [t[1][0] for t in reversed(tape)]  # K_0, ..., K_{H-1}
    x = np.empty((H + 1, n))
    u = np.empty((H, B.shape[1]))
    x[0] = s
    check_finite("the gains K_0..K_{H-1}", *gains)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(H):
            u[k] = -gains[k] @ x[k]
            x[k + 1] = A @ x[k] + B @ u[k]
    check_finite("the plan", x, u)
    return x, u


def case_b_mpc(
    horizon: int = 5, *, bounds: Bounds | None = None, solver: SolverOptions | None = None
) -> MPC:
    """The same MPC as a general :class:`lgutils.mpc.MPC` (CasADi + IPOPT), model as parameters.

    ``params={"A": (n, n), "B": (n, m)}``, so ``phi`` has the flat order of this module.
    Its :meth:`~lgutils.mpc.MPC.policy_sensitivity` differentiates ``u_0*`` implicitly through
    the optimality conditions (the general route; :func:`mpc_action_jacobian` is the closed form).

    Parameters
    ----------
    horizon : int
        Prediction horizon H.
    bounds, solver : optional
        Input bounds and solver options, as for :class:`lgutils.mpc.MPC`.
    """
    env = case_b()
    n, m = env.B.shape
    Q, R = env.Q, env.R
    return MPC(
        Model(n, m, dynamics=lambda x, u, p: p["A"] @ x + p["B"] @ u),
        Cost(stage=lambda x, u, p: x.T @ Q @ x + u.T @ R @ u),
        check_positive_int("horizon", horizon),
        params={"A": (n, n), "B": (n, m)},
        bounds=bounds,
        solver=solver,
    )
