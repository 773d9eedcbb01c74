"""Helpers for the *Local-Global Learning* book.

The chapters import these modules; each one holds one concept:

- :mod:`lgutils.validate` -- argument checks with messages that name the argument;
- :mod:`lgutils.seeding` -- one seed for numpy, Python and torch;
- :mod:`lgutils.paths` -- repository, data artifacts (hash-verified) and their manifest;
- :mod:`lgutils.metrics` -- the headline numbers each chapter records;
- :mod:`lgutils.plotting` -- the book's figure style and agent colours;
- :mod:`lgutils.setup_check` -- the checks of the "Getting started" chapter;
- :mod:`lgutils.envs` -- the linear-quadratic gymnasium environment (``lgutils/LinearQuadratic-v0``);
- :mod:`lgutils.lqr` -- Riccati solutions, Q* and V* in closed form, exact returns of linear policies;
- :mod:`lgutils.dp` -- grid MDPs, the Bellman operator, value iteration, greedy policies;
- :mod:`lgutils.rl` -- fitted Q-iteration, REINFORCE and Monte-Carlo evaluation of policies;
- :mod:`lgutils.mpc` -- the CasADi MPC of eq. (13): policy, Q, V and their sensitivities;
- :mod:`lgutils.localglobal` -- Bellman residuals and policy improvement with MPC agents (Sec. III.B);
- :mod:`lgutils.mpcbench` -- test problems and timing helpers for solve-time studies (Sec. IV.A);
- :mod:`lgutils.cstr` -- the Klatt-Engell reactor, its plant and ``lgutils/CSTR-v0``;
- :mod:`lgutils.nn` -- SB3 actor and critic networks as CasADi functions;
- :mod:`lgutils.train` -- SAC+HER training of the CSTR agent (``python -m lgutils.train cstr``);
- :mod:`lgutils.multistage` -- the robust scenario-tree MPC built on :mod:`lgutils.mpc`;
- :mod:`lgutils.vfmpc` -- the RL, MPC and RL+MPC agents of case study A (Fig. 3);
- :mod:`lgutils.mpc_reinforce` -- case study B: REINFORCE on the MPC's model (Fig. 4);
- :mod:`lgutils.mpc_reinforce_bounded` -- its input-constrained variant;
- :mod:`lgutils.mpc_qlearning` -- its value-based counterpart (Q-learning of the model);
- :mod:`lgutils.torch_mpc` -- the MPC as a PyTorch layer and a Stable-Baselines3 policy;
- :mod:`lgutils.exploration` -- exploration strategies for MPC agents and dual control.

Importing :mod:`lgutils` registers the book's gymnasium environments.
"""

from __future__ import annotations

__version__ = "0.1.0"

from lgutils import _registration  # noqa: F401  (registers gymnasium environments)
