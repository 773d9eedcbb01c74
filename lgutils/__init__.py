"""Helpers for the *Local-Global Learning* book.

The chapters import these modules; each one holds one concept:

- :mod:`lgutils.core.validate` -- argument checks with messages that name the argument;
- :mod:`lgutils.core.seeding` -- one seed for numpy, Python and torch;
- :mod:`lgutils.core.paths` -- repository, data artifacts (hash-verified) and their manifest;
- :mod:`lgutils.core.metrics` -- the headline numbers each chapter records;
- :mod:`lgutils.core.plotting` -- the book's figure style and agent colours;
- :mod:`lgutils.getting_started` -- the checks of the "Getting started" chapter;
- :mod:`lgutils.core.envs` -- the linear-quadratic gymnasium environment (``lgutils/LinearQuadratic-v0``);
- :mod:`lgutils.core.lqr` -- Riccati solutions, Q* and V* in closed form, exact returns of linear policies;
- :mod:`lgutils.core.dp` -- grid MDPs, the Bellman operator, value iteration, greedy policies;
- :mod:`lgutils.core.rl` -- fitted Q-iteration, REINFORCE and Monte-Carlo evaluation of policies;
- :mod:`lgutils.mpc` -- the CasADi MPC of eq. (13): policy, Q, V and their sensitivities;
- :mod:`lgutils.local_global` -- Bellman residuals and policy improvement with MPC agents (Sec. III.B);
- :mod:`lgutils.practical_optimisation` -- test problems and timing helpers for solve-time studies (Sec. IV.A);
- :mod:`lgutils.value_function_mpc.cstr` -- the Klatt-Engell reactor and its plant;
- :mod:`lgutils.value_function_mpc.env` -- its goal-conditioned gymnasium environment ``lgutils/CSTR-v0``;
- :mod:`lgutils.core.nn` -- SB3 actor and critic networks as CasADi functions;
- :mod:`lgutils.value_function_mpc.train` -- SAC+HER training of the CSTR agent (``python -m lgutils.value_function_mpc.train cstr``);
- :mod:`lgutils.mpc.scenario` -- the robust scenario-tree MPC built on :mod:`lgutils.mpc`;
- :mod:`lgutils.value_function_mpc.agents` -- the RL, MPC and RL+MPC agents of case study A (Fig. 3);
- :mod:`lgutils.value_function_mpc.evaluation` -- their closed-loop runs, scores and evaluation study
  (parallel over initial states);
- :mod:`lgutils.mpc_reinforce.model` -- case study B: the MPC with a learnable model, in closed form;
- :mod:`lgutils.mpc_reinforce.rollout` -- its episodes on the true system and exact expected returns;
- :mod:`lgutils.mpc_reinforce.training` -- the training loop its learners share;
- :mod:`lgutils.mpc_reinforce.reinforce` -- REINFORCE on the MPC's model (Fig. 4);
- :mod:`lgutils.mpc_reinforce.bounded` -- its input-constrained variant;
- :mod:`lgutils.mpc_reinforce.qlearning` -- its value-based counterpart (Q-learning of the model);
- :mod:`lgutils.mpc_in_rl_library` -- the MPC as a PyTorch layer (``solvers``, ``layer``) and a
  Stable-Baselines3 policy (``sb3``, ``ppo``);
- :mod:`lgutils.exploration` -- exploration strategies for MPC agents and dual control (chapter 10:
  speed_limit, learning, strategies, evaluation, dual).

Importing :mod:`lgutils` registers the book's gymnasium environments.
"""

from __future__ import annotations

__version__ = "0.1.0"

from lgutils import _registration  # noqa: F401  (registers gymnasium environments)
