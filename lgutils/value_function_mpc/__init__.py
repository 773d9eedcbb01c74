"""Case study A (chapter 07, Fig. 3): the Klatt-Engell CSTR, SAC training and the RL, MPC and
RL+MPC agents.

- :mod:`~lgutils.value_function_mpc.cstr`: the reactor model, its integrators and the plant;
- :mod:`~lgutils.value_function_mpc.env`: the goal-conditioned environment ``lgutils/CSTR-v0``;
- :mod:`~lgutils.value_function_mpc.train`: SAC + HER training and loading of its artifacts;
- :mod:`~lgutils.value_function_mpc.agents`: the RL, MPC and RL+MPC agents and the learned value;
- :mod:`~lgutils.value_function_mpc.evaluation`: closed-loop runs, their scores and the study
  over random initial states, in parallel over the states.
"""
