"""Linear-quadratic optimal control in closed form: the ground truth of the book's checks.

The problem, in the book's reward convention (rewards are maximised):

    x_{t+1} = A x_t + B u_t + w_t,   w_t ~ N(0, W),
    r(x, u) = -(x^T Q x + u^T R u),
    J = E[ sum_t gamma^t r(x_t, u_t) ].

Its optimal policy is linear, u = -K x, and its value functions are quadratic:

    V*(x)    = -x^T P x - c,
    Q*(x, u) = -[x; u]^T H [x; u] - c,   c = gamma / (1 - gamma) tr(P W),

where P solves the (discounted) discrete algebraic Riccati equation. This module computes P,
K and H (the closed form of the paper's eqs. 4-6), the finite-horizon Riccati recursion, and the
exact expected return of *any* linear policy (through a Lyapunov equation or a finite sum).

Shapes: ``n`` states, ``m`` inputs; ``A (n, n)``, ``B (n, m)``, ``Q (n, n)`` symmetric PSD,
``R (m, m)`` symmetric PD, gains ``K (m, n)``. Units are those of the caller's model; returns and
values are in reward units (the negative of the quadratic cost).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from lgutils.core.validate import (
    as_array,
    as_matrix,
    as_vector,
    check_in_open_interval,
    check_pd,
    check_psd,
)

__all__ = [
    "dare",
    "value_offset",
    "q_matrix",
    "quadratic_form",
    "q_value",
    "greedy_gain",
    "riccati_recursion",
    "policy_return",
    "closed_loop_radius",
]


def _check_system(A: object, B: object, Q: object, R: object) -> tuple[np.ndarray, ...]:
    A = as_matrix("A", A)
    n = A.shape[0]
    if A.shape != (n, n):
        raise ValueError(f"A must be a square matrix of shape (n, n), got shape {A.shape}")
    B = as_matrix("B", B)
    if B.shape[0] != n:
        raise ValueError(
            f"B must have shape ({n}, m) to match A of shape {A.shape}, got shape {B.shape}"
        )
    m = B.shape[1]
    Q = check_psd("Q", Q, n)
    R = check_pd("R", R, m)
    return A, B, Q, R


def _check_gamma(gamma: object) -> float:
    return check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True)


def _noise(name: str, value: object, n: int) -> np.ndarray:
    """A covariance argument: ``None`` means zero, otherwise a PSD ``(n, n)`` matrix."""
    if value is None:
        return np.zeros((n, n))
    return check_psd(name, value, n)


def dare(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, gamma: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Solve the (discounted) discrete algebraic Riccati equation.

    Finds the P that satisfies

        P = Q + gamma A^T P A - gamma^2 A^T P B (R + gamma B^T P B)^{-1} B^T P A,

    i.e. the standard DARE of the scaled pair ``(sqrt(gamma) A, sqrt(gamma) B)``.

    Parameters
    ----------
    A : array_like, shape (n, n)
        State matrix.
    B : array_like, shape (n, m)
        Input matrix.
    Q : array_like, shape (n, n)
        State weight, symmetric positive semidefinite.
    R : array_like, shape (m, m) or scalar
        Input weight, symmetric positive definite.
    gamma : float, default 1.0
        Discount factor in (0, 1].

    Returns
    -------
    P : numpy.ndarray, shape (n, n)
        Symmetric PSD; the noise-free optimal value is ``V*(x) = -x^T P x`` for the reward
        ``-(x^T Q x + u^T R u)`` (with process noise subtract :func:`value_offset`).
    K : numpy.ndarray, shape (m, n)
        Optimal gain, ``u = -K x``; ``K = gamma (R + gamma B^T P B)^{-1} B^T P A``.

    Raises
    ------
    ValueError
        On bad shapes or weights, or when no stabilising solution exists (e.g. ``(A, B)`` not
        stabilisable).
    """
    A, B, Q, R = _check_system(A, B, Q, R)
    gamma = _check_gamma(gamma)
    s = np.sqrt(gamma)
    try:
        P = scipy.linalg.solve_discrete_are(s * A, s * B, Q, R)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise ValueError(
            f"no stabilising solution of the Riccati equation for these A, B, Q, R and gamma={gamma} "
            f"(is (sqrt(gamma) A, sqrt(gamma) B) stabilisable and (A, Q) detectable?): {exc}"
        ) from exc
    P = 0.5 * (P + P.T)
    K = gamma * np.linalg.solve(R + gamma * B.T @ P @ B, B.T @ P @ A)
    return P, K


def value_offset(P: np.ndarray, noise_cov: np.ndarray | None, gamma: float) -> float:
    """Constant ``c = gamma / (1 - gamma) tr(P W)`` that process noise adds to the cost.

    With noise, ``V*(x) = -x^T P x - c`` and ``Q*(x, u) = -[x; u]^T H [x; u] - c``.

    Parameters
    ----------
    P : array_like, shape (n, n)
        Riccati solution from :func:`dare`.
    noise_cov : array_like, shape (n, n), or None
        Process-noise covariance W; ``None`` means no noise (returns 0).
    gamma : float
        Discount factor in (0, 1]; ``gamma = 1`` with noise raises (the sum diverges).
    """
    P = check_psd("P", P)
    W = _noise("noise_cov", noise_cov, P.shape[0])
    gamma = _check_gamma(gamma)
    trace = float(np.trace(P @ W))
    if trace == 0.0:
        return 0.0
    if gamma == 1.0:
        raise ValueError(
            "gamma must be < 1 when noise_cov is non-zero: the undiscounted infinite-horizon "
            f"cost of noise diverges, got gamma={gamma}"
        )
    return gamma / (1.0 - gamma) * trace


def q_matrix(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    gamma: float = 1.0,
    noise_cov: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """The optimal Q-function (eqs. 4-6 in closed form) as a quadratic form in ``z = [x; u]``.

    ``Q*(x, u) = -z^T H z - c`` with

        H = [[Q + gamma A^T P A,  gamma A^T P B    ],
             [gamma B^T P A,      R + gamma B^T P B]],   c = gamma / (1 - gamma) tr(P W),

    which satisfies the Bellman optimality equation (6) exactly.

    Parameters
    ----------
    A, B, Q, R, gamma
        As in :func:`dare`.
    noise_cov : array_like, shape (n, n), optional
        Process-noise covariance W (default: no noise). Needs ``gamma < 1`` when non-zero.

    Returns
    -------
    H : numpy.ndarray, shape (n + m, n + m)
        Symmetric; its input block ``H[n:, n:]`` is positive definite.
    c : float
        Constant offset (reward units), ``>= 0``.
    """
    A, B, Q, R = _check_system(A, B, Q, R)
    W = _noise("noise_cov", noise_cov, A.shape[0])  # checked before the solve that may fail
    P, _ = dare(A, B, Q, R, gamma)
    c = value_offset(P, W, gamma)
    g = float(gamma)
    H = np.block([[Q + g * A.T @ P @ A, g * A.T @ P @ B], [g * B.T @ P @ A, R + g * B.T @ P @ B]])
    return 0.5 * (H + H.T), c


def quadratic_form(M: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Evaluate ``z^T M z`` for one vector or a batch of row vectors.

    Parameters
    ----------
    M : array_like, shape (d, d)
    z : array_like, shape (d,) or (N, d)

    Returns
    -------
    float or numpy.ndarray of shape (N,)
    """
    M = as_matrix("M", M)
    d = M.shape[0]
    if M.shape != (d, d):
        raise ValueError(f"M must be square, got shape {M.shape}")
    z = as_array("z", z)
    if z.ndim == 1:
        z = as_vector("z", z, d)
        return float(z @ M @ z)
    z = as_array("z", z, (None, d))
    return np.einsum("ni,ij,nj->n", z, M, z)


def q_value(H: np.ndarray, c: float, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Evaluate ``Q(x, u) = -[x; u]^T H [x; u] - c`` on a batch.

    Parameters
    ----------
    H : array_like, shape (n + m, n + m)
    c : float
    x : array_like, shape (N, n)
    u : array_like, shape (N, m)

    Returns
    -------
    numpy.ndarray, shape (N,)
    """
    H = as_matrix("H", H)
    x = as_array("x", x)
    u = as_array("u", u)
    if x.ndim != 2 or u.ndim != 2 or x.shape[0] != u.shape[0]:
        raise ValueError(f"x and u must have shapes (N, n) and (N, m), got {x.shape} and {u.shape}")
    if H.shape != (x.shape[1] + u.shape[1],) * 2:
        raise ValueError(f"H must have shape {(x.shape[1] + u.shape[1],) * 2}, got {H.shape}")
    c = float(as_array("c", c, ()))
    return -quadratic_form(H, np.hstack([x, u])) - c


def greedy_gain(H: np.ndarray, n: int) -> np.ndarray:
    """Gain of the greedy policy (eq. 8) of ``Q(x, u) = -[x; u]^T H [x; u] - c``.

    ``argmax_u Q(x, u) = -H_uu^{-1} H_ux x = -K x``.

    Parameters
    ----------
    H : array_like, shape (n + m, n + m)
        Symmetric, with a positive definite input block ``H[n:, n:]`` (else the maximum over
        ``u`` does not exist).
    n : int
        State dimension.

    Returns
    -------
    numpy.ndarray, shape (m, n)
    """
    H = as_matrix("H", H)
    d = H.shape[0]
    n = int(n)
    if H.shape != (d, d) or not 0 < n < d:
        raise ValueError(
            f"H must be square of size n + m with 0 < n < size, got H.shape={H.shape}, n={n}"
        )
    Huu = check_pd("H[n:, n:]", 0.5 * (H[n:, n:] + H[n:, n:].T))
    return np.linalg.solve(Huu, H[n:, :n])


def riccati_recursion(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    horizon: int,
    terminal: np.ndarray | None = None,
    gamma: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Finite-horizon Riccati recursion (dynamic programming backwards in time).

    With ``P_H = terminal`` and, for ``t = H-1, ..., 0``,

        K_t = gamma (R + gamma B^T P_{t+1} B)^{-1} B^T P_{t+1} A,
        P_t = Q + gamma A^T P_{t+1} (A - B K_t),

    the policy ``u_t = -K_t x_t`` maximises ``E[sum_{t<H} gamma^t r_t - gamma^H x_H^T P_H x_H]``
    and the optimal value at time t is ``-x^T P_t x`` (plus a noise constant).

    Parameters
    ----------
    A, B, Q, R
        As in :func:`dare`.
    horizon : int
        Number of decisions H >= 1.
    terminal : array_like, shape (n, n), optional
        Terminal weight P_H, symmetric PSD (default zero).
    gamma : float, default 1.0
        Discount factor in (0, 1].

    Returns
    -------
    K : numpy.ndarray, shape (H, m, n)
        Gains K_0, ..., K_{H-1}.
    P : numpy.ndarray, shape (H + 1, n, n)
        Cost-to-go matrices P_0, ..., P_H.
    """
    A, B, Q, R = _check_system(A, B, Q, R)
    n, m = B.shape
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    gamma = _check_gamma(gamma)
    P = np.zeros((horizon + 1, n, n))
    K = np.zeros((horizon, m, n))
    P[horizon] = _noise("terminal", terminal, n)
    for t in range(horizon - 1, -1, -1):
        Pn = gamma * P[t + 1]
        K[t] = np.linalg.solve(R + B.T @ Pn @ B, B.T @ Pn @ A)
        Pt = Q + A.T @ Pn @ (A - B @ K[t])
        P[t] = 0.5 * (Pt + Pt.T)
        if not (np.all(np.isfinite(K[t])) and np.all(np.isfinite(P[t]))):
            raise ValueError(
                f"riccati_recursion overflowed at step t={t} of horizon={horizon}: the gain K or "
                f"cost-to-go P is not finite in float64 (max |A| = {np.max(np.abs(A)):.3g}, "
                f"max |B| = {np.max(np.abs(B)):.3g}); expected A, B, Q, R and horizon small "
                "enough for A^T P A to stay below ~1e308 (rescale the model)"
            )
    return K, P


def closed_loop_radius(A: np.ndarray, B: np.ndarray, K: np.ndarray, gamma: float = 1.0) -> float:
    """Spectral radius of ``sqrt(gamma) (A - B K)``; the discounted return is finite iff < 1.

    Parameters
    ----------
    A : array_like, shape (n, n)
    B : array_like, shape (n, m)
    K : array_like, shape (m, n)
    gamma : float, default 1.0
    """
    A = as_matrix("A", A)
    n = A.shape[0]
    B = as_matrix("B", B, n, None)
    K = as_matrix("K", K, B.shape[1], n)
    gamma = _check_gamma(gamma)
    return float(np.sqrt(gamma) * np.max(np.abs(np.linalg.eigvals(A - B @ K))))


def policy_return(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    K: np.ndarray,
    x0_mean: np.ndarray,
    x0_cov: np.ndarray | None,
    noise_cov: np.ndarray | None,
    gamma: float = 1.0,
    horizon: int | None = None,
    action_noise_cov: np.ndarray | None = None,
) -> float:
    """Exact expected return of the linear policy ``u_t = -K x_t + e_t``.

    The return is ``J = E[sum_{t=0}^{T-1} gamma^t r_t]`` with ``r_t = -(x_t^T Q x_t + u_t^T R u_t)``
    charged on the state before the step and on the *applied* action, ``x_0 ~ (x0_mean, x0_cov)``,
    process noise ``w_t ~ (0, noise_cov)`` and action noise ``e_t ~ (0, action_noise_cov)``, all
    independent. Only first and second moments matter, so the result holds for any distributions
    with these moments (Gaussian in the book's environment).

    - ``horizon=None``: infinite horizon. With ``A_K = A - B K`` and ``M = Q + K^T R K``,
      ``P_K = M + gamma A_K^T P_K A_K`` (a Lyapunov equation) and

          J = -( mu^T P_K mu + tr(P_K S0)
                 + gamma / (1 - gamma) tr(P_K (W + B E B^T)) + 1 / (1 - gamma) tr(R E) ).

      Returns ``-inf`` when ``sqrt(gamma) A_K`` is not stable (the expected cost diverges).
    - ``horizon=T``: the finite sum over t < T, by propagating the state's mean and covariance.
      ``K`` may then be time-varying, shape ``(T, m, n)`` (e.g. from :func:`riccati_recursion`).

    Parameters
    ----------
    A, B, Q, R
        As in :func:`dare`.
    K : array_like, shape (m, n), or (T, m, n) with a finite horizon
        Feedback gain(s).
    x0_mean : array_like, shape (n,)
        Mean of the initial state.
    x0_cov : array_like, shape (n, n), or None
        Covariance of the initial state (``None``: fixed initial state).
    noise_cov : array_like, shape (n, n), or None
        Process-noise covariance W (``None``: no noise).
    gamma : float, default 1.0
        Discount factor in (0, 1]. ``gamma = 1`` with ``horizon=None`` requires no noise.
    horizon : int, optional
        Number of rewards T; ``None`` for the infinite sum.
    action_noise_cov : array_like, shape (m, m), optional
        Covariance E of additive action noise (``None``: deterministic policy).

    Returns
    -------
    float
        The expected return (reward units; <= 0), or ``-inf`` if it diverges.
    """
    A, B, Q, R = _check_system(A, B, Q, R)
    n, m = B.shape
    gamma = _check_gamma(gamma)
    K = as_array("K", K)
    if horizon is not None:
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon must be None or an integer >= 1, got {horizon!r}")
        if K.ndim == 3:
            K = as_array("K", K, (horizon, m, n))
        else:
            K = np.broadcast_to(as_matrix("K", K, m, n), (horizon, m, n))
    else:
        K = as_matrix("K", K, m, n)
    mu = as_vector("x0_mean", x0_mean, n)
    S = _noise("x0_cov", x0_cov, n)
    W = _noise("noise_cov", noise_cov, n)
    E = _noise("action_noise_cov", action_noise_cov, m)
    W_eff = W + B @ E @ B.T
    noise_each_step = float(np.trace(R @ E))

    if horizon is None:
        if gamma == 1.0 and (np.any(W_eff != 0.0) or noise_each_step != 0.0):
            raise ValueError(
                "gamma must be < 1 (or horizon finite) when noise_cov or action_noise_cov is "
                f"non-zero: the undiscounted infinite-horizon return diverges, got gamma={gamma}"
            )
        Acl = A - B @ K
        if np.sqrt(gamma) * np.max(np.abs(np.linalg.eigvals(Acl))) >= 1.0:
            return -np.inf
        M = Q + K.T @ R @ K
        PK = scipy.linalg.solve_discrete_lyapunov(np.sqrt(gamma) * Acl.T, M)
        PK = 0.5 * (PK + PK.T)
        cost = mu @ PK @ mu + np.trace(PK @ S)
        if gamma < 1.0:
            cost += gamma / (1.0 - gamma) * np.trace(PK @ W_eff) + noise_each_step / (1.0 - gamma)
        return -float(cost)

    cost = 0.0
    discount = 1.0
    for t in range(horizon):
        M = Q + K[t].T @ R @ K[t]
        cost += discount * (mu @ M @ mu + np.trace(M @ S) + noise_each_step)
        Acl = A - B @ K[t]
        mu = Acl @ mu
        S = Acl @ S @ Acl.T + W_eff
        discount *= gamma
        if not np.all(np.isfinite(S)) or not np.isfinite(cost):
            return -np.inf
    return -float(cost)
