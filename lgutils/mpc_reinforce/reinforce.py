"""Case study B (paper Sec. V.B, Fig. 4): an MPC whose model is learned by REINFORCE.

The policy is the MPC of eq. (14) with a learnable linear prediction model
``x_{k+1} = A_phi x_k + B_phi u_k``, horizon ``H = 5``, stage cost ``x^T Q x + u^T R u`` and no
terminal cost or constraints. Without constraints the MPC is a linear feedback: dynamic
programming on the model (a finite Riccati recursion with ``P_H = 0``) gives

    K_t = (R + B_phi^T P_{t+1} B_phi)^{-1} B_phi^T P_{t+1} A_phi,
    P_t = Q + A_phi^T P_{t+1} (A_phi - B_phi K_t),        u_0* = -K_0(phi) s,

so ``u_{H-1} = 0`` (no cost sees its effect) and ``pi_phi(s) = -K_0(phi) s``. This module
evaluates ``K_0`` and its Jacobian ``d K_0 / d phi`` in closed form (forward-mode
differentiation of the recursion), batched over independent runs, and trains ``phi`` with
REINFORCE exactly as in the reference setup:

- Gaussian exploration ``a ~ N(-K_0 s, sigma_a^2)``, ``sigma_a = 0.01``;
- a batch of 64 episodes of 10 steps from the fixed ``x_0`` per update, returns z-normalised
  within the batch, surrogate loss ``-(1/N) sum_i sum_t log pi(a_t | s_t) G_i``;
- Adam (learning rate 0.1), global gradient-norm clipping at 10, every parameter clamped to
  [-2, 2] after each step; 100 updates; initial entries i.i.d. uniform on [-1, 1].

With ``u_max`` (beyond the paper), :func:`run_reinforce` trains the input-bounded MPC of
:mod:`lgutils.mpc_reinforce.bounded` instead, through its active-set sensitivities.

Independent runs are vectorised over a leading "run" axis and dispatched in chunks through
:mod:`joblib`, so the same call runs serially, on local processes or on a dask cluster
(``joblib.parallel_config(backend="dask")``) with identical numbers: every run draws all of its
random numbers from its own generator, seeded from :func:`lgutils.core.seeding.spawn_seeds`.

Shapes: ``n`` states, ``m`` inputs, ``R`` runs, ``N`` episodes per batch, ``T`` steps;
``phi`` is the flat vector ``[vec(A_phi); vec(B_phi)]`` (row-major), ``n_phi = n^2 + n m`` --
the order of :meth:`lgutils.mpc.MPC.flatten_phi` for ``params={"A": (n, n), "B": (n, m)}``.
Returns are in reward units (the negative of the quadratic cost, dimensionless here).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np

from lgutils.core.envs import CASE_STUDY_B
from lgutils.core.optim import adam_kernel
from lgutils.core.seeding import spawn_seeds
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
    "mpc_gain",
    "mpc_gain_jacobian",
    "mpc_action_jacobian",
    "finite_difference_action_jacobian",
    "mpc_plan",
    "case_b_mpc",
    "Batch",
    "rollout",
    "expected_return",
    "normalise_returns",
    "mpc_gain_vjp",
    "surrogate_gradient",
    "clip_global_norm",
    "reinforce_update",
    "ReinforceRuns",
    "run_reinforce",
    "run_experiment",
    "reference_returns",
    "curve_summary",
    "DIVERGENCE_THRESHOLD",
]

#: A run counts as diverged if any of its sampled or expected returns is non-finite or below this
#: value (reward units). The true system's open loop from x_0 costs about -5 over 10 steps and the
#: worst initial models of Fig. 4 about -1e2 .. -1e3, so -1e6 marks a numerical blow-up only.
DIVERGENCE_THRESHOLD = -1.0e6


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
    """The case-study-B system of :data:`lgutils.core.envs.CASE_STUDY_B` (the environment's numbers)."""
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
# parameters
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


def _models(A_phi: object, B_phi: object) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate one model or a batch of models; return batched copies and whether it was batched."""
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


def _weights(Q: object, R: object, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    return check_psd("Q", Q, n), check_pd("R", R, m)


def _check_finite(what: str, *arrays: np.ndarray) -> None:
    """Raise if the Riccati recursion overflowed (model entries far too large for float64)."""
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError(
            f"{what} is not finite: the Riccati recursion overflowed for these A_phi, B_phi "
            "(entries too large for float64); pass models with moderate entries"
        )


# ---------------------------------------------------------------------------------------------
# the MPC policy in closed form
# ---------------------------------------------------------------------------------------------
def _gain_forward(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, H: int
) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """K_0 of the H-step Riccati recursion with P_H = 0, batched: A (r, n, n), B (r, n, m).

    Also returns, per iteration (from P_H towards P_0), the tape (P_in, K, S, A - B K) that
    :func:`_gain_vjp` needs.
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
    return _gain_forward(A, B, Q, R, H)[0]


def _sym(X: np.ndarray) -> np.ndarray:
    return 0.5 * (X + np.swapaxes(X, -1, -2))


def _gain_vjp(
    A: np.ndarray, B: np.ndarray, tape: list[tuple[np.ndarray, ...]], gK: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reverse mode through the recursion: the gradient of <gK, K_0> w.r.t. A (r,n,n), B (r,n,m).

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
    A, B, batched = _models(A_phi, B_phi)
    Qm, Rm = _weights(Q, R, A.shape[-1], B.shape[-1])
    K = _gain(A, B, Qm, Rm, check_positive_int("horizon", horizon))
    _check_finite("the gain K", K)
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
    A, B, batched = _models(A_phi, B_phi)
    Qm, Rm = _weights(Q, R, A.shape[-1], B.shape[-1])
    K, dK = _gain_jacobian(A, B, Qm, Rm, check_positive_int("horizon", horizon))
    _check_finite("the gain K or its Jacobian", K, dK)
    dK = np.moveaxis(dK, 1, -1)
    return (K, dK) if batched else (K[0], dK[0])


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
    Qm, Rm = _weights(Q, R, n, m)
    H = check_positive_int("horizon", horizon)
    phi = join_phi(A, B)
    E = h * np.eye(phi.size)
    plus = _gain(*split_phi(phi + E, n, m), Qm, Rm, H)  # (n_phi, m, n)
    minus = _gain(*split_phi(phi - E, n, m), Qm, Rm, H)
    _check_finite("the perturbed gains", plus, minus)
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
    Qm, Rm = _weights(Q, R, n, B.shape[1])
    H = check_positive_int("horizon", horizon)
    _, tape = _gain_forward(A[None], B[None], Qm, Rm, H)
    gains = [t[1][0] for t in reversed(tape)]  # K_0, ..., K_{H-1}
    x = np.empty((H + 1, n))
    u = np.empty((H, B.shape[1]))
    x[0] = s
    _check_finite("the gains K_0..K_{H-1}", *gains)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(H):
            u[k] = -gains[k] @ x[k]
            x[k + 1] = A @ x[k] + B @ u[k]
    _check_finite("the plan", x, u)
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


# ---------------------------------------------------------------------------------------------
# the environment, vectorised over runs and episodes
# ---------------------------------------------------------------------------------------------
class Batch(NamedTuple):
    """Episodes of a batch, for ``r`` runs side by side (float64).

    Attributes
    ----------
    states : (r, N, T + 1, n)
        x_0, ..., x_T.
    means : (r, N, T, m)
        Policy means ``u_t = -K x_t`` (the MPC's action).
    actions : (r, N, T, m)
        Applied actions ``a_t = u_t + sigma_a eps_t``.
    rewards : (r, N, T)
        ``r_t = -(x_t^T Q x_t + a_t^T R a_t)``.
    """

    states: np.ndarray
    means: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray


def _rollout(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    K: np.ndarray,
    x0: np.ndarray,
    noise_std: float,
    action_std: float,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
) -> Batch:
    r, N, T, m = action_noise.shape
    n = A.shape[0]
    states = np.empty((r, N, T + 1, n))
    means = np.empty((r, N, T, m))
    states[:, :, 0] = x0
    KT = -np.swapaxes(K, -1, -2)  # (r, n, m): u = x @ (-K^T)
    AT, BT = A.T, B.T
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(T):
            x = states[:, :, t]
            u = x @ KT
            means[:, :, t] = u
            a = u + action_std * action_noise[:, :, t]
            states[:, :, t + 1] = x @ AT + a @ BT + noise_std * process_noise[:, :, t]
        actions = means + action_std * action_noise
        xs = states[:, :, :T]
        rewards = -np.sum((xs @ Q) * xs, axis=-1) - np.sum((actions @ R) * actions, axis=-1)
    return Batch(states, means, actions, rewards)


def rollout(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    K: np.ndarray,
    x0: np.ndarray,
    noise_std: float,
    action_std: float,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
) -> Batch:
    """Episodes of the linear-Gaussian policy ``a = -K x + sigma_a eps`` on the true system.

    The dynamics and reward are those of :class:`lgutils.core.envs.LinearQuadraticEnv`:
    ``x_{t+1} = A x_t + B a_t + sigma_w w_t``, ``r_t = -(x_t^T Q x_t + a_t^T R a_t)`` (state
    before the step, applied action), ``x_0`` fixed. The random numbers are inputs, so the
    same numbers give the same episodes whatever the batching.

    Parameters
    ----------
    A : array_like, shape (n, n)
        True state matrix.
    B : array_like, shape (n, m)
        True input matrix.
    Q, R : array_like, shapes (n, n) and (m, m)
        Reward weights.
    K : array_like, shape (r, m, n)
        One gain per run.
    x0 : array_like, shape (n,)
        Initial state of every episode.
    noise_std : float
        Process-noise standard deviation sigma_w >= 0.
    action_std : float
        Exploration standard deviation sigma_a >= 0.
    action_noise : array_like, shape (r, N, T, m)
        Standard normal numbers eps.
    process_noise : array_like, shape (r, N, T, n)
        Standard normal numbers w.

    Returns
    -------
    Batch
        Where the closed loop blows up (an unstable gain), the states overflow to ``inf``/NaN
        and the rewards are ``-inf``, as :func:`expected_return` reports it.
    """
    A = as_matrix("A", A)
    n = A.shape[0]
    A = as_matrix("A", A, n, n)
    B = as_matrix("B", B, n, None)
    m = B.shape[1]
    Qm, Rm = _weights(Q, R, n, m)
    K = as_array("K", K, (None, m, n))
    r = K.shape[0]
    x0 = as_vector("x0", x0, n)
    noise_std = check_in_open_interval("noise_std", noise_std, -1e-300, np.inf)
    action_std = check_in_open_interval("action_std", action_std, -1e-300, np.inf)
    action_noise = as_array("action_noise", action_noise, (r, None, None, m))
    N, T = action_noise.shape[1:3]
    process_noise = as_array("process_noise", process_noise, (r, N, T, n))
    batch = _rollout(A, B, Qm, Rm, K, x0, noise_std, action_std, action_noise, process_noise)
    batch.rewards[~np.isfinite(batch.rewards)] = -np.inf  # a blown-up closed loop, not NaN
    return batch


def _expected_return(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    K: np.ndarray,
    x0: np.ndarray,
    noise_std: float,
    action_std: float,
    T: int,
) -> np.ndarray:
    r, m, n = K.shape
    W = noise_std**2 * np.eye(n) + action_std**2 * B @ B.T
    Acl = A - B @ K  # (r, n, n)
    M = Q + np.swapaxes(K, -1, -2) @ R @ K
    mu = np.broadcast_to(x0, (r, n)).copy()
    S = np.zeros((r, n, n))
    cost = np.zeros(r)
    noise_cost = action_std**2 * float(np.trace(R))
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(T):
            cost += np.einsum("ri,rij,rj->r", mu, M, mu) + np.einsum("rij,rji->r", M, S)
            cost += noise_cost
            mu = np.einsum("rij,rj->ri", Acl, mu)
            S = Acl @ S @ np.swapaxes(Acl, -1, -2) + W
    out = -cost
    out[~np.isfinite(out)] = -np.inf
    return out


def expected_return(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    K: np.ndarray,
    x0: np.ndarray,
    noise_std: float,
    action_std: float,
    horizon: int,
) -> np.ndarray:
    """Exact expected T-step return of ``a = -K x + sigma_a eps`` from ``x0``, for many gains.

    Propagates the state's mean and covariance (``mu_{t+1} = (A - B K) mu_t``,
    ``S_{t+1} = (A - B K) S_t (A - B K)^T + sigma_w^2 I + sigma_a^2 B B^T``) and sums
    ``-(mu^T M mu + tr(M S) + sigma_a^2 tr R)`` with ``M = Q + K^T R K``: the batched twin of
    :func:`lgutils.core.lqr.policy_return` with a finite horizon.

    Parameters
    ----------
    A, B, Q, R, x0, noise_std, action_std
        As in :func:`rollout`.
    K : array_like, shape (r, m, n) or (m, n)
        Gains.
    horizon : int
        Number of rewards T.

    Returns
    -------
    numpy.ndarray, shape (r,) (or a float for one gain)
        Expected returns (reward units); ``-inf`` where the numbers overflow.
    """
    A = as_matrix("A", A)
    n = A.shape[0]
    A = as_matrix("A", A, n, n)
    B = as_matrix("B", B, n, None)
    m = B.shape[1]
    Qm, Rm = _weights(Q, R, n, m)
    K = as_array("K", K)
    single = K.ndim == 2
    K = as_array("K", K[None] if single else K, (None, m, n))
    x0 = as_vector("x0", x0, n)
    noise_std = check_in_open_interval("noise_std", noise_std, -1e-300, np.inf)
    action_std = check_in_open_interval("action_std", action_std, -1e-300, np.inf)
    T = check_positive_int("horizon", horizon)
    out = _expected_return(A, B, Qm, Rm, K, x0, noise_std, action_std, T)
    return float(out[0]) if single else out


# ---------------------------------------------------------------------------------------------
# REINFORCE
# ---------------------------------------------------------------------------------------------
def normalise_returns(returns: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Z-normalise returns within each batch: ``(G - mean) / (std + eps)`` along the last axis.

    The standard deviation is the sample one (``ddof = 1``, as ``torch.Tensor.std``).

    Parameters
    ----------
    returns : array_like, shape (..., N)
        Episode returns, N >= 2 per batch.
    eps : float
        Guard against a zero spread, >= 0.
    """
    G = as_array("returns", returns)
    if G.ndim < 1 or G.shape[-1] < 2:
        raise ValueError(f"returns must have shape (..., N) with N >= 2, got shape {G.shape}")
    eps = check_in_open_interval("eps", eps, -1e-300, np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = _normalise(G, eps)
    if not np.all(np.isfinite(out)):
        raise ValueError(
            "returns have zero spread within a batch (or overflow) and eps = "
            f"{eps}: the normalised returns are undefined; pass eps > 0"
        )
    return out


def _normalise(G: np.ndarray, eps: float) -> np.ndarray:
    mean = G.mean(axis=-1, keepdims=True)
    std = G.std(axis=-1, ddof=1, keepdims=True)
    return (G - mean) / (std + eps)


def _gain_gradient(batch: Batch, Gn: np.ndarray, action_std: float) -> np.ndarray:
    """d L / d K (r, m, n) for L = -(1/N) sum_i G_i sum_t log pi(a_it | s_it)."""
    N = Gn.shape[1]
    T = batch.means.shape[2]
    score_u = (batch.actions - batch.means) / action_std**2  # d log pi / d u, (r, N, T, m)
    # u = -K x  =>  d log pi / d K = -score_u x^T;  dL/dK = (1/N) sum_i G_i sum_t score_u x^T
    weighted = (score_u * Gn[:, :, None, None]).reshape(Gn.shape[0], -1, score_u.shape[-1])
    xs = batch.states[:, :, :T].reshape(Gn.shape[0], -1, batch.states.shape[-1])
    return np.swapaxes(weighted, -1, -2) @ xs / N


def _surrogate_gradient(
    batch: Batch, Gn: np.ndarray, A: np.ndarray, B: np.ndarray, tape: list, action_std: float
) -> np.ndarray:
    gA, gB = _gain_vjp(A, B, tape, _gain_gradient(batch, Gn, action_std))
    return join_phi(gA, gB)


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
    A, B, batched = _models(A_phi, B_phi)
    r, n, m = B.shape
    Qm, Rm = _weights(Q, R, n, m)
    c = as_array("cotangent", cotangent, (r, m, n) if batched else (m, n))
    _, tape = _gain_forward(A, B, Qm, Rm, check_positive_int("horizon", horizon))
    gA, gB = _gain_vjp(A, B, tape, c if batched else c[None])
    _check_finite("the gradient", gA, gB)
    g = join_phi(gA, gB)
    return g if batched else g[0]


def surrogate_gradient(
    batch: Batch,
    returns_normalised: np.ndarray,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    action_std: float,
    horizon: int = 5,
) -> np.ndarray:
    """Gradient of the REINFORCE surrogate loss with respect to ``phi``.

    ``L(phi) = -(1/N) sum_i G_i sum_t log N(a_it; -K(phi) x_it, sigma_a^2)`` with the
    normalised returns ``G_i`` held fixed. With ``d log pi / d u = (a - u) / sigma_a^2`` and
    ``u = -K x``, ``d L / d K = (1/N) sum_i G_i sum_t (a - u) x^T / sigma_a^2``, which the
    adjoint of the Riccati recursion (:func:`mpc_gain_vjp`) carries to ``phi``.

    Parameters
    ----------
    batch : Batch
        Episodes of r runs (see :func:`rollout`), generated with ``K(phi)``.
    returns_normalised : array_like, shape (r, N)
        Normalised returns G_i.
    A_phi, B_phi : array_like, shapes (r, n, n) and (r, n, m)
        The models of the r runs.
    Q, R, horizon
        As in :func:`mpc_gain`.
    action_std : float
        sigma_a > 0.

    Returns
    -------
    numpy.ndarray, shape (r, n_phi)
    """
    r, N = batch.rewards.shape[:2]
    Gn = as_array("returns_normalised", returns_normalised, (r, N))
    action_std = check_in_open_interval("action_std", action_std, 0.0, np.inf)
    A = as_array("A_phi", A_phi, (r, None, None))
    cot = _gain_gradient(batch, Gn, action_std)
    return mpc_gain_vjp(A, B_phi, Q, R, cot, horizon)


def clip_global_norm(grad: np.ndarray, max_norm: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale each run's gradient so that its Euclidean norm is at most ``max_norm``.

    Uses the factor ``min(1, max_norm / (norm + 1e-6))``, as ``torch.nn.utils.clip_grad_norm_``.

    Parameters
    ----------
    grad : array_like, shape (r, n_phi)
    max_norm : float
        > 0.

    Returns
    -------
    clipped : numpy.ndarray, shape (r, n_phi)
    norm : numpy.ndarray, shape (r,)
        The norms before clipping.
    """
    g = as_array("grad", grad, (None, None))
    max_norm = check_in_open_interval("max_norm", max_norm, 0.0, np.inf)
    return _clip(g, max_norm)


def _clip(g: np.ndarray, max_norm: float) -> tuple[np.ndarray, np.ndarray]:
    norm = np.sqrt(np.sum(g * g, axis=-1))
    coef = np.minimum(1.0, max_norm / (norm + 1e-6))
    return g * coef[:, None], norm


class _Settings(NamedTuple):
    horizon_mpc: int
    batch_size: int
    lr: float
    max_grad_norm: float
    clamp: float
    action_std: float
    return_eps: float


def _step(
    phi: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, grad: np.ndarray, cfg: _Settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clip the gradient's global norm, take an Adam step, clamp the parameters."""
    grad, norm = _clip(grad, cfg.max_grad_norm)
    phi, m, v = adam_kernel(phi, grad, m, v, step, cfg.lr, 0.9, 0.999, 1e-8)
    return np.clip(phi, -cfg.clamp, cfg.clamp), m, v, norm


def _update(
    phi: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: int,
    batch: Batch,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    tape: list,
    cfg: _Settings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    Gn = _normalise(batch.rewards.sum(axis=-1), cfg.return_eps)
    grad = _surrogate_gradient(batch, Gn, A_phi, B_phi, tape, cfg.action_std)
    return _step(phi, m, v, step, grad, cfg)


def _policy_batch(
    env: CaseB,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    cfg: _Settings,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
) -> tuple[np.ndarray, list, Batch]:
    """The MPC gains of the models (with their tape) and the episodes they play on ``env``."""
    K, tape = _gain_forward(A_phi, B_phi, env.Q, env.R, cfg.horizon_mpc)
    batch = _rollout(
        env.A,
        env.B,
        env.Q,
        env.R,
        K,
        env.x0,
        env.noise_std,
        cfg.action_std,
        action_noise,
        process_noise,
    )
    return K, tape, batch


def reinforce_update(
    phi: np.ndarray,
    adam_m: np.ndarray,
    adam_v: np.ndarray,
    step: int,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
    *,
    lr: float = 0.1,
    max_grad_norm: float = 10.0,
    clamp: float = 2.0,
    action_std: float = 0.01,
    horizon_mpc: int = 5,
    return_eps: float = 1e-8,
    env: CaseB | None = None,
) -> dict[str, np.ndarray]:
    """One REINFORCE update of the MPC model for ``r`` runs, from given random numbers.

    Rolls out ``N`` episodes of ``a = -K(phi) x + sigma_a eps`` on the true system, z-normalises
    their returns, differentiates the surrogate loss, clips its global norm, takes an Adam step
    and clamps the parameters.

    Parameters
    ----------
    phi : array_like, shape (r, n_phi)
        Current models ``[vec(A_phi); vec(B_phi)]``.
    adam_m, adam_v : array_like, shape (r, n_phi)
        Adam's moment estimates (zeros before the first update).
    step : int
        Adam's step count after this update (1 for the first).
    action_noise : array_like, shape (r, N, T, m)
        Standard normal exploration noise.
    process_noise : array_like, shape (r, N, T, n)
        Standard normal process noise.
    lr, max_grad_norm, clamp, action_std, horizon_mpc, return_eps
        Learning rate, clipping norm, parameter bound, exploration std, MPC horizon and the
        guard of the return normalisation.
    env : CaseB, optional
        The system (default :func:`case_b`).

    Returns
    -------
    dict
        ``"phi"``, ``"adam_m"``, ``"adam_v"`` (r, n_phi) after the update; ``"returns"`` (r, N)
        of the batch; ``"grad_norm"`` (r,) before clipping; ``"batch"``: the :class:`Batch`.
    """
    env = case_b() if env is None else env
    if not isinstance(env, CaseB):
        raise ValueError(f"env must be a CaseB (see case_b()), got {type(env).__name__}")
    n, m_in = env.B.shape
    phi = as_array("phi", phi, (None, n * n + n * m_in))
    r = phi.shape[0]
    adam_m = as_array("adam_m", adam_m, phi.shape)
    adam_v = as_array("adam_v", adam_v, phi.shape)
    step = check_positive_int("step", step)
    action_noise = as_array("action_noise", action_noise, (r, None, None, m_in))
    process_noise = as_array("process_noise", process_noise, (r, *action_noise.shape[1:3], n))
    cfg = _settings(
        horizon_mpc, action_noise.shape[1], lr, max_grad_norm, clamp, action_std, return_eps
    )
    A_phi, B_phi = split_phi(phi, n, m_in)
    _, tape, batch = _policy_batch(env, A_phi, B_phi, cfg, action_noise, process_noise)
    new, m_new, v_new, norm = _update(phi, adam_m, adam_v, step, batch, A_phi, B_phi, tape, cfg)
    return {
        "phi": new,
        "adam_m": m_new,
        "adam_v": v_new,
        "returns": batch.rewards.sum(axis=-1),
        "grad_norm": norm,
        "batch": batch,
    }


def _settings(
    horizon_mpc, batch_size, lr, max_grad_norm, clamp, action_std, return_eps
) -> _Settings:
    return _Settings(
        horizon_mpc=check_positive_int("horizon_mpc", horizon_mpc),
        batch_size=check_positive_int("batch_size", batch_size, minimum=2),
        lr=check_in_open_interval("lr", lr, 0.0, np.inf),
        max_grad_norm=check_in_open_interval("max_grad_norm", max_grad_norm, 0.0, np.inf),
        clamp=check_in_open_interval("clamp", clamp, 0.0, np.inf),
        action_std=check_in_open_interval("action_std", action_std, 0.0, np.inf),
        return_eps=check_in_open_interval("return_eps", return_eps, -1e-300, np.inf),
    )


class ReinforceRuns(NamedTuple):
    """The learning curves of independent REINFORCE runs (E = 0 is the initial model).

    Attributes
    ----------
    seeds : (r,) int
        Seed of each run's generator.
    returns : (r, E + 1)
        Mean return of the batch of N episodes sampled with the model after E updates (for
        E < n_updates, the batch used by update E + 1; for E = n_updates one extra batch).
    expected_returns : (r, E + 1)
        Exact expected return of the same policies (:func:`expected_return`).
    phi : (r, E + 1, n_phi)
        The models ``[vec(A_phi); vec(B_phi)]``.
    mismatch_A, mismatch_B : (r, E + 1)
        ``||A_phi - A||_F`` and ``||B_phi - B||_F``.
    grad_norm : (r, E)
        Global gradient norm of each update before clipping.
    blown_up : (r, E + 1) bool
        Points where the sampled or the expected return is non-finite or below
        :data:`DIVERGENCE_THRESHOLD` (the closed loop on the true system blew up).
    """

    seeds: np.ndarray
    returns: np.ndarray
    expected_returns: np.ndarray
    phi: np.ndarray
    mismatch_A: np.ndarray
    mismatch_B: np.ndarray
    grad_norm: np.ndarray
    blown_up: np.ndarray

    @property
    def diverged(self) -> np.ndarray:
        """(r,) bool: runs that blew up at least once during training (see ``blown_up``)."""
        return self.blown_up.any(axis=1)

    @property
    def diverged_at_end(self) -> np.ndarray:
        """(r,) bool: runs whose final model still blows up."""
        return self.blown_up[:, -1]


def run_reinforce(
    seeds: list[int],
    n_updates: int = 100,
    batch_size: int = 64,
    *,
    lr: float = 0.1,
    max_grad_norm: float = 10.0,
    clamp: float = 2.0,
    action_std: float = 0.01,
    horizon_mpc: int = 5,
    init_scale: float = 1.0,
    return_eps: float = 1e-8,
    u_max: float | None = None,
) -> ReinforceRuns:
    """REINFORCE on the MPC model for several independent runs, vectorised over the runs.

    Run ``i`` uses only ``numpy.random.default_rng(seeds[i])``: first the initial model (A_phi
    then B_phi, i.i.d. uniform on [-init_scale, init_scale], row-major), then for every batch one
    standard normal array of shape (N, T, m + n) whose first m columns are the exploration noise
    and the others the process noise. Its numbers therefore do not
    depend on which other runs share the call.

    Parameters
    ----------
    seeds : list of int
        One non-negative seed per run.
    n_updates : int
        Number of updates E (the curves have E + 1 points).
    batch_size : int
        Episodes per update N (>= 2).
    lr, max_grad_norm, clamp, action_std, horizon_mpc, return_eps
        As in :func:`reinforce_update`.
    init_scale : float
        Half-width of the uniform initial distribution of every model entry.
    u_max : float, optional
        Input bound of the MPC and of the actuator (beyond the paper): the policy becomes the
        box-constrained MPC of :mod:`lgutils.mpc_reinforce.bounded`, with active-set
        sensitivities, and the applied action is clipped to ``[-u_max, u_max]``. Its expected
        return has no closed form: ``expected_returns`` is then NaN.

    Returns
    -------
    ReinforceRuns
    """
    if (
        isinstance(seeds, (int, np.integer, str, bytes))
        or not hasattr(seeds, "__len__")
        or len(seeds) == 0
    ):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    seeds = [
        check_positive_int("seeds[i]", int(s) if isinstance(s, np.integer) else s, minimum=0)
        for s in seeds
    ]
    E = check_positive_int("n_updates", n_updates, minimum=0)
    cfg = _settings(horizon_mpc, batch_size, lr, max_grad_norm, clamp, action_std, return_eps)
    init_scale = check_in_open_interval("init_scale", init_scale, 0.0, np.inf)
    if u_max is not None:
        from lgutils.mpc_reinforce import bounded

        u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
        if cfg.horizon_mpc < 2:
            raise ValueError(f"horizon_mpc must be >= 2 with u_max, got {cfg.horizon_mpc}")
    env = case_b()
    n, m_in = env.B.shape
    npar = n * n + n * m_in
    T, N, r = env.horizon, cfg.batch_size, len(seeds)
    rngs = [np.random.default_rng(s) for s in seeds]
    phi = np.stack([g.uniform(-init_scale, init_scale, size=npar) for g in rngs])
    adam_m = np.zeros_like(phi)
    adam_v = np.zeros_like(phi)
    hist = np.empty((r, E + 1, npar))
    returns = np.empty((r, E + 1))
    expected = np.empty((r, E + 1))
    grad_norm = np.full((r, E), np.nan)
    frozen = np.zeros(r, dtype=bool)
    for k in range(E + 1):
        hist[:, k] = phi
        z = np.stack([g.standard_normal((N, T, m_in + n)) for g in rngs])
        eps, w = z[..., :m_in], z[..., m_in:]
        A_phi, B_phi = split_phi(phi, n, m_in)
        if u_max is None:
            K, tape, batch = _policy_batch(env, A_phi, B_phi, cfg, eps, w)
            expected[:, k] = _expected_return(
                env.A, env.B, env.Q, env.R, K, env.x0, env.noise_std, cfg.action_std, T
            )
        else:
            batch, btape = bounded._bounded_rollout(
                A_phi, B_phi, env, u_max, cfg.horizon_mpc, cfg.action_std, eps, w, k < E
            )
            expected[:, k] = np.nan
        G = batch.rewards.sum(axis=-1)
        with np.errstate(over="ignore", invalid="ignore"):
            returns[:, k] = G.mean(axis=-1)
        # a batch with non-finite returns has no usable gradient: that run stops learning
        frozen |= ~np.isfinite(G).all(axis=-1)
        if k < E:
            with np.errstate(over="ignore", invalid="ignore"):
                if u_max is None:
                    new, m_new, v_new, norm = _update(
                        phi, adam_m, adam_v, k + 1, batch, A_phi, B_phi, tape, cfg
                    )
                else:
                    Gn = _normalise(G, cfg.return_eps)
                    grad = bounded._bounded_gradient(batch, Gn, btape, cfg.action_std)
                    new, m_new, v_new, norm = _step(phi, adam_m, adam_v, k + 1, grad, cfg)
            keep = ~frozen
            phi[keep], adam_m[keep], adam_v[keep] = new[keep], m_new[keep], v_new[keep]
            grad_norm[keep, k] = norm[keep]
    return _runs_record(env, seeds, returns, expected, hist, grad_norm)


def _runs_record(
    env: CaseB,
    seeds: list[int],
    returns: np.ndarray,
    expected: np.ndarray,
    hist: np.ndarray,
    grad_norm: np.ndarray,
) -> ReinforceRuns:
    """The :class:`ReinforceRuns` of learning curves (model mismatch and blow-ups added)."""
    A_hist, B_hist = split_phi(hist, *env.B.shape)
    mis_A = np.sqrt(np.sum((A_hist - env.A) ** 2, axis=(-2, -1)))
    mis_B = np.sqrt(np.sum((B_hist - env.B) ** 2, axis=(-2, -1)))
    # NaN expected returns (bounded MPC: no closed form) do not count; NaN sampled ones do
    blown_up = ~(returns >= DIVERGENCE_THRESHOLD) | (expected < DIVERGENCE_THRESHOLD)
    return ReinforceRuns(
        seeds=np.asarray(seeds, dtype=np.int64),
        returns=returns,
        expected_returns=expected,
        phi=hist,
        mismatch_A=mis_A,
        mismatch_B=mis_B,
        grad_norm=grad_norm,
        blown_up=blown_up,
    )


def run_experiment(
    seed: int,
    n_runs: int,
    n_updates: int = 100,
    batch_size: int = 64,
    *,
    n_jobs: int | None = None,
    runs_per_job: int = 25,
    progress: bool = False,
    **kwargs: Any,
) -> tuple[ReinforceRuns, float]:
    """``n_runs`` independent REINFORCE runs, dispatched in chunks through :mod:`joblib`.

    The run seeds are ``lgutils.core.seeding.spawn_seeds(seed, n_runs)``; chunks of ``runs_per_job``
    runs go to ``joblib.Parallel(n_jobs)``, whose backend follows ``joblib.parallel_config``
    (serial, processes, or a dask cluster with ``backend="dask"``). The numbers do not depend on
    the backend.

    Parameters
    ----------
    seed : int
        Master seed.
    n_runs : int
        Number of runs r.
    n_updates, batch_size
        As in :func:`run_reinforce`.
    n_jobs : int, optional
        Parallel jobs (default: joblib's, i.e. ``parallel_config``'s or 1).
    runs_per_job : int
        Runs vectorised together in one job.
    progress : bool
        Show a progress bar over the chunks.
    **kwargs
        Passed to :func:`run_reinforce`.

    Returns
    -------
    runs : ReinforceRuns
        All runs, in seed order.
    wall_time : float
        Wall-clock seconds of the whole experiment.
    """
    import inspect

    from joblib import Parallel, delayed

    allowed = list(inspect.signature(run_reinforce).parameters)[3:]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"kwargs has unknown options {unknown} of run_reinforce; the options are {allowed}"
        )
    seeds = spawn_seeds(
        check_positive_int("seed", seed, minimum=0), check_positive_int("n_runs", n_runs)
    )
    per = check_positive_int("runs_per_job", runs_per_job)
    chunks = [seeds[i : i + per] for i in range(0, len(seeds), per)]
    t0 = time.perf_counter()
    jobs = (delayed(run_reinforce)(c, n_updates, batch_size, **kwargs) for c in chunks)
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, total=len(chunks), desc="REINFORCE chunks")
    parts = Parallel(n_jobs=n_jobs)(jobs)
    wall = time.perf_counter() - t0
    runs = ReinforceRuns(*(np.concatenate(field) for field in zip(*parts, strict=True)))
    return runs, wall


def reference_returns(action_std: float = 0.01, horizon_mpc: int = 5) -> dict[str, Any]:
    """J(theta*) and the true-model MPC's return on case study B, exactly (no sampling).

    ``J(theta*)``: the infinite-horizon LQR gain of the true system (:func:`lgutils.core.lqr.dare`),
    applied with the exploration noise, T-step undiscounted expected return from ``x_0``
    (:func:`lgutils.core.lqr.policy_return`). The true-model MPC is :func:`mpc_gain` with
    ``(A_phi, B_phi) = (A, B)``, evaluated the same way.

    Parameters
    ----------
    action_std : float
        Exploration standard deviation sigma_a of both policies.
    horizon_mpc : int
        MPC horizon H.

    Returns
    -------
    dict
        ``"J_star"``, ``"J_true_model_mpc"`` (floats), ``"K_star"``, ``"K_true_model_mpc"``
        (m, n).
    """
    from lgutils.core import lqr

    env = case_b()
    action_std = check_in_open_interval("action_std", action_std, -1e-300, np.inf)
    _, K_star = lqr.dare(env.A, env.B, env.Q, env.R)
    K_mpc = mpc_gain(env.A, env.B, env.Q, env.R, horizon_mpc)
    W = env.noise_std**2 * np.eye(env.A.shape[0])
    E = action_std**2 * np.eye(env.B.shape[1])

    def J(K: np.ndarray) -> float:
        return lqr.policy_return(
            env.A, env.B, env.Q, env.R, K, env.x0, None, W, horizon=env.horizon, action_noise_cov=E
        )

    return {
        "J_star": J(K_star),
        "J_true_model_mpc": J(K_mpc),
        "K_star": K_star,
        "K_true_model_mpc": K_mpc,
    }


def curve_summary(runs: ReinforceRuns, J_star: float) -> dict[str, np.ndarray]:
    """Per-update statistics of the learning curves, all runs and runs that never blew up.

    Parameters
    ----------
    runs : ReinforceRuns
        From :func:`run_experiment` or :func:`run_reinforce`.
    J_star : float
        The reference return J(theta*) (reward units).

    Returns
    -------
    dict of numpy.ndarray, each of shape (E + 1,)
        ``return_mean_all``, ``return_median`` (all runs); ``return_mean``, ``return_std``
        (sample std) over the runs that never blew up (the source's statistics covered only
        its runs whose solver never failed); ``regret_mean``, ``regret_median``: ``J_star``
        minus the exact expected return, all runs; ``mismatch_A_mean``, ``mismatch_A_std``,
        ``mismatch_B_mean``, ``mismatch_B_std``: all runs.
    """
    if not isinstance(runs, ReinforceRuns):
        raise ValueError(f"runs must be a ReinforceRuns, got {type(runs).__name__}")
    J_star = float(as_array("J_star", J_star, ()))
    kept = ~runs.diverged
    if not kept.any():
        raise ValueError("runs has no run that never blew up: every run diverged")
    with np.errstate(over="ignore", invalid="ignore"):
        regret = J_star - runs.expected_returns
        ret_kept = runs.returns[kept]
        out = {
            "return_mean_all": runs.returns.mean(axis=0),
            "return_median": np.median(runs.returns, axis=0),
            "return_mean": ret_kept.mean(axis=0),
            "return_std": ret_kept.std(axis=0, ddof=1) if kept.sum() > 1 else 0.0 * ret_kept[0],
            "regret_mean": regret.mean(axis=0),
            "regret_median": np.median(regret, axis=0),
        }
    for key, arr in (("mismatch_A", runs.mismatch_A), ("mismatch_B", runs.mismatch_B)):
        out[f"{key}_mean"] = arr.mean(axis=0)
        out[f"{key}_std"] = arr.std(axis=0, ddof=1) if arr.shape[0] > 1 else 0.0 * arr[0]
    return out
