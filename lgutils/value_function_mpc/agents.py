"""Value-function-augmented MPC on the CSTR (case study A, paper Sec. V.A, Fig. 3).

Three agents track a set-point ``g`` of ``c_B`` on :mod:`lgutils.value_function_mpc.cstr`'s reactor:

- **RL**: the deterministic actor of the SAC agent trained by ``python -m lgutils.value_function_mpc.train cstr``
  (:class:`RLAgent`);
- **MPC**: do-mpc's robust multi-stage CSTR controller (Fiedler et al., 2023, paper ref. [52]):
  horizon 20, Radau collocation of degree 2, 9 scenarios of ``(alpha, beta)``, cost
  ``(c_B - g)^2`` plus input-move penalties, hard bounds and a soft ``T_R <= 140``
  (:func:`baseline_mpc`);
- **RL+MPC**: the same robust structure with horizon 5, stage cost
  ``-exp(-0.5 ((g - c_B) / 0.1)^2)``, terminal cost ``-V(x_H, g)`` with
  ``V(x, g) = Q_1(s, mu(s))`` the learned critic at the actor's mean, soft state upper bounds
  (:func:`rlmpc`) (Lawrence et al., 2025, paper ref. [13]).

:func:`run_agent` closes the loop on the plant, :func:`trajectory_metrics` scores a run, and
:func:`value_numpy` evaluates the learned ``V`` on a grid (for the slices of the chapter).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import casadi as ca
import numpy as np

from lgutils.core import nn as lgnn
from lgutils.core.validate import as_array, as_vector, check_positive_int
from lgutils.mpc import (
    Bounds,
    Cost,
    Model,
    MPCSolveError,
    Params,
    Scaling,
    ScenarioMPC,
    ScenarioTree,
    SoftBounds,
    SolverOptions,
    scenario_grid,
)
from lgutils.value_function_mpc import cstr

__all__ = [
    "X_SCALE",
    "IPOPT_OPTIONS",
    "WARM_IPOPT_OPTIONS",
    "U_SCALE",
    "TARGET_BAND",
    "RLAgent",
    "MPCAgent",
    "baseline_mpc",
    "rlmpc",
    "run_agent",
    "Run",
    "trajectory_metrics",
    "summarize",
    "value_numpy",
    "value_casadi",
    "evaluate",
    "evaluation_study",
    "plot_state_profiles",
]

#: do-mpc's variable scaling: states (c_A, c_B, T_R, T_K), inputs (F, Qdot).
X_SCALE = np.array([1.0, 1.0, 100.0, 100.0])
U_SCALE = np.array([100.0, 2000.0])
#: |c_B - g| within which a run counts as "at the target" [mol/l].
TARGET_BAND: float = 0.05
#: Soft upper bounds of RL+MPC and their linear penalties per unit violation (mol/l, deg C).
RLMPC_SOFT_UB = np.array([2.0, 2.0, 140.0, 140.0])
RLMPC_SOFT_PENALTY = np.array([1e3, 1e3, 1e1, 1e1])
#: IPOPT options of both CSTR MPC agents (``ipopt_options`` given to them are merged over
#: these). The variables are already scaled as in do-mpc, so IPOPT's gradient-based NLP scaling
#: and MUMPS' own scaling are off, and IPOPT refines a step only when its residual asks for it.
IPOPT_OPTIONS: dict[str, Any] = {
    "nlp_scaling_method": "none",
    "mumps_scaling": 0,
    "mumps_permuting_scaling": 0,
    "min_refinement_steps": 0,
}
#: IPOPT options of the agents' warm-started solves (every closed-loop step after the first):
#: start from the previous solution *and its multipliers*, at a barrier parameter of 1e-7
#: instead of IPOPT's cold ``mu_init = 0.1``, with the iterates pushed only 1e-5 inside their
#: bounds. IPOPT's tolerance stays at its default (``tol = 1e-8``), so the solutions are the same
#: to that tolerance; only the path to them is shorter. On steps 2-100 of Fig. 3's run of the
#: baseline MPC the warm-started solves take 8 IPOPT iterations (median) where cold solves with
#: IPOPT's defaults take 30.
WARM_IPOPT_OPTIONS: dict[str, Any] = {
    "warm_start_init_point": "yes",
    "mu_init": 1e-7,
    "warm_start_bound_push": 1e-5,
    "warm_start_bound_frac": 1e-5,
    "warm_start_mult_bound_push": 1e-5,
}


class RLAgent:
    """The deterministic SAC actor as a controller in do-mpc units (numpy, float64).

    Parameters
    ----------
    weights : dict
        From :func:`lgutils.core.nn.load_weights`.
    """

    name = "RL"

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        self._layers = lgnn.mlp_layers(weights, "actor")
        self._act = str(weights["activation"])
        self._low = np.asarray(weights["action_low"], float)
        self._high = np.asarray(weights["action_high"], float)

    def reset(self) -> None:
        """Nothing to reset (the actor has no memory)."""

    def act(self, x: np.ndarray, g: float) -> np.ndarray:
        """Input ``(F [1/h], Qdot [kJ/h])`` at state ``x`` (shape (4,)) for goal ``g``."""
        s = cstr.network_input(x, g)[None]
        a = np.tanh(lgnn.mlp_numpy(self._layers, self._act, s))[0]
        return cstr.action_to_input(self._low + 0.5 * (a + 1) * (self._high - self._low))


class MPCAgent:
    """A :class:`lgutils.mpc.scenario.ScenarioMPC` as a closed-loop controller.

    Keeps the previously applied input (for the move penalty) and warm-starts each solve from
    the previous one. ``last`` holds the last :class:`lgutils.mpc.scenario.ScenarioResult`.

    Parameters
    ----------
    mpc : ScenarioMPC
    name : str
    u_prev0 : array_like, shape (2,)
        The "previous input" of the first step (do-mpc's default: 0).
    shift : bool
        Shift the previous solution one stage before it warm-starts the next solve
        (:meth:`lgutils.mpc.scenario.ScenarioMPC.shift_warm_start`). Off by default: the
        unshifted previous solution is feasible except for the new initial state, while
        the shifted one breaks the non-anticipativity of the first input (the second inputs of
        the scenarios differ) and moves the unbounded ``x_H`` into bounded stages; with the
        multiplier warm start of :data:`WARM_IPOPT_OPTIONS` it takes 39 instead of 8 IPOPT
        iterations per step (medians over steps 2-100 of Fig. 3's run).
    on_failure : {"hold", "raise"}
        What to do when IPOPT fails (e.g. the hard state bounds cannot be met from the current
        state): ``"hold"`` applies the previous input again (clipped to the bounds) and counts
        the failure in ``failures``; ``"raise"`` re-raises :class:`lgutils.mpc.MPCSolveError`.
    """

    def __init__(
        self,
        mpc: ScenarioMPC,
        name: str,
        u_prev0: Any = (0.0, 0.0),
        on_failure: str = "hold",
        shift: bool = False,
    ) -> None:
        if not isinstance(mpc, ScenarioMPC):
            raise ValueError(f"mpc must be a ScenarioMPC, got {type(mpc).__name__}")
        if on_failure not in ("hold", "raise"):
            raise ValueError(f"on_failure must be 'hold' or 'raise', got {on_failure!r}")
        self.mpc = mpc
        self.name = name
        self.on_failure = on_failure
        self.shift = bool(shift)
        self.u_prev0 = as_vector("u_prev0", u_prev0, 2)
        self.reset()

    def reset(self) -> None:
        """Forget the previous input, the warm start and the failure count (before a new run)."""
        self._u_prev = self.u_prev0.copy()
        self.mpc.reset_warm_start()
        self.last = None
        self.failures = 0

    def act(self, x: np.ndarray, g: float) -> np.ndarray:
        """Solve at ``x`` for goal ``g`` and return the first input (do-mpc units)."""
        try:
            res = self.mpc.policy(
                x, {"g": float(g)}, u_prev=self._u_prev if self.mpc.uses_u_prev else None
            )
        except MPCSolveError:
            if self.on_failure == "raise":
                raise
            self.failures += 1
            self.last = None
            self.mpc.reset_warm_start()
            self._u_prev = np.clip(self._u_prev, cstr.U_LOW, cstr.U_HIGH)
            return self._u_prev.copy()
        self.last = res
        self._u_prev = res.action.copy()
        if self.shift:
            self.mpc.shift_warm_start()
        return res.action


def _scenarios() -> np.ndarray:
    return scenario_grid(cstr.ALPHA_SCENARIOS, cstr.BETA_SCENARIOS)


def _dynamics(x: Any, u: Any, theta: np.ndarray) -> Any:
    return cstr.rhs(x, u, theta[0], theta[1])


def _cstr_scenario_mpc(
    horizon: int,
    cost: Cost,
    bounds: Bounds,
    soft: SoftBounds,
    solver: SolverOptions,
    integrator: str = "collocation",
    substeps: int = 1,
) -> ScenarioMPC:
    """The 9-scenario CSTR MPC shared by both agents: goal parameter ``g``, ``t_step``,
    collocation of degree 2 and do-mpc's variable scaling."""
    return ScenarioMPC(
        Model(4, 2, _dynamics, integrator=integrator, dt=cstr.T_STEP, substeps=substeps, degree=2),
        cost,
        horizon,
        ScenarioTree(_scenarios()),
        params=Params({"g": ()}, default={"g": cstr.GOAL_FIG3}),
        bounds=bounds,
        soft=soft,
        scaling=Scaling(X_SCALE, U_SCALE),
        solver=solver,
    )


def baseline_mpc(
    horizon: int = 20,
    ipopt_options: Mapping[str, Any] | None = None,
    integrator: str = "collocation",
    substeps: int = 1,
) -> MPCAgent:
    """do-mpc's robust multi-stage CSTR MPC (the "MPC" agent of Fig. 3).

    Horizon ``horizon`` (20), ``t_step = 0.005 h``, Radau collocation of degree 2 on one finite
    element per step, 9 equally weighted scenarios ``alpha in {1, 1.05, 0.95}``,
    ``beta in {1, 1.1, 0.9}``, robust horizon 1. Cost: ``(c_B - g)^2`` at ``x_0..x_{H-1}``
    and at ``x_H``, plus ``0.1 dF^2 + 1e-3 dQdot^2`` on inputs scaled by (100, 2000). Hard
    input bounds ``F in [5, 100]``, ``Qdot in [-8500, 0]``; hard state bounds
    ``c_A, c_B in [0.1, 2]``, ``T_R >= 50``, ``T_K in [50, 140]`` on ``x_1..x_{H-1}`` (do-mpc's
    default leaves ``x_H`` free; do-mpc also bounds the collocation points, we do not);
    ``T_R <= 140`` soft with a linear penalty of 100 per deg C on ``x_1..x_{H-1}`` of every
    scenario. The first move is penalised against ``u_prev = 0``
    (do-mpc's default initial input).

    Returns
    -------
    MPCAgent
        ``act(x, g)`` returns ``u = (F, Qdot)``.
    """
    horizon = check_positive_int("horizon", horizon)

    def cost(x, u, p):  # noqa: ARG001
        return (x[1] - p["g"]) ** 2

    def term(x, p):
        return (x[1] - p["g"]) ** 2

    mpc = _cstr_scenario_mpc(
        horizon,
        Cost(cost, term, move_weight=[0.1, 1e-3]),
        Bounds(
            cstr.U_LOW,
            cstr.U_HIGH,
            [0.1, 0.1, 50.0, 50.0],
            [2.0, 2.0, np.inf, 140.0],
            terminal=False,
        ),
        SoftBounds([np.inf, np.inf, 140.0, np.inf], penalty=1e2),
        SolverOptions(
            ipopt={**IPOPT_OPTIONS, **dict(ipopt_options or {})}, warm_ipopt=WARM_IPOPT_OPTIONS
        ),
        integrator=integrator,
        substeps=substeps,
    )
    return MPCAgent(mpc, "MPC")


def value_casadi(weights: Mapping[str, np.ndarray], index: int = 0, sym: str = "SX") -> ca.Function:
    """``V(x, g) = Q_index(s, tanh(mu(s)))`` with ``s = network_input(x, g)``, as a CasADi function.

    ``sym="MX"`` builds a matrix-level graph (see :func:`lgutils.core.nn.mlp_function`).

    Returns
    -------
    casadi.Function
        ``v = V(x, g)``, ``x`` of shape (4, 1) in do-mpc units, ``g`` scalar [mol/l].
    """
    v = lgnn.value_function(weights, index, sym=sym)
    S = ca.SX if sym == "SX" else ca.MX
    x = S.sym("x", 4)
    g = S.sym("g")
    return ca.Function("V", [x, g], [v(cstr.network_input(x, g))], ["x", "g"], ["v"])


def value_numpy(weights: Mapping[str, np.ndarray], x: Any, g: Any, index: int = 0) -> np.ndarray:
    """The learned value ``V(x, g)`` on a batch, in numpy.

    Parameters
    ----------
    weights : dict
    x : array_like, shape (n, 4)
        States in do-mpc units.
    g : float or array_like, shape (n,)
        Goals [mol/l].

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    x = as_array("x", x)
    if x.ndim != 2 or x.shape[1] != 4:
        raise ValueError(f"x must have shape (n, 4), got shape {x.shape}")
    act = str(weights["activation"])
    s = cstr.network_input(x, g)
    a = np.tanh(lgnn.mlp_numpy(lgnn.mlp_layers(weights, "actor"), act, s))
    return lgnn.mlp_numpy(lgnn.mlp_layers(weights, f"critic{index}"), act, np.hstack([s, a]))[:, 0]


def rlmpc(
    weights: Mapping[str, np.ndarray],
    horizon: int = 5,
    soft_penalty: Any = RLMPC_SOFT_PENALTY,
    stage_width: float = 0.1,
    ipopt_options: Mapping[str, Any] | None = None,
) -> MPCAgent:
    """The value-function-augmented robust MPC ("RL+MPC" of Fig. 3).

    Same 9-scenario structure and collocation as :func:`baseline_mpc`, horizon ``horizon`` (5),
    no input-move penalty, stage cost ``-exp(-0.5 ((g - c_B) / stage_width)^2)`` at
    ``x_0..x_{H-1}``, terminal cost ``-V(x_H, g)`` (:func:`value_casadi`, critic 0), hard input
    bounds and soft upper bounds ``c_A, c_B <= 2``, ``T_R, T_K <= 140`` on ``x_1..x_H`` of
    every scenario with linear penalties ``soft_penalty`` per unit violation (default 1e3 per
    mol/l, 10 per deg C).

    Returns
    -------
    MPCAgent
    """
    horizon = check_positive_int("horizon", horizon)
    if not stage_width > 0:
        raise ValueError(f"stage_width must be positive, got {stage_width!r}")
    V = value_casadi(weights, sym="MX")

    def cost(x, u, p):  # noqa: ARG001
        return -ca.exp(-0.5 * ((p["g"] - x[1]) / stage_width) ** 2)

    def term(x, p):
        return -V(x, p["g"])

    mpc = _cstr_scenario_mpc(
        horizon,
        Cost(cost, term),
        Bounds(cstr.U_LOW, cstr.U_HIGH),
        SoftBounds(RLMPC_SOFT_UB, penalty=soft_penalty, terminal=True),
        SolverOptions(
            ipopt={**IPOPT_OPTIONS, **dict(ipopt_options or {})},
            warm_ipopt=WARM_IPOPT_OPTIONS,
            nlpsol={"expand": False},  # keep the networks' derivatives matrix-level
        ),
    )
    return MPCAgent(mpc, "RL+MPC")


@dataclass(frozen=True)
class Run:
    """A closed-loop run.

    Attributes
    ----------
    states : numpy.ndarray, shape (T + 1, 4)
    inputs : numpy.ndarray, shape (T, 2)
    step_times : numpy.ndarray, shape (T,)
        Wall-clock seconds of each ``agent.act`` call.
    failures : int
        Failed MPC solves during the run (0 for the RL agent).
    """

    states: np.ndarray
    inputs: np.ndarray
    step_times: np.ndarray
    failures: int = 0


def run_agent(
    agent: Any,
    x0: Any,
    goal: float,
    n_steps: int,
    alpha: Any = 1.0,
    beta: Any = 1.0,
    method: str = "cvodes",
) -> Run:
    """Closed loop of ``agent`` on the plant from ``x0`` with set-point ``goal``.

    Parameters
    ----------
    agent : RLAgent or MPCAgent
        Anything with ``reset()`` and ``act(x, g) -> u``.
    x0 : array_like, shape (4,)
    goal : float
        Target ``c_B`` [mol/l].
    n_steps : int
    alpha, beta : float or array_like, shape (n_steps,)
        Plant parameters (constant or per step).
    method : {"cvodes", "rk4"}
        Plant integrator (:func:`lgutils.value_function_mpc.cstr.plant_step`).

    Returns
    -------
    Run
    """
    if not (hasattr(agent, "act") and hasattr(agent, "reset")):
        raise ValueError(f"agent must have act(x, g) and reset(), got {type(agent).__name__}")
    n_steps = check_positive_int("n_steps", n_steps)
    x = as_vector("x0", x0, 4)
    al = np.broadcast_to(as_array("alpha", alpha), (n_steps,))
    be = np.broadcast_to(as_array("beta", beta), (n_steps,))
    agent.reset()
    xs = np.empty((n_steps + 1, 4))
    us = np.empty((n_steps, 2))
    times = np.empty(n_steps)
    xs[0] = x
    for t in range(n_steps):
        t0 = time.perf_counter()
        u = np.clip(agent.act(xs[t], goal), cstr.U_LOW, cstr.U_HIGH)
        times[t] = time.perf_counter() - t0
        us[t] = u
        xs[t + 1] = cstr.plant_step(xs[t], u, al[t], be[t], method=method)
    return Run(xs, us, times, int(getattr(agent, "failures", 0)))


def trajectory_metrics(states: Any, goal: float, band: float = TARGET_BAND) -> dict[str, Any]:
    """Scores of one run.

    Parameters
    ----------
    states : array_like, shape (T + 1, 4)
    goal : float
    band : float
        Half-width of the target band on ``c_B`` [mol/l].

    Returns
    -------
    dict
        ``max_violation``: largest excess of any state over the box ``[X_LOW, X_HIGH]`` in that
        state's units (0 if never outside); ``max_violation_by_state`` (4 values);
        ``final_cb_error``: ``|c_B(T) - g|``; ``steps_to_target``: first step from which
        ``|c_B - g| <= band`` holds to the end (None if never); ``time_near_goal``: fraction of
        the steps ``1..T`` with ``|c_B - g| <= band``; ``time_outside``: fraction of the steps
        ``1..T`` outside the box (by more than 1e-6); ``l1_error``, ``l2_error``: mean of
        ``|c_B - g|`` and root mean square of ``c_B - g`` over the steps ``1..T``.
    """
    xs = as_array("states", states)
    if xs.ndim != 2 or xs.shape[1] != 4 or xs.shape[0] < 2:
        raise ValueError(f"states must have shape (T + 1, 4) with T >= 1, got shape {xs.shape}")
    v = cstr.violation(xs)
    err = np.abs(xs[:, 1] - goal)
    inside = err <= band
    steps_to_target = None
    if inside[-1]:
        outside_idx = np.flatnonzero(~inside)
        steps_to_target = int(outside_idx[-1] + 1) if outside_idx.size else 0
    return {
        "max_violation": float(v.max()),
        "max_violation_by_state": v.max(axis=0).tolist(),
        "final_cb_error": float(err[-1]),
        "steps_to_target": steps_to_target,
        "time_near_goal": float(inside[1:].mean()),
        "time_outside": float((v[1:].max(axis=1) > 1e-6).mean()),
        "l1_error": float(err[1:].mean()),
        "l2_error": float(np.sqrt((err[1:] ** 2).mean())),
    }


def summarize(values: Any) -> dict[str, float]:
    """Mean and normal-approximation 95% confidence interval of a sample.

    Returns
    -------
    dict
        ``mean``, ``ci_low``, ``ci_high`` (``mean -+ 1.96 s / sqrt(n)``), ``n``.
    """
    a = as_array("values", values)
    if a.ndim != 1 or a.size < 1:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {a.shape}")
    m = float(a.mean())
    half = 1.96 * float(a.std(ddof=1)) / np.sqrt(a.size) if a.size > 1 else 0.0
    return {"mean": m, "ci_low": m - half, "ci_high": m + half, "n": int(a.size)}


def evaluate(
    agents: Mapping[str, Any],
    x0s: Any,
    goals: Any,
    n_steps: int,
    alphas: Any = None,
    betas: Any = None,
    progress: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Run every agent from every initial state and score the runs.

    Parameters
    ----------
    agents : dict
        Name -> agent (``reset()``, ``act(x, g)``).
    x0s : array_like, shape (n, 4)
        Initial states.
    goals : array_like, shape (n,)
        Set-points of ``c_B`` [mol/l].
    n_steps : int
        Steps per run.
    alphas, betas : array_like, shape (n,), optional
        The plant's parameters for each run, constant over the run (default nominal 1).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        Name -> list (one per run) of :func:`trajectory_metrics` dicts, each with the run's
        ``median_step_time`` [s] and ``solver_failures`` (failed MPC solves) added.
    """
    x0s = as_array("x0s", x0s)
    if x0s.ndim != 2 or x0s.shape[1] != 4:
        raise ValueError(f"x0s must have shape (n, 4), got shape {x0s.shape}")
    n = x0s.shape[0]
    goals = as_vector("goals", goals, n)
    alphas = np.ones(n) if alphas is None else as_vector("alphas", alphas, n)
    betas = np.ones(n) if betas is None else as_vector("betas", betas, n)
    jobs = [(name, i) for i in range(n) for name in agents]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="closed-loop runs", leave=False)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in agents}
    for name, i in jobs:
        run = run_agent(agents[name], x0s[i], goals[i], n_steps, alphas[i], betas[i])
        m = trajectory_metrics(run.states, goals[i])
        m["median_step_time"] = float(np.median(run.step_times))
        m["solver_failures"] = run.failures
        out[name].append(m)
    return out


def plot_state_profiles(
    states: Mapping[str, Any], goal: float, axes: Any = None, t_step: float = cstr.T_STEP
) -> Any:
    """Fig. 3's four stacked panels: c_A, c_B, T_R, T_K against time, one line per agent.

    Parameters
    ----------
    states : dict
        Agent name (``"RL"``, ``"MPC"``, ``"RL+MPC"``, ...) -> states of shape (T + 1, 4).
    goal : float
        Target c_B, drawn dashed in the c_B panel.
    axes : array of 4 matplotlib axes, optional
        Created with :func:`lgutils.core.plotting.subplots` when omitted.
    t_step : float
        Sampling time [h].

    Returns
    -------
    matplotlib.figure.Figure
    """
    from lgutils.core import plotting

    if axes is None:
        fig, axes = plotting.subplots(4, 1, figsize=(6.4, 7.6), sharex=True)
    else:
        fig = axes[0].figure
    labels = [r"$c_A$ [mol/l]", r"$c_B$ [mol/l]", r"$T_R$ [°C]", r"$T_K$ [°C]"]
    for j, ax in enumerate(axes):
        ax.axhspan(
            cstr.X_LOW[j],
            cstr.X_HIGH[j],
            color="0.85",
            alpha=0.6,
            lw=0,
            label="constraints" if j == 0 else None,
        )
        for name, xs in states.items():
            xs = as_array(f"states[{name!r}]", xs)
            t = np.arange(xs.shape[0]) * t_step
            try:
                color = plotting.agent_color(name)
            except ValueError:
                color = None
            ax.plot(t, xs[:, j], color=color, label=name if j == 0 else None)
        ax.set_ylabel(labels[j])
    axes[1].axhline(goal, color="k", ls="--", lw=1, label=f"target $c_B$ = {goal}")
    axes[-1].set_xlabel("time [h]")
    axes[0].legend(loc="upper right", fontsize=8, ncols=2)
    axes[1].legend(loc="lower right", fontsize=8)
    return fig


def evaluation_study(
    weights: Mapping[str, np.ndarray],
    n_states: int = 30,
    n_steps: int = 50,
    seed: int = 0,
    rlmpc_horizon: int = 5,
    mpc_horizon: int = 20,
    progress: bool = True,
) -> dict[str, Any]:
    """The three agents from random initial states, on the nominal plant and on uncertain plants.

    Initial states are uniform in the box, goals uniform in {0.6, 0.7, 0.8}; each uncertain
    plant has one ``(alpha, beta)`` drawn uniformly from the 9 scenarios, constant over its run.
    The same states and goals serve both plants. Everything is drawn from
    ``numpy.random.default_rng(seed)``.

    Returns
    -------
    dict
        ``x0`` (n_states, 4), ``goals`` (n_states,), ``alpha``, ``beta`` (n_states,) as lists,
        ``settings`` and ``runs``: plant (``"nominal"``, ``"uncertain"``) -> agent name -> list
        of :func:`evaluate` metric dicts.
    """
    n_states = check_positive_int("n_states", n_states)
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))
    x0 = rng.uniform(cstr.X_LOW, cstr.X_HIGH, size=(n_states, 4))
    goals = rng.choice(cstr.GOALS, size=n_states)
    scen = scenario_grid(cstr.ALPHA_SCENARIOS, cstr.BETA_SCENARIOS)[rng.integers(9, size=n_states)]
    agents = {
        "RL": RLAgent(weights),
        "MPC": baseline_mpc(horizon=mpc_horizon),
        "RL+MPC": rlmpc(weights, horizon=rlmpc_horizon),
    }
    runs = {
        "nominal": evaluate(agents, x0, goals, n_steps, progress=progress),
        "uncertain": evaluate(
            agents, x0, goals, n_steps, scen[:, 0], scen[:, 1], progress=progress
        ),
    }
    return {
        "x0": x0.tolist(),
        "goals": goals.tolist(),
        "alpha": scen[:, 0].tolist(),
        "beta": scen[:, 1].tolist(),
        "settings": {
            "n_states": n_states,
            "n_steps": n_steps,
            "seed": seed,
            "rlmpc_horizon": rlmpc_horizon,
            "mpc_horizon": mpc_horizon,
        },
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m lgutils.value_function_mpc.agents evaluate [--states 30] [--steps 50] [--seed 0] [--out data/cstr_eval]``.

    Runs :func:`evaluation_study` with the shipped SAC agent (``data/cstr_sac``) and writes
    ``evaluation.json`` into ``--out``, registered in the data manifest.
    """
    import argparse
    import json
    import shlex
    import sys
    from pathlib import Path

    from lgutils.core.paths import data_dir, record_artifact, sha256
    from lgutils.value_function_mpc.train import load_cstr_run

    parser = argparse.ArgumentParser(prog="python -m lgutils.value_function_mpc.agents")
    sub = parser.add_subparsers(dest="task", required=True)
    p = sub.add_parser("evaluate", help="the three agents from random initial states (chapter 07)")
    p.add_argument("--states", type=int, default=30)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="output folder (default data/cstr_eval)")
    args = parser.parse_args(argv)
    out = args.out or data_dir() / "cstr_eval"
    out.mkdir(parents=True, exist_ok=True)
    argv_used = sys.argv[1:] if argv is None else argv
    command = "python -m lgutils.value_function_mpc.agents " + " ".join(
        shlex.quote(a) for a in argv_used
    )
    run = load_cstr_run()
    t0 = time.perf_counter()
    study = evaluation_study(run["weights"], args.states, args.steps, args.seed)
    wall = time.perf_counter() - t0
    study["wall_time_s"] = round(wall, 1)
    study["command"] = command
    study["weights_sha256"] = sha256(data_dir() / "cstr_sac" / "weights.npz")
    path = out / "evaluation.json"
    path.write_text(json.dumps(study, indent=1) + "\n")
    root = data_dir()
    try:
        out.resolve().relative_to(root.resolve())
    except ValueError:
        root = out.parent
    record_artifact(
        path, command=command, seed=args.seed, extra={"wall_time_s": round(wall, 1)}, root=root
    )
    print(f"wrote {path} in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
