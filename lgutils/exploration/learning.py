"""What the exploring agent learns from its transitions: a quadratic ``Q_phi`` and an ensemble.

:func:`fitted_q` is fitted Q-iteration on the loss of eq. (9) for a quadratic
``Q_phi(x, u) = -([x; u]^T H [x; u] + c)``, with sample weights (bootstrap counts) and a prior;
:func:`value_weight` turns a fitted ``Q_phi`` into the terminal weight ``P`` of an MPC
(``max_u Q_phi(x, u) = -(x^T P x + c)``). The ensemble agent of
:mod:`lgutils.exploration.strategies` keeps several such fits (:func:`fit_ensemble`), each
shrunk to its own random prior (:func:`ensemble_prior`), and measures where they disagree
(:func:`ensemble_disagreement`).

Shapes: ``N`` samples, ``n`` states, ``m`` inputs, ``d = n + m``, ``K`` ensemble members.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lgutils.core.rl import (
    Transitions,
    floored_schur,
    quadratic_features,
    quadratic_to_theta,
    theta_to_quadratic,
)
from lgutils.core.validate import (
    as_array,
    as_matrix,
    as_vector,
    check_in_open_interval,
    check_nonnegative,
    check_positive_int,
)
from lgutils.exploration.speed_limit import SpeedLimitProblem, check_problem, stage_quadratic

__all__ = [
    "check_transitions",
    "concatenate",
    "fitted_q",
    "symmetric_schur",
    "psd_part",
    "value_weight",
    "ensemble_prior",
    "ensemble_rows",
    "ensemble_disagreement",
    "fit_ensemble",
]


def check_transitions(data: Any) -> Transitions:
    """``data`` if it is an :class:`lgutils.core.rl.Transitions`, else a ValueError."""
    if not isinstance(data, Transitions):
        raise ValueError(f"data must be an lgutils.core.rl.Transitions, got {type(data).__name__}")
    return data


def concatenate(*parts: Transitions) -> Transitions:
    """The transitions of ``parts`` one after the other (each field concatenated on axis 0)."""
    parts = tuple(check_transitions(p) for p in parts)
    return Transitions(*(np.concatenate(z) for z in zip(*parts, strict=True)))


def symmetric_schur(H: np.ndarray, n: int) -> np.ndarray:
    """``H_xx - H_xu H_uu^{-1} H_ux``, symmetrised, with ``H_uu``'s eigenvalues floored.

    The floor is that of :func:`lgutils.core.rl.max_q` (:func:`lgutils.core.rl.floored_schur`):
    ``max_u Q_phi(x, u) = -(x^T S x + c)`` with ``S`` this matrix, shape (n, n).
    """
    S = floored_schur(H, n)
    return 0.5 * (S + S.T)


def psd_part(S: np.ndarray) -> np.ndarray:
    """The symmetric matrix ``S`` with its negative eigenvalues set to zero (the PSD projection)."""
    lam, V = np.linalg.eigh(S)
    return (V * np.maximum(lam, 0.0)) @ V.T


def value_weight(H: Any, n: int) -> np.ndarray:
    """``P`` of ``max_u Q_phi(x, u) = -(x^T P x + c)``, projected onto the PSD cone.

    ``P = H_xx - H_xu H_uu^{-1} H_ux`` (the input block's eigenvalues floored as in
    :func:`lgutils.core.rl.max_q`), symmetrised, with negative eigenvalues set to zero so that it
    can serve as an MPC terminal weight.

    Parameters
    ----------
    H : array_like, shape (n + m, n + m)
    n : int
        State dimension.

    Returns
    -------
    numpy.ndarray, shape (n, n)
    """
    H = as_matrix("H", H)
    d = H.shape[0]
    n = check_positive_int("n", n)
    if H.shape != (d, d) or n >= d:
        raise ValueError(f"H must be square of size n + m > n={n}, got shape {H.shape}")
    return psd_part(symmetric_schur(H, n))


def _prior_theta(prior: Any, d: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(theta_0, H, c)`` of the prior ``(H0, c0)`` (zeros without one)."""
    if prior is None:
        return np.zeros(d * (d + 1) // 2 + 1), np.zeros((d, d)), 0.0
    H0 = as_matrix("prior[0]", prior[0], d, d)
    c = float(as_array("prior[1]", prior[1], ()))
    return quadratic_to_theta(H0, c), 0.5 * (H0 + H0.T), c


def fitted_q(
    data: Transitions,
    gamma: float,
    n_iterations: int,
    *,
    weights: Any = None,
    prior: tuple[np.ndarray, float] | None = None,
    prior_weight: float = 0.0,
    ridge: float = 1e-8,
) -> tuple[np.ndarray, float]:
    """Fitted Q-iteration (eq. 9) with a quadratic ``Q_phi``, sample weights and a prior.

    Iteration k fixes the target ``y = r + gamma max_u' Q_k(x', u')`` (unconstrained max, with
    the value's quadratic form projected onto the PSD cone by :func:`value_weight`: costs are
    non-negative, and an indefinite intermediate fit would otherwise feed ever larger targets
    back into the iteration) and solves the weighted least-squares problem

        min_theta  sum_n w_n (phi_n theta + y_n)^2 + lambda ||S (theta - theta_0)||^2
                   + ridge N ||S theta||^2,

    where ``phi_n theta = -Q(x_n, u_n)`` (:func:`lgutils.core.rl.quadratic_features`), ``S`` scales
    each feature to unit root-mean-square, ``theta_0`` is the prior and ``lambda`` its weight
    (a fixed number of pseudo-samples: the data outweigh it as they accumulate). The iteration
    starts from the prior (or from ``Q = 0``).

    Parameters
    ----------
    data : lgutils.core.rl.Transitions
        ``N`` samples.
    gamma : float
        Discount factor in (0, 1).
    n_iterations : int
        Number of fits (the error contracts like ``gamma^k``).
    weights : array_like, shape (N,), optional
        Non-negative sample weights (bootstrap counts); default all ones.
    prior : tuple (H0, c0), optional
        Prior quadratic ``Q_0 = -([x; u]^T H0 [x; u] + c0)``, ``H0`` of shape (d, d).
    prior_weight : float
        ``lambda >= 0``.
    ridge : float
        Tikhonov weight towards zero, relative to ``N``.

    Returns
    -------
    H : numpy.ndarray, shape (d, d)
    c : float
    """
    data = check_transitions(data)
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0)
    n_iterations = check_positive_int("n_iterations", n_iterations)
    n, m = data.x.shape[1], data.u.shape[1]
    d = n + m
    N = data.x.shape[0]
    w = np.ones(N) if weights is None else as_vector("weights", weights, N)
    if np.any(w < 0):
        raise ValueError(f"weights must be >= 0, got a minimum of {w.min()}")
    lam = check_nonnegative("prior_weight", prior_weight)
    ridge = check_nonnegative("ridge", ridge)
    theta0, H, c = _prior_theta(prior, d)
    Phi = quadratic_features(data.x, data.u)
    scale = np.sqrt(np.mean(Phi**2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    Phis = Phi / scale
    Phw = (Phis * w[:, None]).T
    G = Phw @ Phis + (lam + ridge * N) * np.eye(Phis.shape[1])
    prior_term = lam * theta0 * scale
    Xn = data.x_next
    for _ in range(n_iterations):
        S = psd_part(symmetric_schur(H, n))
        y = data.r - gamma * (np.einsum("ni,ij,nj->n", Xn, S, Xn) + c)
        theta = np.linalg.solve(G, Phw @ (-y) + prior_term) / scale
        H, c = theta_to_quadratic(theta, d)
    return H, c


def ensemble_prior(
    problem: SpeedLimitProblem, n_members: int, rng: np.random.Generator, dof: int = 3
) -> list[np.ndarray]:
    """Random prior quadratics ``H_i^0`` of the ensemble members, shape (3, 3) each.

    Wishart draws ``H_i^0 = L Z Z^T L^T / dof`` with ``Z`` of shape (3, dof) standard normal
    and ``L L^T = blockdiag(Q, R)``: their mean is the stage cost's quadratic, their spread
    (``dof`` small) is the ensemble's initial disagreement.
    """
    problem = check_problem(problem)
    n_members = check_positive_int("n_members", n_members, minimum=2)
    dof = check_positive_int("dof", dof)
    L = np.linalg.cholesky(stage_quadratic(problem))
    out = []
    for _ in range(n_members):
        Z = rng.standard_normal((3, dof))
        out.append(L @ Z @ Z.T @ L.T / dof)
    return out


def ensemble_rows(weights: Any) -> np.ndarray:
    """The members' value weights ``P_i`` (2, 2) as rows ``(P_i[0, 0], P_i[0, 1], P_i[1, 1])``.

    The parameter ``"E"`` (shape (K, 3)) of :func:`lgutils.exploration.strategies.exploration_mpc`
    and the argument of :func:`ensemble_disagreement`.
    """
    P = as_array("weights", weights, (None, 2, 2))
    return np.array([[Pi[0, 0], Pi[0, 1], Pi[1, 1]] for Pi in P])


def ensemble_disagreement(E: Any, states: Any) -> np.ndarray:
    """Standard deviation over members of ``V_i(x) = x^T P_i x`` at each state.

    Parameters
    ----------
    E : array_like, shape (K, 3)
        Rows ``(P_i[0, 0], P_i[0, 1], P_i[1, 1])`` (:func:`ensemble_rows`).
    states : array_like, shape (N, 2)

    Returns
    -------
    numpy.ndarray, shape (N,)
        Sample standard deviation (``ddof=1``), in cost units.
    """
    E = as_array("E", E, (None, 3))
    if E.shape[0] < 2:
        raise ValueError(f"E must have at least 2 rows (members), got {E.shape[0]}")
    x = as_array("states", states, (None, 2))
    feats = np.column_stack([x[:, 0] ** 2, 2 * x[:, 0] * x[:, 1], x[:, 1] ** 2])
    return np.std(feats @ E.T, axis=1, ddof=1)


def fit_ensemble(
    data: Transitions,
    priors: list[np.ndarray],
    gamma: float,
    n_iterations: int,
    prior_weight: float,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Refit every member on Poisson(1) bootstrap weights of ``data``, shrunk to its own prior.

    Member ``i`` is :func:`fitted_q` with weights ``w ~ Poisson(1)`` (one per sample, drawn from
    ``rng`` member after member) and the prior ``(priors[i], 0)`` of weight ``prior_weight``;
    what is returned is its :func:`value_weight`, shape (2, 2), one per member.
    """
    members = []
    for H0 in priors:
        w = rng.poisson(1.0, size=data.x.shape[0]).astype(float)
        Hi, _ = fitted_q(
            data, gamma, n_iterations, weights=w, prior=(H0, 0.0), prior_weight=prior_weight
        )
        members.append(value_weight(Hi, 2))
    return members
