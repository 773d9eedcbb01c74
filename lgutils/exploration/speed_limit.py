"""The chapter's problem: a cart on a rail that must reach the origin under a speed limit.

A double integrator with position ``p`` (m), velocity ``v`` (m/s), acceleration input ``u``
(m/s^2) and a bounded velocity disturbance, that must reach the origin without exceeding a speed
limit ``v <= v_max``. Its rewards are quadratic, ``r = -(x^T Q x + u^T R u)``, and its optimal
unconstrained Q-function ``Q*`` is known in closed form (:func:`lgutils.core.lqr.q_matrix`), so a
fitted ``Q_phi`` can be compared with it.

Conventions: rewards are maximised, costs minimised (``Q_phi = -Q^MPC``, paper footnote 1);
``Q_phi(x, u) = -([x; u]^T H [x; u] + c)`` as in :mod:`lgutils.core.rl`. Shapes: ``N`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lgutils.core import lqr
from lgutils.core.validate import (
    as_array,
    check_in_open_interval,
    check_nonnegative,
    check_positive_int,
)

__all__ = [
    "SpeedLimitProblem",
    "speed_limit_problem",
    "check_problem",
    "plant_step",
    "stage_reward",
    "stage_quadratic",
    "optimal_q",
    "initial_states",
]


@dataclass(frozen=True)
class SpeedLimitProblem:
    """A double integrator with a speed limit and a bounded velocity disturbance.

    ``x' = A x + B u + (0, w)``, ``w ~ U[-w_max, w_max]`` (m/s), ``|u| <= u_max``,
    reward ``r = -(x^T Q x + u^T R u)``; the constraint is ``v <= v_max``.

    Attributes
    ----------
    A : numpy.ndarray, shape (2, 2)
    B : numpy.ndarray, shape (2, 1)
    Q : numpy.ndarray, shape (2, 2)
        State weight (per m^2 and per (m/s)^2).
    R : numpy.ndarray, shape (1, 1)
        Input weight (per (m/s^2)^2).
    gamma : float
        Discount factor.
    dt : float
        Sampling time (s).
    v_max : float
        Speed limit (m/s).
    u_max : float
        Input bound (m/s^2).
    w_max : float
        Bound of the velocity disturbance per step (m/s).
    x0_low, x0_high : numpy.ndarray, shape (2,)
        Box of the initial states (m, m/s).
    region_low, region_high : numpy.ndarray, shape (2,)
        Box of the safe region of interest (its upper velocity is ``v_max``): coverage is
        measured on it and held-out transitions are drawn from it.
    """

    A: np.ndarray
    B: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    gamma: float
    dt: float
    v_max: float
    u_max: float
    w_max: float
    x0_low: np.ndarray
    x0_high: np.ndarray
    region_low: np.ndarray
    region_high: np.ndarray

    @property
    def noise_cov(self) -> np.ndarray:
        """Covariance of the disturbance, shape (2, 2): ``diag(0, w_max^2 / 3)``."""
        return np.diag([0.0, self.w_max**2 / 3.0])


def speed_limit_problem(
    dt: float = 0.2,
    v_max: float = 0.5,
    u_max: float = 1.0,
    w_max: float = 0.02,
    gamma: float = 0.95,
) -> SpeedLimitProblem:
    """The chapter's constrained problem: reach the origin from the left under a speed limit.

    Parameters
    ----------
    dt : float
        Sampling time (s).
    v_max : float
        Speed limit (m/s), > 0.
    u_max : float
        Input bound (m/s^2), > 0.
    w_max : float
        Bound of the uniform velocity disturbance (m/s), >= 0.
    gamma : float
        Discount factor in (0, 1).

    Returns
    -------
    SpeedLimitProblem
        Weights ``Q = diag(1, 0.1)``, ``R = 0.1``; initial states in ``p in [-2, -1]`` m,
        ``v in [-0.2, 0.2]`` m/s; region of interest ``p in [-2.5, 1]`` m,
        ``v in [-1, v_max]`` m/s.
    """
    dt = check_in_open_interval("dt", dt, 0.0, np.inf)
    v_max = check_in_open_interval("v_max", v_max, 0.0, np.inf)
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    w_max = check_nonnegative("w_max", w_max)
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0)
    if w_max >= v_max:
        raise ValueError(f"w_max must be smaller than v_max={v_max}, got {w_max}")
    return SpeedLimitProblem(
        A=np.array([[1.0, dt], [0.0, 1.0]]),
        B=np.array([[0.5 * dt**2], [dt]]),
        Q=np.diag([1.0, 0.1]),
        R=np.array([[0.1]]),
        gamma=gamma,
        dt=dt,
        v_max=v_max,
        u_max=u_max,
        w_max=w_max,
        x0_low=np.array([-2.0, -0.2]),
        x0_high=np.array([-1.0, 0.2]),
        region_low=np.array([-2.5, -1.0]),
        region_high=np.array([1.0, v_max]),
    )


def check_problem(problem: Any) -> SpeedLimitProblem:
    """``problem`` if it is a :class:`SpeedLimitProblem`, else a ValueError that says so."""
    if not isinstance(problem, SpeedLimitProblem):
        raise ValueError(
            f"problem must be a SpeedLimitProblem (see speed_limit_problem), got {type(problem).__name__}"
        )
    return problem


def plant_step(problem: SpeedLimitProblem, x: Any, u: Any, rng: np.random.Generator) -> np.ndarray:
    """One step of the true system for a batch: ``x' = A x + B u + (0, w)``.

    Parameters
    ----------
    problem : SpeedLimitProblem
    x : array_like, shape (N, 2)
        States (m, m/s).
    u : array_like, shape (N, 1)
        Applied inputs (m/s^2); not clipped here.
    rng : numpy.random.Generator
        Draws ``w ~ U[-w_max, w_max]`` (one per row).

    Returns
    -------
    numpy.ndarray, shape (N, 2)
    """
    problem = check_problem(problem)
    x = as_array("x", x, (None, 2))
    u = as_array("u", u, (x.shape[0], 1))
    w = rng.uniform(-problem.w_max, problem.w_max, size=x.shape[0])
    return x @ problem.A.T + u @ problem.B.T + np.column_stack([np.zeros_like(w), w])


def stage_reward(problem: SpeedLimitProblem, x: Any, u: Any) -> np.ndarray:
    """``r = -(x^T Q x + u^T R u)`` for a batch: ``x`` (N, 2), ``u`` (N, 1) -> (N,)."""
    problem = check_problem(problem)
    x = as_array("x", x, (None, 2))
    u = as_array("u", u, (x.shape[0], 1))
    return -(lqr.quadratic_form(problem.Q, x) + lqr.quadratic_form(problem.R, u))


def stage_quadratic(problem: SpeedLimitProblem) -> np.ndarray:
    """``blockdiag(Q, R)``, shape (3, 3): the stage cost as a quadratic in ``[x; u]``."""
    problem = check_problem(problem)
    return np.block([[problem.Q, np.zeros((2, 1))], [np.zeros((1, 2)), problem.R]])


def optimal_q(problem: SpeedLimitProblem) -> tuple[np.ndarray, float]:
    """The optimal Q-function of the problem without input bounds and speed limit.

    Returns ``(H*, c*)`` with ``Q*(x, u) = -([x; u]^T H* [x; u] + c*)`` (eqs. 4-6 in closed form,
    :func:`lgutils.core.lqr.q_matrix`, with the disturbance covariance). It is the fixed point that
    fitted Q-iteration with an unconstrained ``max`` (eq. 9) targets, whatever the data.
    """
    problem = check_problem(problem)
    return lqr.q_matrix(
        problem.A, problem.B, problem.Q, problem.R, problem.gamma, noise_cov=problem.noise_cov
    )


def initial_states(problem: SpeedLimitProblem, n: int, seed: int) -> np.ndarray:
    """``n`` initial states drawn uniformly in ``[x0_low, x0_high]``, shape (n, 2)."""
    problem = check_problem(problem)
    n = check_positive_int("n", n)
    seed = check_positive_int("seed", seed, minimum=0)
    return np.random.default_rng(seed).uniform(problem.x0_low, problem.x0_high, size=(n, 2))
