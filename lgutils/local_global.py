"""Local actions and global optimality (paper Sec. III.B, Figs. 1-2): the measurements.

The *global* view asks whether a parametric Q-function satisfies the Bellman optimality
equation (6) over the state-action space; the *local* view acts greedily with respect to it
(eq. 14) and, by acting, collects the transitions ``(s, a, r, s')`` on which the global
condition can be checked. This module holds the measurements the chapter makes on an
:class:`lgutils.mpc.MPC`:

- :func:`bellman_residuals` -- the residual of eq. (6) for ``Q_phi = -Q^MPC`` on transitions;
- :func:`fit_quadratic_value` -- policy evaluation from on-policy transitions (least squares
  on quadratic features), the "global" step of policy iteration;
- :func:`discounted_returns`, :func:`mpc_policy` -- closed-loop returns of the local agent;
- :func:`point_mass`, :func:`ellipse_margin`, :func:`waypoint_guess` -- the obstacle example
  of Fig. 2 (top).

Conventions: rewards are maximised, ``r = -cost``; the MPC minimises costs, so
``Q_phi(s, a) = -Q^MPC(s, a)`` and ``max_a Q_phi(s, a) = -V^MPC(s)`` (paper footnote 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lgutils.core.validate import as_array, as_vector, check_in_open_interval, check_positive_int
from lgutils.mpc import MPC

__all__ = [
    "bellman_residuals",
    "fit_quadratic_value",
    "discounted_returns",
    "mpc_policy",
    "point_mass",
    "ellipse_margin",
    "waypoint_guess",
]


def bellman_residuals(
    mpc: MPC,
    states: Any,
    actions: Any,
    rewards: Any,
    next_states: Any,
    gamma: float,
    phi: Any = None,
) -> np.ndarray:
    """Residuals of the Bellman optimality equation (6) for ``Q_phi = -Q^MPC`` on transitions.

    ``delta_i = Q_phi(s_i, a_i) - (r_i + gamma max_a' Q_phi(s'_i, a'))``
    ``        = -Q^MPC(s_i, a_i) - r_i + gamma V^MPC(s'_i)``; zero for every transition iff
    ``Q_phi`` satisfies eq. (6) on them (deterministic transitions).

    Parameters
    ----------
    mpc : MPC
        The Q-function approximator (build it with ``discount=gamma``).
    states : array_like, shape (N, nx)
    actions : array_like, shape (N, nu)
    rewards : array_like, shape (N,)
        Rewards (maximised; ``-cost``).
    next_states : array_like, shape (N, nx)
    gamma : float
        Discount factor in (0, 1].
    phi : dict or array_like, optional
        The MPC's parameters.

    Returns
    -------
    numpy.ndarray, shape (N,)
        The residuals, in reward units.
    """
    if not isinstance(mpc, MPC):
        raise ValueError(f"mpc must be an MPC, got {type(mpc).__name__}")
    S = as_array("states", states, (None, mpc.nx))
    N = S.shape[0]
    A = as_array("actions", actions, (N, mpc.nu))
    R = as_array("rewards", rewards, (N,))
    S2 = as_array("next_states", next_states, (N, mpc.nx))
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True)
    q = mpc.q_value_batch(S, A, phi).values
    v = mpc.value_batch(S2, phi).values
    return -q - R + gamma * v


def _quadratic_features(X: np.ndarray) -> np.ndarray:
    """Features ``x_i x_j`` (i <= j, off-diagonal ones doubled) so that ``x'Px = f(x) . p``."""
    n = X.shape[1]
    iu = np.triu_indices(n)
    F = X[:, iu[0]] * X[:, iu[1]]
    F[:, iu[0] != iu[1]] *= 2.0
    return F


def fit_quadratic_value(states: Any, rewards: Any, next_states: Any, gamma: float) -> np.ndarray:
    """Policy evaluation from on-policy transitions: the ``P`` of ``V(x) = -x^T P x``.

    Solves, in the least-squares sense, the Bellman *evaluation* equation
    ``V(s_i) = r_i + gamma V(s'_i)`` over the transitions, i.e.
    ``s_i^T P s_i - gamma s_i'^T P s_i' = -r_i``, linear in the ``n (n + 1) / 2`` entries of the
    symmetric ``P``. Exact for deterministic linear-quadratic problems once the states span the
    quadratic features.

    Parameters
    ----------
    states, next_states : array_like, shape (N, n)
    rewards : array_like, shape (N,)
        Rewards ``r = -cost``.
    gamma : float
        Discount factor in (0, 1].

    Returns
    -------
    numpy.ndarray, shape (n, n)
        Symmetric ``P`` (cost-to-go matrix, ``V(x) = -x^T P x``).

    Raises
    ------
    ValueError
        If fewer transitions than unknowns are given.
    """
    S = as_array("states", states, (None, None))
    N, n = S.shape
    R = as_array("rewards", rewards, (N,))
    S2 = as_array("next_states", next_states, (N, n))
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True)
    n_unknown = n * (n + 1) // 2
    if N < n_unknown:
        raise ValueError(f"states must hold at least {n_unknown} transitions for n={n}, got {N}")
    F = _quadratic_features(S) - gamma * _quadratic_features(S2)
    p, *_ = np.linalg.lstsq(F, -R, rcond=None)
    P = np.zeros((n, n))
    P[np.triu_indices(n)] = p
    return P + np.triu(P, 1).T


def discounted_returns(rewards: Any, gamma: float) -> np.ndarray:
    """``sum_t gamma^t r_t`` of each episode.

    Parameters
    ----------
    rewards : array_like, shape (N, T)
    gamma : float
        Discount factor in (0, 1].

    Returns
    -------
    numpy.ndarray, shape (N,)
    """
    R = as_array("rewards", rewards, (None, None))
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True)
    return R @ gamma ** np.arange(R.shape[1])


def mpc_policy(
    mpc: MPC, phi: Any = None, noise_std: float = 0.0, seed: int | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The local agent ``pi_phi^MPC`` (eq. 14) as a batch policy ``X (N, nx) -> U (N, nu)``.

    Parameters
    ----------
    mpc : MPC
    phi : dict or array_like, optional
    noise_std : float
        Standard deviation of Gaussian exploration noise added to each action (input units).
    seed : int, optional
        Seed of the exploration noise.

    Returns
    -------
    callable
        For :meth:`lgutils.core.envs.LinearQuadraticEnv.simulate`; raises
        :class:`lgutils.mpc.MPCSolveError` if a solve fails.
    """
    if not isinstance(mpc, MPC):
        raise ValueError(f"mpc must be an MPC, got {type(mpc).__name__}")
    noise_std = float(noise_std)
    if not np.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    rng = np.random.default_rng(seed)
    phi_vec = None if phi is None else mpc.flatten_phi(phi)

    def act(X: np.ndarray) -> np.ndarray:
        U = mpc.policy_batch(X, phi_vec).actions
        if noise_std > 0:
            U = U + noise_std * rng.standard_normal(U.shape)
        return U

    return act


def point_mass(dt: float, dim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A point mass (double integrator) in ``dim`` dimensions, exactly discretised.

    State ``(position, velocity)`` of shape (2 dim,) in m and m/s, input acceleration (m/s^2)
    held constant over a step of ``dt`` seconds.

    Returns
    -------
    A : numpy.ndarray, shape (2 dim, 2 dim)
    B : numpy.ndarray, shape (2 dim, dim)
    """
    dt = check_in_open_interval("dt", dt, 0.0, np.inf)
    dim = check_positive_int("dim", dim)
    eye, zero = np.eye(dim), np.zeros((dim, dim))
    A = np.block([[eye, dt * eye], [zero, eye]])
    B = np.vstack([0.5 * dt**2 * eye, dt * eye])
    return A, B


def ellipse_margin(position: Any, center: Any, semi_axes: Any) -> Any:
    """``1 - sum_i ((p_i - c_i) / a_i)^2``: positive inside the ellipse, ``<= 0`` outside.

    Works on numpy arrays (``position`` of shape (2,) or (N, 2)) and on CasADi symbols (the
    first two entries of a state column), so the same function is the MPC's constraint
    ``ellipse_margin(x[:2], ...) <= 0`` and the check of the executed trajectory.
    """
    c = as_vector("center", center, 2)
    a = as_vector("semi_axes", semi_axes, 2)
    if np.any(a <= 0):
        raise ValueError(f"semi_axes must be positive, got {a}")
    if isinstance(position, np.ndarray | list | tuple):
        P = np.atleast_2d(np.asarray(position, dtype=float))
        out = 1.0 - (((P[:, :2] - c) / a) ** 2).sum(axis=1)
        return out if np.ndim(position) > 1 else float(out[0])
    return 1 - ((position[0] - c[0]) / a[0]) ** 2 - ((position[1] - c[1]) / a[1]) ** 2


def waypoint_guess(x0: Any, waypoints: Any, horizon: int) -> np.ndarray:
    """An initial guess of the predicted states ``x_1..x_H`` through 2-D waypoints at rest.

    Parameters
    ----------
    x0 : array_like, shape (4,)
        Initial state (position, velocity).
    waypoints : array_like, shape (W, 2)
        Positions to pass through after ``x0``, the last one the target, spaced evenly in time.
    horizon : int

    Returns
    -------
    numpy.ndarray, shape (H, 4)
        Positions interpolated along the waypoints, velocities zero; pass it as
        ``SolverOptions(initial_guess={"x": ...})`` of the MPC.
    """
    x0 = as_vector("x0", x0, 4)
    W = as_array("waypoints", waypoints, (None, 2))
    H = check_positive_int("horizon", horizon)
    pts = np.vstack([x0[:2], W])
    knots = np.linspace(0.0, 1.0, len(pts))
    s = np.linspace(0.0, 1.0, H + 1)[1:]
    pos = np.column_stack([np.interp(s, knots, pts[:, i]) for i in range(2)])
    return np.hstack([pos, np.zeros((H, 2))])
