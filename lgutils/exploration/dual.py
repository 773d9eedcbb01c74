"""Dual control (refs. [32]-[34]): probing an unknown gain because the information pays.

A scalar integrator ``x' = x + b u + w`` whose input gain ``b`` is unknown (Gaussian prior,
Bayesian updates, :func:`posterior_update`): a certainty-equivalence agent acts as if the
estimate were the truth, a cautious agent minimises the expected cost under the current
uncertainty, and a dual agent adds a bonus for the information an action will bring
(:func:`dual_objective`, minimised exactly by :func:`dual_action`). :func:`dual_control` runs
many such closed loops at once; the belief ``(mean, var)`` is part of their state.

Shapes: ``N`` runs of ``T`` steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from lgutils.core.rollout import rollout
from lgutils.core.validate import (
    as_array,
    check_in_open_interval,
    check_nonnegative,
    check_positive_int,
)

__all__ = [
    "DUAL_AGENTS",
    "DualRun",
    "posterior_update",
    "dual_objective",
    "dual_action",
    "agent_action",
    "dual_control",
]

#: The agents of :func:`dual_control`.
DUAL_AGENTS = ("oracle", "certainty_equivalence", "cautious", "dual")


def posterior_update(
    mean: Any, var: Any, u: Any, y: Any, noise_std: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bayesian update of a Gaussian belief on ``b`` after observing ``y = b u + w``.

    ``w ~ N(0, noise_std^2)``. Posterior precision ``1/var' = 1/var + u^2/noise_std^2``, mean
    ``mean' = var' (mean/var + u y/noise_std^2)`` (conjugate Gaussian; a Kalman filter step).
    A zero input brings no information: the belief is unchanged.

    Parameters
    ----------
    mean, var, u, y : array_like, shape (N,)
        Prior means and variances (> 0), inputs and observations.
    noise_std : float
        > 0.

    Returns
    -------
    mean, var : numpy.ndarray, shape (N,)
    """
    mean = np.atleast_1d(as_array("mean", mean))
    var = np.atleast_1d(as_array("var", var, mean.shape))
    u = np.atleast_1d(as_array("u", u, mean.shape))
    y = np.atleast_1d(as_array("y", y, mean.shape))
    s2 = check_in_open_interval("noise_std", noise_std, 0.0, np.inf) ** 2
    if np.any(var <= 0):
        raise ValueError(f"var must be > 0, got a minimum of {var.min()}")
    new_var = 1.0 / (1.0 / var + u**2 / s2)
    return new_var * (mean / var + u * y / s2), new_var


def dual_objective(
    u: Any,
    x: Any,
    mean: Any,
    var: Any,
    noise_std: float,
    input_weight: float,
    probing_weight: float,
) -> np.ndarray:
    """The dual agent's one-step objective, for a batch of candidate inputs.

    ``J(u) = E[(x + b u)^2] + lam u^2 - eta I(u) - noise_std^2``
    ``     = (x + mean u)^2 + (var + lam) u^2 - (eta / 2) log(1 + var u^2 / noise_std^2)``,

    where ``I(u)`` is the mutual information (nats) between ``b ~ N(mean, var)`` and the
    observation ``y = b u + w``: the expected cost of the next step minus a bonus for what the
    step teaches. ``eta = 0`` is the cautious agent.

    Parameters
    ----------
    u : array_like, shape (N,) or (N, G)
        Candidate inputs (a grid of ``G`` per row, or one per row).
    x, mean, var : array_like, shape (N,)
    noise_std, input_weight, probing_weight : float
        ``sigma_w > 0``, ``lam >= 0``, ``eta >= 0``.

    Returns
    -------
    numpy.ndarray, the shape of ``u``
    """
    x = np.atleast_1d(as_array("x", x))
    mean = np.atleast_1d(as_array("mean", mean, x.shape))
    var = np.atleast_1d(as_array("var", var, x.shape))
    u = as_array("u", u)
    if u.shape[:1] != x.shape:
        raise ValueError(f"u must have shape ({x.shape[0]},) or ({x.shape[0]}, G), got {u.shape}")
    s2 = check_in_open_interval("noise_std", noise_std, 0.0, np.inf) ** 2
    lam = check_nonnegative("input_weight", input_weight)
    eta = check_nonnegative("probing_weight", probing_weight)
    col = (lambda z: z[:, None]) if u.ndim == 2 else (lambda z: z)
    return (
        (col(x) + col(mean) * u) ** 2
        + (col(var) + lam) * u**2
        - 0.5 * eta * np.log1p(col(var) * u**2 / s2)
    )


def _stationary_points(a, beta, k, eta) -> np.ndarray:
    """Real roots of ``2 a k u^3 + 2 beta k u^2 + (2 a - eta k) u + 2 beta``, shape (N, 3).

    Sorted ascending, NaN where a root is complex (or absent: a degenerate cubic is solved as
    the linear equation it becomes).
    """
    cand = np.full((a.shape[0], 3), np.nan)
    cubic = 2 * a * k > 1e-12 * np.maximum(1.0, np.abs(2 * a - eta * k))
    if np.any(cubic):
        lead = (2 * a * k)[cubic]
        p2, p1, p0 = (
            (2 * beta * k)[cubic] / lead,
            (2 * a - eta * k)[cubic] / lead,
            (2 * beta)[cubic] / lead,
        )
        comp = np.zeros((int(cubic.sum()), 3, 3))
        comp[:, 0, :] = -np.column_stack([p2, p1, p0])
        comp[:, 1, 0] = comp[:, 2, 1] = 1.0
        roots = np.linalg.eigvals(comp)
        real = np.abs(roots.imag) <= 1e-9 * np.maximum(1.0, np.abs(roots.real))
        r = np.where(real, roots.real, np.nan)
        cand[cubic] = np.sort(r, axis=1)
    lin = ~cubic
    if np.any(lin):
        denom = 2 * a[lin] - eta * k[lin]
        with np.errstate(divide="ignore", invalid="ignore"):
            cand[lin, 0] = np.where(denom != 0, -2 * beta[lin] / denom, np.nan)
    return cand


def dual_action(
    x: Any,
    mean: Any,
    var: Any,
    noise_std: float,
    input_weight: float,
    u_max: float,
    probing_weight: float,
) -> np.ndarray:
    """The exact minimiser of :func:`dual_objective` over ``|u| <= u_max``, for a batch.

    A stationary point solves the cubic ``2 a k u^3 + 2 beta k u^2 + (2 a - eta k) u +
    2 beta = 0`` with ``a = mean^2 + var + lam``, ``beta = mean x``, ``k = var/noise_std^2``;
    the candidates are its real roots inside the bounds and the two bounds, and the best one is
    returned (ties go to the first candidate in the order: roots sorted ascending, then
    ``-u_max``, ``u_max``). With ``eta = 0`` this is the cautious action
    ``clip(-mean x / (mean^2 + var + lam))``.

    Returns
    -------
    numpy.ndarray, shape (N,)
    """
    x = np.atleast_1d(as_array("x", x))
    mean = np.atleast_1d(as_array("mean", mean, x.shape))
    var = np.atleast_1d(as_array("var", var, x.shape))
    s2 = check_in_open_interval("noise_std", noise_std, 0.0, np.inf) ** 2
    lam = check_nonnegative("input_weight", input_weight)
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    eta = check_nonnegative("probing_weight", probing_weight)
    N = x.shape[0]
    cand = np.full((N, 5), np.nan)
    cand[:, :3] = _stationary_points(mean**2 + var + lam, mean * x, var / s2, eta)
    cand[np.abs(cand) > u_max] = np.nan
    cand[:, 3], cand[:, 4] = -u_max, u_max
    J = dual_objective(np.nan_to_num(cand), x, mean, var, np.sqrt(s2), lam, eta)
    J = np.where(np.isnan(cand), np.inf, J)
    return cand[np.arange(N), np.argmin(J, axis=1)]


def agent_action(
    agent: str,
    x: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    b_true: np.ndarray,
    noise_std: float,
    input_weight: float,
    u_max: float,
    probing_weight: float,
) -> np.ndarray:
    """The action of ``agent`` (one of :data:`DUAL_AGENTS`) for states and beliefs, shape (N,).

    - ``"oracle"``: knows ``b``: ``u = clip(-b x / (b^2 + lam))``;
    - ``"certainty_equivalence"``: ``u = clip(-mean x / (mean^2 + lam))`` (0 where undefined);
    - ``"cautious"``: ``u = clip(-mean x / (mean^2 + var + lam))``;
    - ``"dual"``: :func:`dual_action` with ``probing_weight``.
    """
    lam = input_weight
    if agent == "oracle":
        return np.clip(-b_true * x / (b_true**2 + lam), -u_max, u_max)
    if agent == "certainty_equivalence":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.clip(np.nan_to_num(-mean * x / (mean**2 + lam)), -u_max, u_max)
    if agent == "cautious":
        return np.clip(-mean * x / (mean**2 + var + lam), -u_max, u_max)
    if agent == "dual":
        return dual_action(x, mean, var, noise_std, lam, u_max, probing_weight)
    raise ValueError(f"agent must be one of {DUAL_AGENTS}, got {agent!r}")


class DualRun(NamedTuple):
    """Runs of :func:`dual_control`.

    Attributes
    ----------
    costs : numpy.ndarray, shape (N,)
        ``sum_t (x_{t+1}^2 + lam u_t^2)`` of each run.
    states : numpy.ndarray, shape (N, T + 1)
    actions : numpy.ndarray, shape (N, T)
    mean : numpy.ndarray, shape (N, T + 1)
        Posterior mean of ``b`` before each step (and after the last).
    std : numpy.ndarray, shape (N, T + 1)
        Posterior standard deviation of ``b``.
    """

    costs: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def _belief_loop(
    agent: str, b: np.ndarray, w: np.ndarray, noise_std: float, lam: float, u_max: float, eta: float
) -> tuple[Callable, Callable]:
    """``policy(z, t)`` and ``step(z, u, t)`` on the information state ``z = (x, mean, var)``."""

    def policy(z: np.ndarray, t: int) -> np.ndarray:
        x, mean, var = z.T
        return agent_action(agent, x, mean, var, b, noise_std, lam, u_max, eta)[:, None]

    def step(z: np.ndarray, u: np.ndarray, t: int) -> np.ndarray:
        x, mean, var = z.T
        x_next = x + b * u[:, 0] + w[:, t]  # the true system, with the run's noise
        mean, var = posterior_update(mean, var, u[:, 0], x_next - x, noise_std)  # y = b u + w
        return np.column_stack([x_next, mean, var])

    return policy, step


def dual_control(
    agent: str,
    b_true: Any,
    x0: float,
    steps: int,
    prior_mean: float,
    prior_std: float,
    noise_std: float,
    input_weight: float,
    u_max: float,
    probing_weight: float = 0.0,
    seed: int = 0,
) -> DualRun:
    """Control ``x' = x + b u + w`` with an unknown gain ``b``, learning it along the way.

    Every agent minimises the one-step cost ``(x + b u)^2 + lam u^2`` (bounded input) and updates
    a Gaussian belief on ``b`` after each step (:func:`posterior_update`); they differ in what
    they do with the belief ``N(mean, var)`` (:func:`agent_action`). The ``N`` runs are one
    batched :func:`lgutils.core.rollout.rollout` whose state is the information state
    ``(x, mean, var)``.

    Parameters
    ----------
    agent : str
        One of :data:`DUAL_AGENTS`.
    b_true : array_like, shape (N,)
        The true gain of each run.
    x0 : float
        Initial state of every run.
    steps : int
        T.
    prior_mean, prior_std : float
        The prior belief on ``b`` (``prior_std > 0``).
    noise_std : float
        Std of ``w`` (> 0); the runs' disturbances come from ``seed``.
    input_weight : float
        ``lam >= 0``.
    u_max : float
        Input bound (> 0).
    probing_weight : float
        ``eta >= 0`` (``"dual"`` only).
    seed : int

    Returns
    -------
    DualRun
    """
    if agent not in DUAL_AGENTS:
        raise ValueError(f"agent must be one of {DUAL_AGENTS}, got {agent!r}")
    b = np.atleast_1d(as_array("b_true", b_true))
    if b.ndim != 1:
        raise ValueError(f"b_true must have shape (N,), got {b.shape}")
    x0 = float(as_array("x0", x0, ()))
    T = check_positive_int("steps", steps)
    prior_mean = float(as_array("prior_mean", prior_mean, ()))
    prior_std = check_in_open_interval("prior_std", prior_std, 0.0, np.inf)
    noise_std = check_in_open_interval("noise_std", noise_std, 0.0, np.inf)
    lam = check_nonnegative("input_weight", input_weight)
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    eta = check_nonnegative("probing_weight", probing_weight)
    seed = check_positive_int("seed", seed, minimum=0)
    N = b.shape[0]
    w = noise_std * np.random.default_rng(seed).standard_normal((N, T))
    z0 = np.column_stack([np.full(N, x0), np.full(N, prior_mean), np.full(N, prior_std**2)])
    run = rollout(*_belief_loop(agent, b, w, noise_std, lam, u_max, eta), z0, T)
    X, M = np.ascontiguousarray(run.states[..., 0]), np.ascontiguousarray(run.states[..., 1])
    S, U = np.sqrt(run.states[..., 2]), np.ascontiguousarray(run.actions[..., 0])
    costs = np.zeros(N)
    for t in range(T):  # accumulated step by step, as the runs incur them
        costs += X[:, t + 1] ** 2 + lam * U[:, t] ** 2
    return DualRun(costs, X, U, M, S)
