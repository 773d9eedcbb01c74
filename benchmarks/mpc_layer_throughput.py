"""Throughput of the differentiable MPC layer: batched calls against one state per call, side by side.

:func:`lgutils.mpc_in_rl_library.layer.mpc_layer` solves the MPC for a whole batch of states in one call. This
script measures, in one run, the states per second of

- a *batched* call (all N states in one call of the layer), and
- *one state per call* (N calls of the layer, one state each, as an RL library that knows
  nothing about the MPC would make them),

for three solvers of the same MPC (case study B: horizon 5, model ``(A_phi, B_phi)`` as the 20
parameters, no constraints) and for an input-constrained MPC (``|u| <= 1``), each in two modes:

- ``rollout``: forward pass only, under ``torch.no_grad`` (what PPO does while collecting
  experience);
- ``train``: forward pass with sensitivities plus the backward pass of ``sum(u_0*) + sum(V)``
  (what PPO does for every minibatch).

Solvers: ``MPCSolver`` over IPOPT with ``method="loop"`` (one warm-started IPOPT solve per state,
statuses checked), ``MPCSolver`` with ``method="map"`` (CasADi's ``map`` of the solver; the
sensitivities still loop) and the closed-form ``RiccatiSolver`` (numpy, whole batch at once). The
actions of all solvers are first checked to agree. The last line is::

    batched_vs_single_ratio <states/s batched / states/s one per call, IPOPT map, rollout mode>

Usage::

    OMP_NUM_THREADS=1 python benchmarks/mpc_layer_throughput.py [--states 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lgutils.mpc import Bounds, linear_quadratic_mpc  # noqa: E402
from lgutils.mpc_in_rl_library import layer, solvers  # noqa: E402
from lgutils.mpc_reinforce import model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=64, help="states N in a batch")
    parser.add_argument("--repeats", type=int, default=3, help="timings per measurement (best)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rng = np.random.default_rng(args.seed)
    phi = rng.uniform(-1.0, 1.0, 20)  # a random model, as Fig. 4's initial models
    S = rng.normal(size=(args.states, 4)) * 2.0
    mpc = model.case_b_mpc(horizon=5)
    by_solver = {
        "IPOPT, loop": solvers.MPCSolver(mpc, method="loop"),
        "IPOPT, map": solvers.MPCSolver(mpc, method="map"),
        "closed form (Riccati)": solvers.RiccatiSolver.case_b(),
    }
    ref = by_solver["closed form (Riccati)"].solve(S, phi).actions
    for name, solver in by_solver.items():
        gap = np.abs(solver.solve(S, phi).actions - ref).max()
        assert gap < 1e-6 * max(1.0, np.abs(ref).max()), (name, gap)

    # an input-constrained MPC: the same system with |u| <= 1 (LQ weights learnable too)
    env = model.case_b()
    bounded = linear_quadratic_mpc(4, 1, 5, terminal_cost=False, bounds=Bounds(u_lb=-1.0, u_ub=1.0))
    A, B = model.split_phi(phi, 4, 1)
    phi_b = bounded.flatten_phi({"A": A, "B": B, "Q": env.Q, "R": env.R})
    cases = [(f"case B, {k}", s, phi) for k, s in by_solver.items()]
    cases.append(("|u| <= 1, IPOPT, loop", solvers.MPCSolver(bounded), phi_b))

    print(f"N = {args.states} states per batch; states per second (best of {args.repeats})")
    print(f"{'MPC, solver':<34} {'mode':<8} {'batched':>10} {'one/call':>10} {'ratio':>7}")
    ratio_map_rollout = None
    for name, solver, p in cases:
        for mode in ("rollout", "train"):
            r = layer.layer_throughput(solver, S, p, backward=mode == "train", repeats=args.repeats)
            print(
                f"{name:<34} {mode:<8} {r['batched']:>10.0f} {r['single']:>10.0f} {r['ratio']:>7.2f}"
            )
            if name == "case B, IPOPT, map" and mode == "rollout":
                ratio_map_rollout = r["ratio"]
    print(f"batched_vs_single_ratio {ratio_map_rollout:.2f}")


if __name__ == "__main__":
    main()
