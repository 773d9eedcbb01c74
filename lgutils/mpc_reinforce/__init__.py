"""Case study B (chapter 08, Fig. 4): REINFORCE on the MPC's model, its input-bounded variant and
its value-based counterpart.

Modules, each importing only those above it: :mod:`~lgutils.mpc_reinforce.model` (the MPC in
closed form and its sensitivities), :mod:`~lgutils.mpc_reinforce.rollout` (episodes and exact
returns), :mod:`~lgutils.mpc_reinforce.bounded` (the input-bounded MPC),
:mod:`~lgutils.mpc_reinforce.training` (the loop shared by the learners),
:mod:`~lgutils.mpc_reinforce.reinforce` and :mod:`~lgutils.mpc_reinforce.qlearning` (the two
learners).
"""
