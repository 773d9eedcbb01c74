"""Chapter 09: the MPC as a PyTorch layer and a Stable-Baselines3 policy."""
