"""Exploration by an MPC agent that learns its Q-function, and dual control (paper Sec. IV.B).

The agent of this module is an MPC (eq. 13) that collects transitions ``(s, a, r, s')`` from
which a quadratic ``Q_phi`` is fitted by least squares on the loss of eq. (9) (fitted
Q-iteration); the fitted value then serves as the terminal cost of an MPC whose closed loop is
evaluated. How the agent deviates from its greedy action decides which transitions it sees;
four ways are compared (:func:`explore`):

- ``"gaussian"``: additive Gaussian noise on the MPC's action (std ``scale``, m/s^2);
- ``"epsilon"``: with probability ``scale`` a uniformly random admissible action;
- ``"perturbed"``: a random linear term on the states and inputs inside the MPC objective,
  drawn afresh at every step (ref. [35]): every explored action solves a constrained MPC, so it
  is feasible for the MPC's constraints;
- ``"ensemble"``: an ensemble of terminal value functions with a disagreement bonus
  ``-scale * std_i V_i(x_H)`` in the MPC cost (ref. [36]), which steers the agent to where the
  ensemble is uncertain;

and ``"greedy"`` (no exploration) as the reference.

The problem (:func:`speed_limit_problem`) is a cart on a rail, a double integrator with
position ``p`` (m), velocity ``v`` (m/s), acceleration input ``u`` (m/s^2) and a bounded
velocity disturbance, that must reach the origin without exceeding a speed limit
``v <= v_max``. Its rewards are quadratic, ``r = -(x^T Q x + u^T R u)``, and its optimal
unconstrained Q-function ``Q*`` is known in closed form (:func:`lgutils.core.lqr.q_matrix`), so the
fitted ``Q_phi`` can be compared with it.

The dual-control example (:func:`dual_control`, refs. [32]-[34]) is a scalar integrator
``x' = x + b u + w`` whose input gain ``b`` is unknown (Gaussian prior, Bayesian updates): a
certainty-equivalence agent acts as if the estimate were the truth, a cautious agent minimises
the expected cost under the current uncertainty, and a dual agent adds a bonus for the
information an action will bring.

Conventions: rewards are maximised, costs minimised (``Q_phi = -Q^MPC``, paper footnote 1);
``Q_phi(x, u) = -([x; u]^T H [x; u] + c)`` as in :mod:`lgutils.core.rl`. Shapes: ``N`` samples,
``E`` episodes of ``T`` steps, ``K`` ensemble members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import casadi as ca
import numpy as np
from tqdm.auto import tqdm

from lgutils.core import lqr
from lgutils.core.rl import (
    Transitions,
    floored_schur,
    max_q,
    quadratic_features,
    quadratic_to_theta,
    theta_to_quadratic,
)
from lgutils.core.seeding import spawn_seeds
from lgutils.core.validate import (
    as_array,
    as_matrix,
    as_vector,
    check_in_open_interval,
    check_positive_int,
    check_probability,
    check_psd,
)
from lgutils.mpc import (
    MPC,
    PRIMAL_DUAL_WARM_START,
    Bounds,
    Constraints,
    Cost,
    Model,
    SolverOptions,
    closed_loop,
)

__all__ = [
    "STRATEGIES",
    "DUAL_AGENTS",
    "SpeedLimitProblem",
    "ExplorationRun",
    "Evaluation",
    "DualRun",
    "speed_limit_problem",
    "plant_step",
    "stage_reward",
    "optimal_q",
    "initial_states",
    "exploration_mpc",
    "fitted_q",
    "value_weight",
    "stage_quadratic",
    "ensemble_prior",
    "ensemble_disagreement",
    "explore",
    "coverage",
    "violations",
    "held_out_pairs",
    "bellman_residuals",
    "bellman_error",
    "evaluate_weight",
    "posterior_update",
    "dual_objective",
    "dual_action",
    "dual_control",
]

#: The exploration strategies of :func:`explore` and the meaning of their ``scale``.
STRATEGIES: dict[str, str] = {
    "greedy": "no exploration (scale unused)",
    "gaussian": "std of additive Gaussian action noise (m/s^2)",
    "epsilon": "probability of a uniformly random action",
    "perturbed": "std of the random set-point shift behind the linear cost term (state/input units)",
    "ensemble": "weight of the disagreement bonus (cost units per unit of value std)",
}

#: The agents of :func:`dual_control`.
DUAL_AGENTS = ("oracle", "certainty_equivalence", "cautious", "dual")

_SLACK_PENALTY = 1e3  # linear and quadratic penalty of the soft speed limit (cost units)


# ------------------------------------------------------------------------------ the problem
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
    w_max = _nonnegative("w_max", w_max)
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


def _nonnegative(name: str, value: Any) -> float:
    """``value`` as a finite float >= 0, else a ValueError naming ``name``."""
    v = check_in_open_interval(name, value, -np.inf, np.inf)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def _check_problem(problem: Any) -> SpeedLimitProblem:
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
    problem = _check_problem(problem)
    x = as_array("x", x, (None, 2))
    u = as_array("u", u, (x.shape[0], 1))
    w = rng.uniform(-problem.w_max, problem.w_max, size=x.shape[0])
    return x @ problem.A.T + u @ problem.B.T + np.column_stack([np.zeros_like(w), w])


def stage_reward(problem: SpeedLimitProblem, x: Any, u: Any) -> np.ndarray:
    """``r = -(x^T Q x + u^T R u)`` for a batch: ``x`` (N, 2), ``u`` (N, 1) -> (N,)."""
    problem = _check_problem(problem)
    x = as_array("x", x, (None, 2))
    u = as_array("u", u, (x.shape[0], 1))
    return -(lqr.quadratic_form(problem.Q, x) + lqr.quadratic_form(problem.R, u))


def optimal_q(problem: SpeedLimitProblem) -> tuple[np.ndarray, float]:
    """The optimal Q-function of the problem without input bounds and speed limit.

    Returns ``(H*, c*)`` with ``Q*(x, u) = -([x; u]^T H* [x; u] + c*)`` (eqs. 4-6 in closed form,
    :func:`lgutils.core.lqr.q_matrix`, with the disturbance covariance). It is the fixed point that
    fitted Q-iteration with an unconstrained ``max`` (eq. 9) targets, whatever the data.
    """
    problem = _check_problem(problem)
    return lqr.q_matrix(
        problem.A, problem.B, problem.Q, problem.R, problem.gamma, noise_cov=problem.noise_cov
    )


def initial_states(problem: SpeedLimitProblem, n: int, seed: int) -> np.ndarray:
    """``n`` initial states drawn uniformly in ``[x0_low, x0_high]``, shape (n, 2)."""
    problem = _check_problem(problem)
    n = check_positive_int("n", n)
    seed = check_positive_int("seed", seed, minimum=0)
    return np.random.default_rng(seed).uniform(problem.x0_low, problem.x0_high, size=(n, 2))


# ------------------------------------------------------------------------------ the agent
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
    problem = _check_problem(problem)
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
            soft_linear=_SLACK_PENALTY,
            soft_quadratic=_SLACK_PENALTY,
        ),
        bounds=Bounds(u_lb=[-problem.u_max], u_ub=[problem.u_max]),
        solver=SolverOptions(
            ipopt=PRIMAL_DUAL_WARM_START if ipopt_options is None else ipopt_options
        ),
    )


# ------------------------------------------------------------------------------ learning
def _check_transitions(data: Any) -> Transitions:
    if not isinstance(data, Transitions):
        raise ValueError(f"data must be an lgutils.core.rl.Transitions, got {type(data).__name__}")
    return data


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
    data = _check_transitions(data)
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0)
    n_iterations = check_positive_int("n_iterations", n_iterations)
    n, m = data.x.shape[1], data.u.shape[1]
    d = n + m
    N = data.x.shape[0]
    w = np.ones(N) if weights is None else as_vector("weights", weights, N)
    if np.any(w < 0):
        raise ValueError(f"weights must be >= 0, got a minimum of {w.min()}")
    lam = _nonnegative("prior_weight", prior_weight)
    ridge = _nonnegative("ridge", ridge)
    if prior is None:
        theta0 = np.zeros(d * (d + 1) // 2 + 1)
        H, c = np.zeros((d, d)), 0.0
    else:
        H0 = as_matrix("prior[0]", prior[0], d, d)
        c = float(as_array("prior[1]", prior[1], ()))
        theta0 = quadratic_to_theta(H0, c)
        H = 0.5 * (H0 + H0.T)
    Phi = quadratic_features(data.x, data.u)
    scale = np.sqrt(np.mean(Phi**2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    Phis = Phi / scale
    Phw = (Phis * w[:, None]).T
    G = Phw @ Phis + (lam + ridge * N) * np.eye(Phis.shape[1])
    prior_term = lam * theta0 * scale
    Xn = data.x_next
    for _ in range(n_iterations):
        S = _psd(_schur(H, n))
        y = data.r - gamma * (np.einsum("ni,ij,nj->n", Xn, S, Xn) + c)
        theta = np.linalg.solve(G, Phw @ (-y) + prior_term) / scale
        H, c = theta_to_quadratic(theta, d)
    return H, c


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
    return _psd(_schur(H, n))


def _schur(H: np.ndarray, n: int) -> np.ndarray:
    """``H_xx - H_xu H_uu^{-1} H_ux`` with H_uu's eigenvalues floored as in lgutils.core.rl.max_q."""
    S = floored_schur(H, n)
    return 0.5 * (S + S.T)


def _psd(S: np.ndarray) -> np.ndarray:
    lam, V = np.linalg.eigh(S)
    return (V * np.maximum(lam, 0.0)) @ V.T


def stage_quadratic(problem: SpeedLimitProblem) -> np.ndarray:
    """``blockdiag(Q, R)``, shape (3, 3): the stage cost as a quadratic in ``[x; u]``."""
    problem = _check_problem(problem)
    return np.block([[problem.Q, np.zeros((2, 1))], [np.zeros((1, 2)), problem.R]])


def ensemble_prior(
    problem: SpeedLimitProblem, n_members: int, rng: np.random.Generator, dof: int = 3
) -> list[np.ndarray]:
    """Random prior quadratics ``H_i^0`` of the ensemble members, shape (3, 3) each.

    Wishart draws ``H_i^0 = L Z Z^T L^T / dof`` with ``Z`` of shape (3, dof) standard normal
    and ``L L^T = blockdiag(Q, R)``: their mean is the stage cost's quadratic, their spread
    (``dof`` small) is the ensemble's initial disagreement.
    """
    problem = _check_problem(problem)
    n_members = check_positive_int("n_members", n_members, minimum=2)
    dof = check_positive_int("dof", dof)
    L = np.linalg.cholesky(stage_quadratic(problem))
    out = []
    for _ in range(n_members):
        Z = rng.standard_normal((3, dof))
        out.append(L @ Z @ Z.T @ L.T / dof)
    return out


def ensemble_disagreement(E: Any, states: Any) -> np.ndarray:
    """Standard deviation over members of ``V_i(x) = x^T P_i x`` at each state.

    Parameters
    ----------
    E : array_like, shape (K, 3)
        Rows ``(P_i[0, 0], P_i[0, 1], P_i[1, 1])``.
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


def _rows(P: np.ndarray) -> np.ndarray:
    return np.array([P[0, 0], P[0, 1], P[1, 1]])


# ------------------------------------------------------------------------------ exploration
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
        Ensemble agent: mean disagreement (:func:`ensemble_disagreement`) over the states of
        each episode, with the ensemble of that episode; other agents: zeros.
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
    episode ``e`` starts at the ``e``-th of :func:`initial_states` and runs ``episode_length``
    steps of: solve the MPC, deviate as the strategy says (:data:`STRATEGIES`), apply the action
    to the true system (:func:`plant_step`). The ensemble agent keeps ``n_members`` fits of
    ``Q_phi`` (:func:`fitted_q`), each on Poisson(1) bootstrap weights of the data so far and
    shrunk to its own random prior (:func:`ensemble_prior`), refitted after every episode; its
    MPC subtracts ``scale`` times their disagreement at the terminal state from the cost.

    After the last episode, ``Q_phi`` is fitted once on all data by :func:`fitted_q`, shrunk
    with ``fit_prior_weight`` pseudo-samples towards the stage cost ``blockdiag(Q, R)``
    (data that do not excite every direction -- a greedy agent's -- leave some directions to
    the prior instead of to chance).

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
    problem = _check_problem(problem)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy!r}")
    scale = _nonnegative("scale", scale)
    if strategy == "epsilon":
        scale = check_probability("scale", scale)
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
    fit_prior_weight = _nonnegative("fit_prior_weight", fit_prior_weight)
    ensemble = strategy == "ensemble"
    K = check_positive_int("n_members", n_members, minimum=2) if ensemble else 0

    s_x0, s_plant, s_explore = spawn_seeds(seed, 3)
    x0s = initial_states(problem, E, s_x0)
    plant_rng = np.random.default_rng(s_plant)
    rng = np.random.default_rng(s_explore)
    mpc = exploration_mpc(problem, horizon, n_members=K)
    phi: dict[str, Any] = {"P": P, "qx": np.zeros(2), "qu": np.zeros(1)}
    priors = ensemble_prior(problem, K, rng) if ensemble else []
    members = [value_weight(H0, 2) for H0 in priors]
    states = np.empty((E, T + 1, 2))
    actions = np.empty((E, T, 1))
    rewards = np.empty((E, T))
    disagreement = np.zeros(E)
    data: Transitions | None = None
    for e in tqdm(range(E), desc=f"exploring ({strategy})", disable=not progress):
        x = x0s[e].copy()
        mpc.reset_warm_start()
        if ensemble:
            Em = np.array([_rows(Pi) for Pi in members])
            phi = {**phi, "E": Em, "beta": scale}
        states[e, 0] = x
        for t in range(T):
            if strategy == "perturbed":
                dx, du = scale * rng.standard_normal(2), scale * rng.standard_normal(1)
                phi = {**phi, "qx": -2.0 * problem.Q @ dx, "qu": -2.0 * problem.R @ du}
            u = mpc.policy(x, phi).action
            if strategy == "gaussian":
                u = np.clip(u + scale * rng.standard_normal(1), -problem.u_max, problem.u_max)
            elif strategy == "epsilon" and rng.random() < scale:
                u = rng.uniform(-problem.u_max, problem.u_max, size=1)
            x_next = plant_step(problem, x[None], u[None], plant_rng)[0]
            actions[e, t], rewards[e, t] = u, stage_reward(problem, x[None], u[None])[0]
            states[e, t + 1] = x = x_next
            mpc.shift_warm_start()
        new = Transitions(states[e, :-1], actions[e], rewards[e], states[e, 1:])
        data = new if data is None else _concat(data, new)
        if ensemble:
            disagreement[e] = float(np.mean(ensemble_disagreement(Em, states[e])))
            members = []
            for H0 in priors:
                w = rng.poisson(1.0, size=data.x.shape[0]).astype(float)
                Hi, _ = fitted_q(
                    data,
                    problem.gamma,
                    fqi_iterations,
                    weights=w,
                    prior=(H0, 0.0),
                    prior_weight=prior_weight,
                )
                members.append(value_weight(Hi, 2))
    assert data is not None
    H, c = fitted_q(
        data,
        problem.gamma,
        fqi_iterations,
        prior=(stage_quadratic(problem), 0.0),
        prior_weight=fit_prior_weight,
    )
    return ExplorationRun(
        strategy, float(scale), data, states, actions, rewards, H, float(c), disagreement
    )


def _concat(a: Transitions, b: Transitions) -> Transitions:
    return Transitions(*(np.concatenate(z) for z in zip(a, b, strict=True)))


# ------------------------------------------------------------------------------ measurements
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
    problem = _check_problem(problem)
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
    complement of :func:`lgutils.core.rl.max_q`. ``Q*`` (:func:`optimal_q`) has ``delta = 0`` at every
    pair. (A sampled next state would add the disturbance's variance to the squared residual,
    and that variance is smaller for flatter ``Q_phi`` than for ``Q*``: the "double sampling"
    bias. The chapter knows the disturbance's distribution; the agent does not.)

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
    problem = _check_problem(problem)
    H = as_matrix("H", H, 3, 3)
    c = float(as_array("c", c, ()))
    x = as_array("x", x, (None, 2))
    u = as_array("u", u, (x.shape[0], 1))
    S = _schur(0.5 * (H + H.T), 2)
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
    disturbances of ``seed`` (run ``i`` uses the ``i``-th of :func:`lgutils.core.seeding.spawn_seeds`,
    so two weights are compared on the same disturbances).

    Parameters
    ----------
    problem : SpeedLimitProblem
    P : array_like, shape (2, 2)
        Terminal weight (symmetric PSD), e.g. :func:`value_weight` of a fitted ``Q_phi``.
    horizon : int
    x0s : array_like, shape (N, 2)
    steps : int
        T steps per run.
    seed : int

    Returns
    -------
    Evaluation
    """
    problem = _check_problem(problem)
    P = as_matrix("P", P, 2, 2)
    X0 = as_array("x0s", x0s, (None, 2))
    T = check_positive_int("steps", steps)
    seeds = spawn_seeds(check_positive_int("seed", seed, minimum=0), X0.shape[0])
    mpc = exploration_mpc(problem, horizon)
    phi = {"P": P, "qx": np.zeros(2), "qu": np.zeros(1)}
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


# ------------------------------------------------------------------------------ dual control
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
    lam = _nonnegative("input_weight", input_weight)
    eta = _nonnegative("probing_weight", probing_weight)
    col = (lambda z: z[:, None]) if u.ndim == 2 else (lambda z: z)
    return (
        (col(x) + col(mean) * u) ** 2
        + (col(var) + lam) * u**2
        - 0.5 * eta * np.log1p(col(var) * u**2 / s2)
    )


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
    lam = _nonnegative("input_weight", input_weight)
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    eta = _nonnegative("probing_weight", probing_weight)
    a = mean**2 + var + lam
    beta = mean * x
    k = var / s2
    N = x.shape[0]
    cand = np.full((N, 5), np.nan)
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
        cand[cubic, :3] = np.sort(r, axis=1)
    lin = ~cubic
    if np.any(lin):
        denom = 2 * a[lin] - eta * k[lin]
        with np.errstate(divide="ignore", invalid="ignore"):
            cand[lin, 0] = np.where(denom != 0, -2 * beta[lin] / denom, np.nan)
    cand[np.abs(cand) > u_max] = np.nan
    cand[:, 3], cand[:, 4] = -u_max, u_max
    J = dual_objective(np.nan_to_num(cand), x, mean, var, np.sqrt(s2), lam, eta)
    J = np.where(np.isnan(cand), np.inf, J)
    return cand[np.arange(N), np.argmin(J, axis=1)]


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
    they do with the belief ``N(mean, var)``:

    - ``"oracle"``: knows ``b``: ``u = clip(-b x / (b^2 + lam))``;
    - ``"certainty_equivalence"``: acts as if ``b = mean``: ``u = clip(-mean x / (mean^2 + lam))``;
    - ``"cautious"``: minimises the expected cost: ``u = clip(-mean x / (mean^2 + var + lam))``;
    - ``"dual"``: :func:`dual_action` with ``probing_weight`` (cautious plus an information bonus).

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
    lam = _nonnegative("input_weight", input_weight)
    u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
    eta = _nonnegative("probing_weight", probing_weight)
    seed = check_positive_int("seed", seed, minimum=0)
    N = b.shape[0]
    w = noise_std * np.random.default_rng(seed).standard_normal((N, T))
    x = np.full(N, x0)
    mean, var = np.full(N, prior_mean), np.full(N, prior_std**2)
    X, U = np.empty((N, T + 1)), np.empty((N, T))
    M, S = np.empty((N, T + 1)), np.empty((N, T + 1))
    X[:, 0], M[:, 0], S[:, 0] = x, mean, np.sqrt(var)
    costs = np.zeros(N)
    for t in range(T):
        if agent == "oracle":
            u = np.clip(-b * x / (b**2 + lam), -u_max, u_max)
        elif agent == "certainty_equivalence":
            with np.errstate(divide="ignore", invalid="ignore"):
                u = np.clip(np.nan_to_num(-mean * x / (mean**2 + lam)), -u_max, u_max)
        elif agent == "cautious":
            u = np.clip(-mean * x / (mean**2 + var + lam), -u_max, u_max)
        else:
            u = dual_action(x, mean, var, noise_std, lam, u_max, eta)
        x_next = x + b * u + w[:, t]
        costs += x_next**2 + lam * u**2
        mean, var = posterior_update(mean, var, u, x_next - x, noise_std)
        x = x_next
        X[:, t + 1], U[:, t], M[:, t + 1], S[:, t + 1] = x, u, mean, np.sqrt(var)
    return DualRun(costs, X, U, M, S)
