"""SAC+HER training speed on the CSTR against the same agent on an environment that costs nothing.

What is measured. Trainings with the same seed and exactly the book's agent
(:func:`lgutils.value_function_mpc.train.make_cstr_sac`: SB3's SAC with ``HerReplayBuffer``,
"future" goals, two hidden layers of 64 SiLU units, batch 256, buffer 1e4, one torch thread),
each from scratch for ``--steps`` environment steps, of two kinds:

- book: the book's training, :func:`lgutils.value_function_mpc.train.train_cstr` as the
  command line runs it (the goal-conditioned reactor
  :class:`~lgutils.value_function_mpc.env.CSTREnv` in SB3's ``Monitor``, the learning-curve
  callback with its evaluation of the deterministic actor on 20 episodes every
  ``--eval-every`` steps and at the end, the artifacts written into a temporary folder);
- floor: the same agent on :class:`FreeStepGoalEnv`, which has the same spaces (Dict
  observation with the same keys and shapes, the same action box) and the same 50-step
  episodes but constant observations and a ``compute_reward`` of one numpy expression, trained
  by ``model.learn`` without callbacks.

Why. The floor is Stable-Baselines3's own cost of SAC+HER with these networks and this batch
(action sampling, replay buffer, hindsight relabelling, one gradient step per environment
step after ``learning_starts = 100``); the ratio ``env_overhead_ratio`` (book's time / floor's)
is what the environment, its wrappers and the book's callbacks add to it. The 100,000-step
training takes about this ratio times the floor's time per step times 100,000. Short runs
slightly overstate the ratio (a larger share of steps before learning starts, an evaluation
every ``--steps`` instead of every 2,500 steps when ``--steps`` < 2,500).

How. An untimed warm-up training first (the first training in a process pays torch's lazy
imports, about 2 s), then ``--rounds`` pairs in the order floor, book, book, floor, ... so
that a drift in the load of a shared machine falls on both kinds alike. The wall-time ratio is
the target; the ratio of CPU times, less sensitive to other processes, is printed as a check.
About 1 minute on an idle 2-core machine with the defaults (under 3 minutes under load).

Usage::

    .venv/bin/python benchmarks/sac_training.py [--steps 2000] [--rounds 2] [--seed 0]

The last line is ``env_overhead_ratio X``.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor

from lgutils.core.seeding import seed_everything
from lgutils.value_function_mpc.env import CSTREnv
from lgutils.value_function_mpc.train import make_cstr_sac, train_cstr


class FreeStepGoalEnv(gym.Env):
    """The spaces and episode length of :class:`CSTREnv` with a step that costs (almost) nothing.

    Observations are constant (zeros, goal 0.7 mol/l); the reward of a step and the vectorised
    ``compute_reward`` are ``-|g - achieved|`` in one numpy expression.
    """

    metadata = {"render_modes": []}

    def __init__(self, max_episode_steps: int = 50) -> None:
        super().__init__()
        reference = CSTREnv(max_episode_steps=max_episode_steps)
        self.action_space = reference.action_space
        self.observation_space = reference.observation_space
        self.max_episode_steps = reference.max_episode_steps
        self._obs = {
            "observation": np.zeros(3, dtype=np.float32),
            "achieved_goal": np.zeros(1, dtype=np.float32),
            "desired_goal": np.full(1, 0.7, dtype=np.float32),
        }
        self._reward = float(
            self.compute_reward(self._obs["achieved_goal"], self._obs["desired_goal"], None)
        )
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # noqa: ARG002
        super().reset(seed=seed)
        self._t = 0
        return self._obs, {}

    def step(self, action):  # noqa: ARG002
        self._t += 1
        return self._obs, self._reward, False, self._t >= self.max_episode_steps, {}

    def compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:  # noqa: ARG002
        return -np.abs(desired_goal[..., 0] - achieved_goal[..., 0])


def warm_up(seed: int) -> None:
    """A short untimed training (past ``learning_starts``) so that neither timed run pays the
    one-off costs of the first one (torch's lazy imports at the first optimiser, SB3's modules)."""
    torch.set_num_threads(1)
    seed_everything(seed)
    make_cstr_sac(Monitor(FreeStepGoalEnv()), seed).learn(total_timesteps=300)


def time_free_env(steps: int, seed: int) -> dict[str, float]:
    """Wall and CPU time [s] of the book's agent built and trained ``steps`` steps on the free env."""
    torch.set_num_threads(1)
    seed_everything(seed)
    wall, cpu = time.perf_counter(), time.process_time()
    model = make_cstr_sac(Monitor(FreeStepGoalEnv()), seed)
    model.learn(total_timesteps=steps)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def time_book_training(steps: int, seed: int, eval_every: int) -> dict[str, Any]:
    """Wall and CPU time [s] of the book's training (:func:`train_cstr`) of ``steps`` steps."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        train_cstr(
            seed=seed,
            steps=steps,
            out=f"{tmp}/cstr_sac",
            eval_every=eval_every,
            save_zip=False,
            progress=False,
        )
        return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=2000, help="environment steps per training (default 2000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="pairs of trainings, in the order ABBA... (default 2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every training")
    parser.add_argument(
        "--eval-every", type=int, default=2500, help="the book's evaluation interval (its default)"
    )
    args = parser.parse_args()
    print(
        f"SAC+HER training, {args.rounds} x 2 trainings of {args.steps} steps, seed {args.seed}, "
        f"{platform.processor() or platform.machine()}, torch threads 1"
    )
    warm_up(args.seed)
    runs = {
        "free": lambda: time_free_env(args.steps, args.seed),
        "book": lambda: time_book_training(args.steps, args.seed, args.eval_every),
    }
    names = {"free": "free-step env (SB3 floor)", "book": "book's CSTR training"}
    total = {k: {"wall": 0.0, "cpu": 0.0} for k in runs}
    for r in range(args.rounds):
        for kind in ("free", "book") if r % 2 == 0 else ("book", "free"):
            t = runs[kind]()
            total[kind] = {k: total[kind][k] + t[k] for k in t}
            print(
                f"  {names[kind]:>26}: wall {t['wall']:6.1f} s ({args.steps / t['wall']:5.1f} "
                f"steps/s), cpu {t['cpu']:6.1f} s"
            )
    free, book = total["free"], total["book"]
    n = args.rounds * args.steps
    print(
        f"per step: SB3 floor {1e3 * free['wall'] / n:.2f} ms wall ({1e3 * free['cpu'] / n:.2f} "
        f"ms cpu), book {1e3 * book['wall'] / n:.2f} ms wall ({1e3 * book['cpu'] / n:.2f} ms cpu)"
    )
    print(f"cpu_ratio {book['cpu'] / free['cpu']:.3f}")
    print(f"env_overhead_ratio {book['wall'] / free['wall']:.3f}")


if __name__ == "__main__":
    main()
