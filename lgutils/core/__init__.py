"""What every chapter shares: argument checks, seeds, data paths, metrics, the figure style, the
linear-quadratic environment, closed-form LQR, grid dynamic programming, the RL baselines and the
networks that carry SB3 weights into CasADi."""
