"""Case study A (chapter 07, Fig. 3): the Klatt-Engell CSTR, SAC training and the RL, MPC and
RL+MPC agents."""
