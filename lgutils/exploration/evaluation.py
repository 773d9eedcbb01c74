"""What an exploring agent's data are worth: coverage, violations, Bellman error, closed loop.

Four measurements of the runs of :func:`lgutils.exploration.strategies.explore`: how much of the
safe region the agent visited (:func:`coverage`), how often it broke the speed limit
(:func:`violations`), how well the fitted ``Q_phi`` satisfies the Bellman equation (6) on
held-out pairs (:func:`bellman_error`, with the expectation over the disturbance computed
exactly) and how well a greedy MPC with the fitted value as terminal weight controls the
system (:func:`evaluate_weight`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from lgutils.core import lqr
from lgutils.core.rl import max_q
from lgutils.core.seeding import spawn_seeds
from lgutils.core.validate import as_array, as_matrix, as_vector, check_positive_int
from lgutils.exploration.learning import symmetric_schur
from lgutils.exploration.speed_limit import (
    SpeedLimitProblem,
    check_problem,
    plant_step,
    stage_reward,
)
from lgutils.exploration.strategies import exploration_mpc, greedy_parameters
from lgutils.mpc import closed_loop

__all__ = [
    "Evaluation",
    "coverage",
    "violations",
    "held_out_pairs",
    "bellman_residuals",
    "bellman_error",
    "evaluate_weight",
]


def coverage(states: Any, low: Any, high: Any, bins: Any) -> float:
    """Fraction of the cells of a regular grid on ``[low, high]`` that contain a state.

    Parameters
    ----------
    states : array_like, shape (N, n)
        Visited states; those outside the box are ignored.
    low, high : array_like, shape (n,)
        The box (``low < high``).
    bins : int or array_like of int, shape (n,)
        Cells per dimension.

    Returns
    -------
    float
        In [0, 1].
    """
    X = as_array("states", states, (None, None))
    n = X.shape[1]
    low, high = as_vector("low", low, n), as_vector("high", high, n)
    if np.any(low >= high):
        raise ValueError(f"low must be < high elementwise, got {low} and {high}")
    b = np.broadcast_to(np.asarray(bins), (n,))
    if not all(isinstance(v, (int, np.integer)) and v >= 1 for v in b.tolist()):
        raise ValueError(f"bins must be positive integers (one or one per dimension), got {bins!r}")
    b = b.astype(int)
    inside = np.all((X >= low) & (X <= high), axis=1)
    idx = np.floor((X[inside] - low) / (high - low) * b).astype(int)
    idx = np.minimum(idx, b - 1)  # a state on the upper face belongs to the last cell
    flat = np.ravel_multi_index(idx.T, tuple(b)) if len(idx) else np.array([], dtype=int)
    return float(len(np.unique(flat)) / np.prod(b))


def violations(states: Any, v_max: float) -> tuple[int, float]:
    """Speed-limit violations: how many states have ``v > v_max`` and by how much at most.

    Parameters
    ----------
    states : array_like, shape (..., 2)
        States (m, m/s), any leading shape.
    v_max : float
        Speed limit (m/s).

    Returns
    -------
    count : int
    max_excess : float
        ``max(0, max v - v_max)`` (m/s).
    """
    X = as_array("states", states)
    if X.ndim < 1 or X.shape[-1] != 2:
        raise ValueError(f"states must have shape (..., 2), got {X.shape}")
    v_max = float(as_array("v_max", v_max, ()))
    excess = X[..., 1] - v_max
    return int(np.sum(excess > 0)), float(max(0.0, np.max(excess, initial=0.0)))


def held_out_pairs(problem: SpeedLimitProblem, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` test state-action pairs: states uniform in the safe region, inputs in the bounds.

    Independent of every strategy's data: the Bellman error on them (:func:`bellman_error`)
    measures how well a fitted ``Q_phi`` holds over the region, not only where its data came
    from.

    Returns
    -------
    x : numpy.ndarray, shape (n, 2)
    u : numpy.ndarray, shape (n, 1)
    """
    problem = check_problem(problem)
    n = check_positive_int("n", n)
    seed = check_positive_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    x = rng.uniform(problem.region_low, problem.region_high, size=(n, 2))
    return x, rng.uniform(-problem.u_max, problem.u_max, size=(n, 1))


def bellman_residuals(problem: SpeedLimitProblem, H: Any, c: float, x: Any, u: Any) -> np.ndarray:
    """Residuals of the Bellman optimality equation (6) for a quadratic ``Q_phi``, exactly.

    ``delta = Q_phi(x, u) - (r(x, u) + gamma E_w[max_u' Q_phi(x', u')])`` with
    ``x' = A x + B u + (0, w)``; for a quadratic ``Q_phi`` the expectation is exact:
    ``E_w[max_u' Q_phi(x', u')] = -(m^T S m + tr(S W) + c)``, ``m = A x + B u``, ``S`` the Schur
    complement of :func:`lgutils.core.rl.max_q`. ``Q*``
    (:func:`lgutils.exploration.speed_limit.optimal_q`) has ``delta = 0`` at every pair. (A
    sampled next state would add the disturbance's variance to the squared residual, and that
    variance is smaller for flatter ``Q_phi`` than for ``Q*``: the "double sampling" bias. The
    chapter knows the disturbance's distribution; the agent does not.)

    Parameters
    ----------
    problem : SpeedLimitProblem
    H : array_like, shape (3, 3)
    c : float
    x : array_like, shape (N, 2)
    u : array_like, shape (N, 1)

    Returns
    -------
    numpy.ndarray, shape (N,)
        In reward units.
    """
    problem = check_problem(problem)
    H = as_matrix("H", H, 3, 3)
    c = float(as_array("c", c, ()))
    x = as_array("x", x, (None, 2))
    u = as_array("u", u, (x.shape[0], 1))
    S = symmetric_schur(0.5 * (H + H.T), 2)
    m = x @ problem.A.T + u @ problem.B.T
    v_next = max_q(H, c, m, 2) - float(np.trace(S @ problem.noise_cov))
    q = -(lqr.quadratic_form(H, np.hstack([x, u])) + c)
    return q - (stage_reward(problem, x, u) + problem.gamma * v_next)


def bellman_error(problem: SpeedLimitProblem, H: Any, c: float, x: Any, u: Any) -> float:
    """Mean squared :func:`bellman_residuals`: the loss of eq. (9) with the exact expectation."""
    return float(np.mean(bellman_residuals(problem, H, c, x, u) ** 2))


class Evaluation(NamedTuple):
    """Closed-loop evaluation of an MPC with a given terminal weight (:func:`evaluate_weight`).

    Attributes
    ----------
    returns : numpy.ndarray, shape (N,)
        Discounted return of each run (reward units).
    states : numpy.ndarray, shape (N, T + 1, 2)
    n_violations : int
    max_violation : float
        Largest excess over the speed limit (m/s).
    """

    returns: np.ndarray
    states: np.ndarray
    n_violations: int
    max_violation: float


def evaluate_weight(
    problem: SpeedLimitProblem,
    P: Any,
    horizon: int,
    x0s: Any,
    steps: int,
    seed: int,
) -> Evaluation:
    """Closed-loop return of the greedy MPC agent whose terminal weight is ``P``.

    Runs :func:`lgutils.mpc.closed_loop` (no exploration) from each initial state with the
    disturbances of ``seed`` (run ``i`` uses the ``i``-th of
    :func:`lgutils.core.seeding.spawn_seeds`, so two weights are compared on the same
    disturbances).

    Parameters
    ----------
    problem : SpeedLimitProblem
    P : array_like, shape (2, 2)
        Terminal weight (symmetric PSD), e.g. :func:`lgutils.exploration.learning.value_weight`
        of a fitted ``Q_phi``.
    horizon : int
    x0s : array_like, shape (N, 2)
    steps : int
        T steps per run.
    seed : int

    Returns
    -------
    Evaluation
    """
    problem = check_problem(problem)
    P = as_matrix("P", P, 2, 2)
    X0 = as_array("x0s", x0s, (None, 2))
    T = check_positive_int("steps", steps)
    seeds = spawn_seeds(check_positive_int("seed", seed, minimum=0), X0.shape[0])
    mpc = exploration_mpc(problem, horizon)
    phi = greedy_parameters(P)
    discount = problem.gamma ** np.arange(T)
    returns, runs = np.empty(X0.shape[0]), np.empty((X0.shape[0], T + 1, 2))
    for i, x0 in enumerate(X0):
        rng = np.random.default_rng(seeds[i])
        mpc.reset_warm_start()
        run = closed_loop(
            mpc, lambda x, u, rng=rng: plant_step(problem, x[None], u[None], rng)[0], x0, T, phi
        )
        runs[i] = run.states
        returns[i] = float(discount @ stage_reward(problem, run.states[:-1], run.actions))
    count, worst = violations(runs, problem.v_max)
    return Evaluation(returns, runs, count, worst)
