"""Closed-loop runs of the case-study-A agents, their scores and the evaluation study.

:func:`run_agent` closes the loop of an agent of :mod:`lgutils.value_function_mpc.agents` on
the plant (on :func:`lgutils.value_function_mpc.cstr.closed_loop`, the book's one rollout),
:func:`trajectory_metrics` scores a run, :func:`summarize` gives a mean and its confidence
interval, :func:`evaluate` runs every agent from every initial state and
:func:`evaluation_study` is chapter 07's study over random initial states, nominal and
uncertain plants.

Command line (writes ``evaluation.json``, registered in the data manifest)::

    python -m lgutils.value_function_mpc.evaluation evaluate [--states 30] [--steps 50] [--seed 0] [--out data/cstr_eval]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lgutils.core.paths import data_dir, record_artifact, sha256
from lgutils.core.validate import as_array, as_vector, check_positive_int
from lgutils.mpc.scenario import scenario_grid
from lgutils.value_function_mpc import cstr
from lgutils.value_function_mpc.agents import RLAgent, baseline_mpc, rlmpc
from lgutils.value_function_mpc.train import load_cstr_run

__all__ = [
    "TARGET_BAND",
    "Run",
    "run_agent",
    "trajectory_metrics",
    "summarize",
    "evaluate",
    "evaluation_study",
    "main",
]

#: |c_B - g| within which a run counts as "at the target" [mol/l].
TARGET_BAND: float = 0.05


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
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="closed-loop runs", leave=False)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in agents}
    for name, i in jobs:
        run = run_agent(agents[name], x0s[i], goals[i], n_steps, alphas[i], betas[i])
        m = trajectory_metrics(run.states, goals[i])
        m["median_step_time"] = float(np.median(run.step_times))
        m["solver_failures"] = run.failures
        out[name].append(m)
    return out


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


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lgutils.value_function_mpc.evaluation")
    sub = parser.add_subparsers(dest="task", required=True)
    p = sub.add_parser("evaluate", help="the three agents from random initial states (chapter 07)")
    p.add_argument("--states", type=int, default=30)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="output folder (default data/cstr_eval)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """``python -m lgutils.value_function_mpc.evaluation evaluate [--states 30] [--steps 50] [--seed 0] [--out data/cstr_eval]``.

    Runs :func:`evaluation_study` with the shipped SAC agent (``data/cstr_sac``) and writes
    ``evaluation.json`` into ``--out``, registered in the data manifest.
    """
    args = _parse(argv)
    out = args.out or data_dir() / "cstr_eval"
    out.mkdir(parents=True, exist_ok=True)
    argv_used = sys.argv[1:] if argv is None else argv
    command = "python -m lgutils.value_function_mpc.evaluation " + " ".join(
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
