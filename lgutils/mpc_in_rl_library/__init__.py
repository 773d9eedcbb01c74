"""Chapter 09: the MPC as a PyTorch layer and a Stable-Baselines3 policy (paper Sec. V.C).

Sec. V.C of the paper observes that established RL libraries do not accommodate MPC agents:
they neither batch them nor propagate their sensitivities. These modules join the book's MPC
to PyTorch and Stable-Baselines3 (SB3) without changing either, in reading order:

- :mod:`~lgutils.mpc_in_rl_library.solvers`: ``(S, phi) -> u_0*, V`` and their sensitivities
  for a batch of states, through IPOPT (any :class:`lgutils.mpc.MPC`) or case study B's closed
  form;
- :mod:`~lgutils.mpc_in_rl_library.layer`: the ``torch.autograd.Function`` (forward = solve,
  backward = vector-Jacobian product with the sensitivities), the ``nn.Module`` holding
  ``phi``, gradient checks and throughput;
- :mod:`~lgutils.mpc_in_rl_library.sb3`: the SB3 actor-critic policy whose mean is the layer,
  a ``predict`` wrapper for ``evaluate_policy`` and the episode-end wrapper;
- :mod:`~lgutils.mpc_in_rl_library.ppo`: SB3's PPO on case study B through the layer, and the
  exact returns and model mismatch of its runs.
"""
