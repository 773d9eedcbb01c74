"""Exploration by an MPC agent that learns its Q-function, and dual control (chapter 10, Sec. IV.B).

- :mod:`lgutils.exploration.speed_limit` -- the problem: a cart under a speed limit, its plant,
  rewards and optimal unconstrained Q-function;
- :mod:`lgutils.exploration.learning` -- fitted Q-iteration of a quadratic ``Q_phi``, value
  weights and the ensemble of fits;
- :mod:`lgutils.exploration.strategies` -- the exploring MPC, one exploration step per strategy
  and :func:`~lgutils.exploration.strategies.explore`, which collects data and fits ``Q_phi``;
- :mod:`lgutils.exploration.evaluation` -- coverage, violations, held-out Bellman error and the
  closed-loop return of a fitted value;
- :mod:`lgutils.exploration.dual` -- dual control of a scalar system with an unknown gain.
"""
