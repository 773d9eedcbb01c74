"""Closed-loop runs of the case-study-A agents, their scores and the evaluation study.

:func:`run_agent` closes the loop of an agent of :mod:`lgutils.value_function_mpc.agents` on
the plant (on :func:`lgutils.value_function_mpc.cstr.closed_loop`, the book's one rollout),
:func:`trajectory_metrics` scores a run, :func:`summarize` gives a mean and its confidence
interval, :func:`evaluate` runs every agent from every initial state and
:func:`evaluation_study` is chapter 07's study over random initial states on nominal plants,
plants drawn from the robust MPCs' scenario tree and plants outside it.

Every run depends only on its agent, initial state, goal and plant, so :func:`evaluate` runs the
initial states in parallel (joblib) with the same numbers as a serial run.

Where the time goes (chapter 07 at full fidelity, 200 states, 2 processes on 2 cores, 2026-12-06):
the study took 1,119 s (nominal 315 s, scenario-tree plants 288 s, out-of-tree plants 432 s, RL+MPC
without V 85 s); on 2026-12-05 it took 1,582 s. Per 50-step run, on one core, nominal plant: RL
0.027 s, baseline MPC 1.80 s, RL+MPC 1.43 s, RL+MPC without V 0.66 s. RL+MPC's solves get V's
gradient and Hessian in closed form (:mod:`lgutils.core.nn_hessian`, ``Cost.terminal_derivatives``)
instead of CasADi's automatic Hessian of the nine scenarios' ``V``: the Hessian of the Lagrangian
went from 3.30 s to 1.10 s per 4 runs and the study to 1,148 s. :class:`RunCache` runs each (agent,
initial state, plant) once (24 of the 200 scenario-tree plants are the nominal one and reuse the
nominal runs), and jobs of 5 states keep both processes busy to the end: 1,119 s.

What is left, profiled over 4 runs on one core. RL+MPC: 5.25 s, 2,168 IPOPT iterations; the NLP
functions take 2.59 s (Hessian 1.18, objective gradient 0.78, objective 0.39, constraint Jacobian
0.14, constraints 0.10), IPOPT and MUMPS the rest. Baseline MPC: 7.03 s, 2,497 iterations, about
2.8 ms each, 22 % of it in the NLP functions and about 1.2 ms in MUMPS' numeric factorization; on
the nominal plant a third of its time is cold solves that fail (8 to 19 iterations each, stopped
before the restoration phase), mostly where ``c_A`` rises past its bound over several steps. No
cheap test tells such a state in advance: whether a solve fails is decided by IPOPT's
acceptable-level tolerances. Routes measured that gave nothing: SPRAL (shipped with CasADi's IPOPT)
instead of MUMPS, 5.6 times slower with the same failures; CasADi's other BLAS, no change; ``V`` in
SX called from the MX graph, 2.5 times slower; an expanded (SX) Hessian of the nine ``V``, 4 times
slower than the MX one. The solver tolerance that would halve the baseline's iterations moves its
closed loops by up to 13 % (see ``benchmarks/cstr_mpc_vs_dompc.py``).

How far it can go while IPOPT takes the same path (``benchmarks/cstr_eval_floor.py``, 20 states
per plant, one core, 2026-12-06): the NLP functions take 23 % of the baseline's time, 51-53 % of
RL+MPC's and 15 % of RL+MPC without V's; weighted by the study's runs, 65 % of the study's time is
outside them (IPOPT, MUMPS, the plant, Python). With functions that cost nothing the study would
still take about 730 s on the machine of the 1,119 s above and 965 s on one where it took 1,484 s,
against the 600 s issue 16 asks for. A different IPOPT path is no way out either: the same
nominal runs with ``mu_strategy="adaptive"`` (same tolerance) move 14 of 20 RL+MPC closed loops
and 3 of 20 baseline ones by more than 1e-3 relative (RL+MPC's by up to 0.9: its cost has
several local minima), while the mean time near the goal moves by 0.001 or less.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from lgutils.core.validate import as_array, as_vector, check_positive_int
from lgutils.mpc.scenario import scenario_grid
from lgutils.value_function_mpc import cstr
from lgutils.value_function_mpc.agents import RLAgent, baseline_mpc, rlmpc

__all__ = [
    "TARGET_BAND",
    "STATE_NAMES",
    "OUT_OF_TREE_LOW",
    "OUT_OF_TREE_HIGH",
    "Run",
    "run_agent",
    "trajectory_metrics",
    "summarize",
    "by_state",
    "run_values",
    "summary_table",
    "RunCache",
    "evaluate",
    "run_agents",
    "study_agents",
    "study_plants",
    "evaluation_study",
]

#: |c_B - g| within which a run counts as "at the target" [mol/l].
TARGET_BAND: float = 0.05
#: The states' names, in order, as the keys of :func:`by_state`.
STATE_NAMES: tuple[str, ...] = ("c_A", "c_B", "T_R", "T_K")
#: The box of the out-of-tree plants' ``(alpha, beta)``: twice as wide as the range of the
#: robust MPCs' scenarios (``alpha in [0.95, 1.05]``, ``beta in [0.9, 1.1]``).
OUT_OF_TREE_LOW = np.array([0.9, 0.8])
OUT_OF_TREE_HIGH = np.array([1.1, 1.2])


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

    The loop is :func:`lgutils.value_function_mpc.cstr.closed_loop` (the book's one rollout,
    :func:`lgutils.core.rollout.rollout`), which also times every ``agent.act`` call.

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
    agent.reset()
    run = cstr.closed_loop(lambda x, t: agent.act(x, goal), x0, n_steps, alpha, beta, method)
    return Run(run.states, run.actions, run.policy_times, int(getattr(agent, "failures", 0)))


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


def by_state(values: Any) -> dict[str, float]:
    """Four per-state numbers (e.g. ``max_violation_by_state``) keyed by :data:`STATE_NAMES`.

    Parameters
    ----------
    values : array_like, shape (4,)
        In the order ``(c_A, c_B, T_R, T_K)``.

    Returns
    -------
    dict
        ``{"c_A": ..., "c_B": ..., "T_R": ..., "T_K": ...}`` as floats.
    """
    v = as_vector("values", values, 4)
    return {name: float(x) for name, x in zip(STATE_NAMES, v, strict=True)}


def run_values(runs: Any, metric: str) -> np.ndarray:
    """One metric of every run of an agent, as an array.

    Parameters
    ----------
    runs : list of dict
        :func:`evaluate`'s metric dicts of one agent on one plant.
    metric : str
        A key of those dicts (``steps_to_target`` must not be None), or
        ``"max_violation_<state>"`` with ``<state>`` in :data:`STATE_NAMES` for that state's
        largest excess over its bounds, in its own unit.

    Returns
    -------
    numpy.ndarray, shape (n_runs,)
    """
    prefix = "max_violation_"
    if metric.startswith(prefix) and metric[len(prefix) :] in STATE_NAMES:
        j = STATE_NAMES.index(metric[len(prefix) :])
        return np.array([m["max_violation_by_state"][j] for m in runs], dtype=float)
    if runs and metric not in runs[0]:
        raise ValueError(f"metric must be a key of the runs or {prefix}<state>, got {metric!r}")
    return np.array([m[metric] for m in runs], dtype=float)


def summary_table(results: Mapping[str, Mapping[str, Any]], metrics: Any) -> list[dict[str, Any]]:
    """:func:`summarize` of every metric of every agent on every plant, as table rows.

    Parameters
    ----------
    results : dict
        Plant -> agent -> list of :func:`evaluate` metric dicts.
    metrics : sequence of str
        Metric names as :func:`run_values` takes them.

    Returns
    -------
    list of dict
        One row per (plant, agent, metric), in that nesting order: ``plant``, ``agent``,
        ``metric`` and the entries of :func:`summarize`.
    """
    return [
        {"plant": plant, "agent": agent, "metric": metric, **summarize(run_values(runs, metric))}
        for plant, by_agent in results.items()
        for agent, runs in by_agent.items()
        for metric in metrics
    ]


#: Agents built in this process, by the SHA-256 of their pickled builder: the jobs of
#: :func:`evaluate` that a worker process runs one after another reuse them instead of building
#: (and compiling) the same MPC again. Every run resets its agent, so a reused agent gives the
#: same runs as a fresh one. At most :data:`_MAX_BUILT` are kept.
_BUILT: dict[bytes, Any] = {}
_MAX_BUILT = 16


def _builder_key(factory: Any) -> bytes | None:
    """SHA-256 of a builder's pickle (None for an agent object or a builder that cannot be pickled)."""
    if hasattr(factory, "act"):
        return None
    try:
        return hashlib.sha256(pickle.dumps(factory)).digest()
    except (pickle.PicklingError, AttributeError, TypeError):  # e.g. a lambda
        return None


def _build(factory: Any) -> Any:
    """``factory()``, or the agent that an equal (same pickle) builder built in this process."""
    key = _builder_key(factory)
    if key is None:
        return factory()
    if key not in _BUILT:
        if len(_BUILT) >= _MAX_BUILT:
            _BUILT.pop(next(iter(_BUILT)))  # forget the oldest
        _BUILT[key] = factory()
    return _BUILT[key]


def _agents_of(agents: Mapping[str, Any]) -> dict[str, Any]:
    """Agents from ``agents``: an agent is used as it is, a builder is called (or its agent reused)."""
    return {name: (a if hasattr(a, "act") else _build(a)) for name, a in agents.items()}


def _run_states(
    agents: Mapping[str, Any],
    x0s: np.ndarray,
    goals: np.ndarray,
    alphas: np.ndarray,
    betas: np.ndarray,
    n_steps: int,
) -> dict[str, list[dict[str, Any]]]:
    """One job of :func:`evaluate`: every agent from every state of a chunk (agents built here)."""
    built = _agents_of(agents)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in built}
    for i in range(x0s.shape[0]):
        for name, agent in built.items():
            run = run_agent(agent, x0s[i], goals[i], n_steps, alphas[i], betas[i])
            m = trajectory_metrics(run.states, goals[i])
            m["median_step_time"] = float(np.median(run.step_times))
            m["solver_failures"] = run.failures
            out[name].append(m)
    return out


class RunCache:
    """Scores of closed-loop runs already done, for :func:`evaluate` to reuse.

    A run depends only on its agent's builder, initial state, goal, plant and number of steps
    (every agent is reset before a run, the plant is deterministic). :func:`evaluate` given a
    cache looks each run up by those (the builder by the SHA-256 of its pickle, the numbers by
    their bytes) and runs only the initial states of which some run is missing; it then stores
    the new runs. In chapter 07, the scenario-tree plants whose ``(alpha, beta)`` is the nominal
    ``(1, 1)`` (24 of 200) repeat nominal runs. Agents given as objects, not builders, are never
    cached. A reused run keeps the ``median_step_time`` measured when it was run.

    Attributes
    ----------
    hits : int
        Runs taken from the cache so far.
    """

    def __init__(self) -> None:
        self._runs: dict[tuple, dict[str, Any]] = {}
        self.hits = 0

    def __len__(self) -> int:
        return len(self._runs)

    @staticmethod
    def key(builder: bytes, x0: np.ndarray, goal: float, alpha: float, beta: float, n_steps: int):
        """The key of one run (``builder`` from the builder's pickle, the rest by value)."""
        numbers = np.concatenate([np.asarray(x0, float), [goal, alpha, beta]])
        return (builder, numbers.tobytes(), int(n_steps))

    def get(self, key: tuple) -> dict[str, Any] | None:
        """The stored scores of a run (a copy), or None."""
        m = self._runs.get(key)
        return None if m is None else dict(m)

    def put(self, key: tuple, metrics: Mapping[str, Any]) -> None:
        """Store the scores of a run."""
        self._runs[key] = dict(metrics)


def evaluate(
    agents: Mapping[str, Any],
    x0s: Any,
    goals: Any,
    n_steps: int,
    alphas: Any = None,
    betas: Any = None,
    progress: bool = True,
    *,
    n_jobs: int | None = None,
    states_per_job: int = 5,
    cache: RunCache | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Run every agent from every initial state and score the runs, in parallel over states.

    The states are cut into chunks of ``states_per_job``; each chunk is one job of
    ``joblib.Parallel(n_jobs)`` (whose backend follows ``joblib.parallel_config``: serial,
    local processes, or a dask cluster), which builds its own agents and runs them from its
    states. A run depends only on its agent, initial state, goal and plant (every agent is
    reset before each run, the plant is deterministic), so the numbers do not depend on
    ``n_jobs`` or ``states_per_job``; only the step times do.

    Parameters
    ----------
    agents : dict
        Name -> agent (``reset()``, ``act(x, g)``) or a picklable zero-argument callable that
        builds one (e.g. ``functools.partial(agents.rlmpc, weights)``); give callables with
        ``n_jobs > 1``, so that every job builds its agents where it runs.
    x0s : array_like, shape (n, 4)
        Initial states.
    goals : array_like, shape (n,)
        Set-points of ``c_B`` [mol/l].
    n_steps : int
        Steps per run.
    alphas, betas : array_like, shape (n,), optional
        The plant's parameters for each run, constant over the run (default nominal 1).
    progress : bool
        Show a progress bar over the jobs.
    n_jobs : int, optional
        Parallel jobs (default: joblib's, i.e. ``parallel_config``'s or 1).
    states_per_job : int
        Initial states per job (small jobs keep both processes busy to the end).
    cache : RunCache, optional
        Runs found here are not run again; the new ones are stored in it.

    Returns
    -------
    dict
        Name -> list (one per run, in the order of ``x0s``) of :func:`trajectory_metrics`
        dicts, each with the run's ``median_step_time`` [s] and ``solver_failures`` (failed
        MPC solves) added.
    """
    from joblib import Parallel, delayed

    x0s = as_array("x0s", x0s)
    if x0s.ndim != 2 or x0s.shape[1] != 4:
        raise ValueError(f"x0s must have shape (n, 4), got shape {x0s.shape}")
    n = x0s.shape[0]
    goals = as_vector("goals", goals, n)
    alphas = np.ones(n) if alphas is None else as_vector("alphas", alphas, n)
    betas = np.ones(n) if betas is None else as_vector("betas", betas, n)
    n_steps = check_positive_int("n_steps", n_steps)
    per = check_positive_int("states_per_job", states_per_job)
    for name, a in agents.items():
        if not (hasattr(a, "act") or callable(a)):
            raise ValueError(f"agents[{name!r}] must be an agent or a callable that builds one")
    if cache is not None and not isinstance(cache, RunCache):
        raise ValueError(f"cache must be a RunCache or None, got {type(cache).__name__}")
    builders = {name: _builder_key(a) for name, a in agents.items()} if cache is not None else {}
    keys: list[dict[str, tuple]] = []  # per state: agent -> cache key (empty without a cache)
    if cache is not None and all(b is not None for b in builders.values()):
        keys = [
            {
                k: cache.key(b, x0s[i], goals[i], alphas[i], betas[i], n_steps)
                for k, b in builders.items()
            }
            for i in range(n)
        ]
    found = [{k: cache.get(key) for k, key in keys[i].items()} for i in range(len(keys))]
    todo = np.array([i for i in range(n) if not keys or None in found[i].values()], dtype=int)
    chunks = [todo[i : i + per] for i in range(0, todo.size, per)]
    jobs = (
        delayed(_run_states)(agents, x0s[c], goals[c], alphas[c], betas[c], n_steps) for c in chunks
    )
    parts = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    if progress:
        from tqdm import tqdm

        parts = tqdm(parts, total=len(chunks), desc="closed-loop runs", leave=False)
    by_state: dict[int, dict[str, dict[str, Any]]] = {}
    for c, part in zip(chunks, parts, strict=True):
        for j, i in enumerate(c):
            by_state[int(i)] = {name: part[name][j] for name in agents}
            for name, key in (keys[i] if keys else {}).items():
                cache.put(key, part[name][j])
    if keys:
        cache.hits += len(agents) * (n - todo.size)
    return {
        name: [by_state[i][name] if i in by_state else found[i][name] for i in range(n)]
        for name in agents
    }


def _run_one(agent: Any, x0: np.ndarray, goal: float, n_steps: int) -> Run:
    """One job of :func:`run_agents`."""
    return run_agent(_agents_of({"a": agent})["a"], x0, goal, n_steps)


def run_agents(
    agents: Mapping[str, Any], x0: Any, goal: float, n_steps: int, *, n_jobs: int | None = None
) -> dict[str, Run]:
    """:func:`run_agent` for several agents from one initial state on the nominal plant, one job each.

    Parameters
    ----------
    agents : dict
        Name -> agent or picklable zero-argument callable that builds one (as in
        :func:`evaluate`).
    x0 : array_like, shape (4,)
    goal : float
    n_steps : int
    n_jobs : int, optional
        Parallel jobs of ``joblib.Parallel`` (default: joblib's, i.e. 1).

    Returns
    -------
    dict
        Name -> :class:`Run`, in the order of ``agents``; the same runs as serial calls.
    """
    from joblib import Parallel, delayed

    x0 = as_vector("x0", x0, 4)
    n_steps = check_positive_int("n_steps", n_steps)
    for name, a in agents.items():
        if not (hasattr(a, "act") or callable(a)):
            raise ValueError(f"agents[{name!r}] must be an agent or a callable that builds one")
    runs = Parallel(n_jobs=n_jobs)(delayed(_run_one)(a, x0, goal, n_steps) for a in agents.values())
    return dict(zip(agents, runs, strict=True))


def study_agents(
    weights: Mapping[str, np.ndarray], rlmpc_horizon: int = 5, mpc_horizon: int = 20
) -> dict[str, Any]:
    """The three agents of chapter 07 as factories (for :func:`evaluate` with ``n_jobs``).

    Returns
    -------
    dict
        ``"RL"``, ``"MPC"``, ``"RL+MPC"`` -> zero-argument callables that build
        :class:`~lgutils.value_function_mpc.agents.RLAgent`, :func:`baseline_mpc` (horizon
        ``mpc_horizon``) and :func:`rlmpc` (horizon ``rlmpc_horizon``).
    """
    return {
        "RL": partial(RLAgent, weights),
        "MPC": partial(baseline_mpc, horizon=mpc_horizon),
        "RL+MPC": partial(rlmpc, weights, horizon=rlmpc_horizon),
    }


def study_plants(n_states: int, seed: int = 0) -> dict[str, Any]:
    """The random initial states, goals and plants of chapter 07's evaluation study.

    Initial states are uniform in the box, goals uniform in {0.6, 0.7, 0.8}. A plant keeps its
    ``(alpha, beta)`` for the whole run: ``"nominal"`` (1, 1); ``"uncertain"`` one of the robust
    MPCs' 9 scenarios, uniformly; ``"out_of_tree"`` uniform in the box
    :data:`OUT_OF_TREE_LOW`--:data:`OUT_OF_TREE_HIGH`, twice as wide as the scenario tree's
    range. The same states and goals serve every plant. Everything is drawn, in this order,
    from ``numpy.random.default_rng(seed)`` (so the draws of the first plants do not depend on
    the later ones, and nothing random is left to the runs).

    Returns
    -------
    dict
        ``x0`` (n_states, 4), ``goals`` (n_states,), ``plants``: name -> ``(alpha, beta)``, two
        arrays of shape (n_states,).
    """
    n_states = check_positive_int("n_states", n_states)
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))
    x0 = rng.uniform(cstr.X_LOW, cstr.X_HIGH, size=(n_states, 4))
    goals = rng.choice(cstr.GOALS, size=n_states)
    scen = scenario_grid(cstr.ALPHA_SCENARIOS, cstr.BETA_SCENARIOS)[rng.integers(9, size=n_states)]
    wide = rng.uniform(OUT_OF_TREE_LOW, OUT_OF_TREE_HIGH, size=(n_states, 2))
    ones = np.ones(n_states)
    plants = {"nominal": (ones, ones), "uncertain": tuple(scen.T), "out_of_tree": tuple(wide.T)}
    return {"x0": x0, "goals": goals, "plants": plants}


def evaluation_study(
    weights: Mapping[str, np.ndarray],
    n_states: int = 30,
    n_steps: int = 50,
    seed: int = 0,
    rlmpc_horizon: int = 5,
    mpc_horizon: int = 20,
    progress: bool = True,
    *,
    n_jobs: int | None = None,
    states_per_job: int = 5,
) -> dict[str, Any]:
    """The three agents from the states of :func:`study_plants` on every plant, and RL+MPC without V.

    Runs go through :func:`evaluate` (``n_jobs``, ``states_per_job``, one :class:`RunCache` for
    all plants, so a scenario-tree plant that is the nominal one is not run twice), the agents
    are those of :func:`study_agents`; the ablation runs RL+MPC without its terminal value
    (``agents.rlmpc(None, terminal_value=False)``) from the same states on the nominal plant.

    Returns
    -------
    dict
        ``x0``, ``goals`` and ``plants`` of :func:`study_plants` (as lists), ``settings``,
        ``runs``: plant (``"nominal"``, ``"uncertain"``, ``"out_of_tree"``) -> agent name ->
        list of :func:`evaluate` metric dicts, ``ablation``: ``{"nominal": {"RL+MPC (no V)":
        [...]}}`` and ``wall_time_s`` (all runs).
    """
    draws = study_plants(n_states, seed)
    x0, goals = draws["x0"], draws["goals"]
    factories = study_agents(weights, rlmpc_horizon, mpc_horizon)
    opts = {
        "progress": progress,
        "n_jobs": n_jobs,
        "states_per_job": states_per_job,
        "cache": RunCache(),
    }
    t0 = time.perf_counter()
    runs = {
        name: evaluate(factories, x0, goals, n_steps, alpha, beta, **opts)
        for name, (alpha, beta) in draws["plants"].items()
    }
    no_v = {"RL+MPC (no V)": partial(rlmpc, None, horizon=rlmpc_horizon, terminal_value=False)}
    ablation = {"nominal": evaluate(no_v, x0, goals, n_steps, **opts)}
    return {
        "x0": x0.tolist(),
        "goals": goals.tolist(),
        "plants": {k: [a.tolist(), b.tolist()] for k, (a, b) in draws["plants"].items()},
        "settings": {
            "n_states": n_states,
            "n_steps": n_steps,
            "seed": seed,
            "rlmpc_horizon": rlmpc_horizon,
            "mpc_horizon": mpc_horizon,
            "n_jobs": n_jobs,
        },
        "runs": runs,
        "ablation": ablation,
        "wall_time_s": time.perf_counter() - t0,
    }
