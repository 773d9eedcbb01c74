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
- :mod:`lgutils.rl` -- fitted Q-iteration, REINFORCE and Monte-Carlo evaluation of policies.

Importing :mod:`lgutils` registers the book's gymnasium environments.
"""

from __future__ import annotations

__version__ = "0.1.0"

from lgutils import _registration  # noqa: F401  (registers gymnasium environments)
