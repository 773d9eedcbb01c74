"""Case study B (chapter 08, Fig. 4): REINFORCE on the MPC's model, its input-bounded variant and
its value-based counterpart."""
