"""The exploring MPC agent: its MPC, one exploration step per strategy, and the data it collects.

The agent is an MPC (eq. 13, :func:`exploration_mpc`) that collects transitions
``(s, a, r, s')`` from which a quadratic ``Q_phi`` is fitted (:mod:`lgutils.exploration.learning`).
How it deviates from its greedy action decides which transitions it sees; four ways are compared
(:func:`explore`), each one function that picks the action at one state:

- ``"gaussian"`` (:func:`gaussian_action`): additive Gaussian noise on the MPC's action;
- ``"epsilon"`` (:func:`epsilon_greedy_action`): with probability ``scale`` a uniformly random
  admissible action;
- ``"perturbed"`` (:func:`perturbed_action`): a random linear term on the states and inputs
  inside the MPC objective, drawn afresh at every step (ref. [35]): every explored action solves
  a constrained MPC, so it is feasible for the MPC's constraints;
- ``"ensemble"`` (:func:`ensemble_action`): an ensemble of terminal value functions with a
  disagreement bonus ``-scale * std_i V_i(x_H)`` in the MPC cost (ref. [36]), which steers the
  agent to where the ensemble is uncertain;

and ``"greedy"`` (:func:`greedy_action`, no exploration) as the reference.

Shapes: ``E`` episodes of ``T`` steps, ``K`` ensemble members.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import casadi as ca
import numpy as np
from tqdm import tqdm

from lgutils.core.rl import Transitions
from lgutils.core.rollout import rollout
from lgutils.core.seeding import spawn_seeds
from lgutils.core.validate import (
    check_nonnegative,
    check_positive_int,
    check_probability,
    check_psd,
)
from lgutils.exploration.learning import (
    concatenate,
    ensemble_disagreement,
    ensemble_prior,
    ensemble_rows,
    fit_ensemble,
    fitted_q,
    value_weight,
)
from lgutils.exploration.speed_limit import (
    SpeedLimitProblem,
    check_problem,
    initial_states,
    plant_step,
    stage_quadratic,
    stage_reward,
)
from lgutils.mpc import (
    MPC,
    PRIMAL_DUAL_WARM_START,
    Bounds,
    Constraints,
    Cost,
    Model,
    SolverOptions,
)

__all__ = [
    "STRATEGIES",
    "SLACK_PENALTY",
    "ExplorationRun",
    "exploration_mpc",
    "greedy_parameters",
    "greedy_action",
    "gaussian_action",
    "epsilon_greedy_action",
    "cost_perturbation",
    "perturbed_action",
    "ensemble_action",
    "exploration_policy",
    "explore",
]

#: The exploration strategies of :func:`explore` and the meaning of their ``scale``.
STRATEGIES: dict[str, str] = {
    "greedy": "no exploration (scale unused)",
    "gaussian": "std of additive Gaussian action noise (m/s^2)",
    "epsilon": "probability of a uniformly random action",
    "perturbed": "std of the random set-point shift behind the linear cost term (state/input units)",
    "ensemble": "weight of the disagreement bonus (cost units per unit of value std)",
}

#: Linear and quadratic penalty of the soft speed limit in :func:`exploration_mpc` (cost units).
SLACK_PENALTY = 1e3


# ------------------------------------------------------------------------------ the MPC
def exploration_mpc(
    problem: SpeedLimitProblem,
    horizon: int,
    n_members: int = 0,
    backoff: float | None = None,
    ipopt_options: dict | None = None,
) -> MPC:
    r"""The agent's MPC (eq. 13) with the hooks the exploration strategies need.

    .. math::

        \min_u \sum_{k<H} \gamma^k \left(x_k^\top Q x_k + u_k^\top R u_k + q_x^\top x_k
        + q_u^\top u_k\right) + \gamma^H \left(x_H^\top P x_H
        - \beta \sqrt{\mathrm{var}_i V_i(x_H) + 10^{-8}}\right)

    subject to the nominal model, ``|u_k| <= u_max`` and the soft speed limit
    ``v_k <= v_max - backoff`` for ``k = 1..H`` (a robust one-step tightening: with
    ``backoff = w_max`` a realised velocity never exceeds ``v_max`` while the slack is zero).

    Parameters
    ----------
    problem : SpeedLimitProblem
    horizon : int
        Prediction horizon H (steps).
    n_members : int
        Ensemble size K (0: no ensemble term). Member ``i`` has
        ``V_i(x) = E[i, 0] p^2 + 2 E[i, 1] p v + E[i, 2] v^2``; the bonus is ``beta`` times
        their sample standard deviation at the terminal state.
    backoff : float, optional
        Tightening of the speed limit inside the MPC (m/s); default ``w_max``.
    ipopt_options : dict, optional
        IPOPT options; default :data:`lgutils.mpc.PRIMAL_DUAL_WARM_START` (consecutive solves
        of a receding horizon differ little, and a primal-dual warm start halves IPOPT's
        iterations).

    Returns
    -------
    MPC
        Parameters ``phi = {"P": (2, 2), "qx": (2,), "qu": (1,)}`` plus, with an ensemble,
        ``"E": (K, 3)`` and ``"beta": ()``. ``P`` is the terminal weight, ``qx, qu`` the linear
        cost perturbation (zero for a greedy agent).
    """
    problem = check_problem(problem)
    horizon = check_positive_int("horizon", horizon)
    n_members = check_positive_int("n_members", n_members, minimum=0)
    if n_members == 1:
        raise ValueError("n_members must be 0 (no ensemble) or >= 2, got 1")
    backoff = problem.w_max if backoff is None else float(backoff)
    if not 0.0 <= backoff < problem.v_max:
        raise ValueError(f"backoff must lie in [0, v_max={problem.v_max}), got {backoff}")
    A, B, Qw, Rw = problem.A, problem.B, problem.Q, problem.R
    limit = problem.v_max - backoff
    params: dict[str, Any] = {"P": (2, 2), "qx": (2,), "qu": (1,)}
    if n_members:
        params.update({"E": (n_members, 3), "beta": ()})

    def terminal(x, p):
        cost = ca.bilin(p["P"], x, x)
        if n_members:
            feats = ca.vertcat(x[0] ** 2, 2 * x[0] * x[1], x[1] ** 2)
            values = ca.mtimes(p["E"], feats)  # (K, 1)
            mean = ca.sum1(values) / n_members
            var = ca.sum1((values - mean) ** 2) / (n_members - 1)
            cost = cost - p["beta"] * ca.sqrt(var + 1e-8)
        return cost

    return MPC(
        Model(2, 1, dynamics=lambda x, u, p: ca.mtimes(A, x) + ca.mtimes(B, u)),
        Cost(
            stage=lambda x, u, p: (
                ca.bilin(Qw, x, x) + ca.bilin(Rw, u, u) + ca.dot(p["qx"], x) + ca.dot(p["qu"], u)
            ),
            terminal=terminal,
            discount=problem.gamma,
        ),
        horizon,
        params=params,
        constraints=Constraints(
            soft=lambda x, u, p, k: [x[1] - limit] if k > 0 else [],
            terminal_soft=lambda x, p: [x[1] - limit],
            soft_linear=SLACK_PENALTY,
            soft_quadratic=SLACK_PENALTY,
        ),
        bounds=Bounds(u_lb=[-problem.u_max], u_ub=[problem.u_max]),
        solver=SolverOptions(
            ipopt=PRIMAL_DUAL_WARM_START if ipopt_options is None else ipopt_options
        ),
    )


def greedy_parameters(P: Any) -> dict[str, np.ndarray]:
    """The parameters of :func:`exploration_mpc` of the greedy agent with terminal weight ``P``.

    ``{"P": P, "qx": 0, "qu": 0}``: no cost perturbation (and no ensemble bonus).
    """
    return {"P": P, "qx": np.zeros(2), "qu": np.zeros(1)}


# ------------------------------------------------------------------------------ one step each
# Each function returns the action, shape (1,) (m/s^2), that the agent applies at state x,
# shape (2,), given its MPC (exploration_mpc) and the MPC's parameters phi (greedy_parameters).
def greedy_action(mpc: MPC, phi: dict, x: np.ndarray) -> np.ndarray:
    """No exploration: the first input ``u_0*`` of the MPC's plan."""
    return mpc.policy(x, phi).action


def gaussian_action(
    mpc: MPC, phi: dict, x: np.ndarray, noise_std: float, u_max: float, rng: np.random.Generator
) -> np.ndarray:
    """``clip(u_0* + noise_std * eps, -u_max, u_max)``, ``eps ~ N(0, 1)`` from ``rng``."""
    u = mpc.policy(x, phi).action
    return np.clip(u + noise_std * rng.standard_normal(1), -u_max, u_max)


def epsilon_greedy_action(
    mpc: MPC, phi: dict, x: np.ndarray, epsilon: float, u_max: float, rng: np.random.Generator
) -> np.ndarray:
    """``u_0*``, or with probability ``epsilon`` an action uniform in ``[-u_max, u_max]``.

    ``rng`` draws one uniform number at every step (whether to explore), and the random action
    only when it explores.
    """
    u = mpc.policy(x, phi).action
    if rng.random() < epsilon:
        u = rng.uniform(-u_max, u_max, size=1)
    return u


def cost_perturbation(
    problem: SpeedLimitProblem, perturbation_std: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A random linear cost term ``{"qx": -2 Q dx, "qu": -2 R du}``, ``(dx, du) ~ N(0, s^2 I)``.

    Added to the stage cost ``x^T Q x + u^T R u`` it moves the cost's minimum to the random
    target ``(dx, du)`` (up to a constant). Draws ``dx`` (2 numbers), then ``du`` (1) from ``rng``.
    """
    dx = perturbation_std * rng.standard_normal(2)
    du = perturbation_std * rng.standard_normal(1)
    return {"qx": -2.0 * problem.Q @ dx, "qu": -2.0 * problem.R @ du}


def perturbed_action(
    mpc: MPC,
    phi: dict,
    x: np.ndarray,
    problem: SpeedLimitProblem,
    perturbation_std: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The first input of the MPC whose cost carries a fresh :func:`cost_perturbation`."""
    return mpc.policy(x, {**phi, **cost_perturbation(problem, perturbation_std, rng)}).action


def ensemble_action(
    mpc: MPC, phi: dict, x: np.ndarray, members: Any, bonus_weight: float
) -> np.ndarray:
    """The first input of the MPC with the ensemble's disagreement bonus in its terminal cost.

    ``members`` are the value weights ``P_i`` (2, 2) of the ensemble; ``mpc`` must have been
    built with ``n_members=len(members)``. The terminal cost is lowered by
    ``bonus_weight * std_i(x_H^T P_i x_H)``.
    """
    return mpc.policy(x, {**phi, "E": ensemble_rows(members), "beta": bonus_weight}).action


def exploration_policy(
    problem: SpeedLimitProblem,
    strategy: str,
    scale: float,
    mpc: MPC,
    phi: dict,
    rng: np.random.Generator,
    members: Any = (),
) -> Callable[[np.ndarray, int], np.ndarray]:
    """``policy(x, t)`` of one episode of the exploring agent, for :func:`lgutils.core.rollout.rollout`.

    Step ``t`` starts the MPC from the tail of its previous plan (``t > 0``,
    :meth:`lgutils.mpc.MPC.shift_warm_start`; reset the warm start before an episode) and
    returns the action of ``strategy`` (a key of :data:`STRATEGIES`) with its ``scale``;
    ``members`` are the ensemble's value weights (``"ensemble"`` only).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy!r}")

    def policy(x: np.ndarray, t: int) -> np.ndarray:
        if t > 0:
            mpc.shift_warm_start()
        if strategy == "gaussian":
            return gaussian_action(mpc, phi, x, scale, problem.u_max, rng)
        if strategy == "epsilon":
            return epsilon_greedy_action(mpc, phi, x, scale, problem.u_max, rng)
        if strategy == "perturbed":
            return perturbed_action(mpc, phi, x, problem, scale, rng)
        if strategy == "ensemble":
            return ensemble_action(mpc, phi, x, members, scale)
        return greedy_action(mpc, phi, x)

    return policy


# ------------------------------------------------------------------------------ exploring
class ExplorationRun(NamedTuple):
    """What :func:`explore` collected and learned.

    Attributes
    ----------
    strategy : str
    scale : float
    data : lgutils.core.rl.Transitions
        All ``E T`` transitions (the applied, possibly random, actions).
    states : numpy.ndarray, shape (E, T + 1, 2)
    actions : numpy.ndarray, shape (E, T, 1)
    rewards : numpy.ndarray, shape (E, T)
    H : numpy.ndarray, shape (3, 3)
        ``Q_phi`` fitted on all the data (the same procedure for every strategy).
    c : float
    disagreement : numpy.ndarray, shape (E,)
        Ensemble agent: mean disagreement
        (:func:`lgutils.exploration.learning.ensemble_disagreement`) over the states of each
        episode, with the ensemble of that episode; other agents: zeros.
    """

    strategy: str
    scale: float
    data: Transitions
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    H: np.ndarray
    c: float
    disagreement: np.ndarray


def _checked_scale(strategy: str, scale: Any) -> float:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy!r}")
    scale = check_nonnegative("scale", scale)
    return check_probability("scale", scale) if strategy == "epsilon" else scale


def explore(
    problem: SpeedLimitProblem,
    strategy: str,
    scale: float,
    n_episodes: int,
    episode_length: int,
    horizon: int,
    seed: int,
    *,
    terminal_weight: Any = None,
    n_members: int = 5,
    prior_weight: float = 10.0,
    fit_prior_weight: float = 1e-3,
    fqi_iterations: int = 200,
    progress: bool = False,
) -> ExplorationRun:
    """Collect data with the MPC agent and one exploration strategy, then fit ``Q_phi``.

    Every agent is the same MPC (:func:`exploration_mpc`, terminal weight ``terminal_weight``);
    episode ``e`` starts at the ``e``-th of :func:`lgutils.exploration.speed_limit.initial_states`
    and is one :func:`lgutils.core.rollout.rollout` of ``episode_length`` steps of: solve the
    MPC, deviate as the strategy says (:func:`exploration_policy`), apply the action to the true
    system (:func:`lgutils.exploration.speed_limit.plant_step`). The ensemble agent keeps
    ``n_members`` fits of ``Q_phi``, each on Poisson(1) bootstrap weights of the data so far and
    shrunk to its own random prior (:func:`lgutils.exploration.learning.fit_ensemble`), refitted
    after every episode; its MPC subtracts ``scale`` times their disagreement at the terminal
    state from the cost.

    After the last episode, ``Q_phi`` is fitted once on all data by
    :func:`lgutils.exploration.learning.fitted_q`, shrunk with ``fit_prior_weight``
    pseudo-samples towards the stage cost ``blockdiag(Q, R)`` (data that do not excite every
    direction -- a greedy agent's -- leave some directions to the prior instead of to chance).

    Initial states and disturbances come from streams that do not depend on the strategy
    (common random numbers); the exploration's own randomness has a third stream.

    Parameters
    ----------
    problem : SpeedLimitProblem
    strategy : str
        A key of :data:`STRATEGIES`.
    scale : float
        The strategy's exploration scale (see :data:`STRATEGIES`), >= 0; a probability for
        ``"epsilon"``.
    n_episodes, episode_length : int
        E episodes of T steps.
    horizon : int
        MPC horizon (steps).
    seed : int
    terminal_weight : array_like, shape (2, 2), optional
        The MPC's terminal weight ``P`` (default ``Q``, the stage weight).
    n_members : int
        Ensemble size K >= 2 (``"ensemble"`` only).
    prior_weight : float
        Pseudo-samples of each member's prior (``"ensemble"`` only).
    fit_prior_weight : float
        Pseudo-samples of the stage-cost prior of the final fit.
    fqi_iterations : int
        Iterations of every fit.
    progress : bool
        Show a progress bar over episodes.

    Returns
    -------
    ExplorationRun

    Raises
    ------
    MPCSolveError
        If an MPC solve fails.
    """
    problem = check_problem(problem)
    scale = _checked_scale(strategy, scale)
    E = check_positive_int("n_episodes", n_episodes)
    T = check_positive_int("episode_length", episode_length)
    horizon = check_positive_int("horizon", horizon)
    seed = check_positive_int("seed", seed, minimum=0)
    P = (
        problem.Q.copy()
        if terminal_weight is None
        else check_psd("terminal_weight", terminal_weight, 2)
    )
    fqi_iterations = check_positive_int("fqi_iterations", fqi_iterations)
    fit_prior_weight = check_nonnegative("fit_prior_weight", fit_prior_weight)
    ensemble = strategy == "ensemble"
    K = check_positive_int("n_members", n_members, minimum=2) if ensemble else 0

    s_x0, s_plant, s_explore = spawn_seeds(seed, 3)
    x0s = initial_states(problem, E, s_x0)
    plant_rng = np.random.default_rng(s_plant)
    rng = np.random.default_rng(s_explore)
    mpc = exploration_mpc(problem, horizon, n_members=K)
    priors = ensemble_prior(problem, K, rng) if ensemble else []
    members = [value_weight(H0, 2) for H0 in priors]

    def plant(x: np.ndarray, u: np.ndarray, t: int) -> np.ndarray:
        return plant_step(problem, x[None], u[None], plant_rng)[0]

    runs, episodes, disagreement = [], [], np.zeros(E)
    for e in tqdm(range(E), desc=f"exploring ({strategy})", disable=not progress):
        mpc.reset_warm_start()
        policy = exploration_policy(
            problem, strategy, scale, mpc, greedy_parameters(P), rng, members
        )
        run = rollout(policy, plant, x0s[e], T)
        runs.append(run)
        r = stage_reward(problem, run.states[:-1], run.actions)
        episodes.append(Transitions(run.states[:-1], run.actions, r, run.states[1:]))
        data = concatenate(*episodes)
        if ensemble:
            disagreement[e] = float(
                np.mean(ensemble_disagreement(ensemble_rows(members), run.states))
            )
            members = fit_ensemble(data, priors, problem.gamma, fqi_iterations, prior_weight, rng)
    H, c = fitted_q(
        data,
        problem.gamma,
        fqi_iterations,
        prior=(stage_quadratic(problem), 0.0),
        prior_weight=fit_prior_weight,
    )
    states = np.stack([run.states for run in runs])
    actions = np.stack([run.actions for run in runs])
    rewards = np.stack([ep.r for ep in episodes])
    return ExplorationRun(
        strategy, float(scale), data, states, actions, rewards, H, float(c), disagreement
    )
