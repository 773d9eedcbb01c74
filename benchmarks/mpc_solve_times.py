"""Solve times of lgutils.mpc.MPC: the full sweep behind the chapter "Practical requirements of
local optimisation" (paper Sec. IV.A).

Every comparison is measured side by side in one run on this machine and printed as a ratio:

- horizon sweep (3-mass chain): time relative to the shortest horizon;
- size sweep (H = 20): time relative to the smallest chain;
- neural terminal cost sweep (3 masses, H = 10): time relative to no network;
- warm starts (4 masses, H = 20): cold / primal warm / primal-dual warm, ratio to cold;
- batched evaluation: loop with warm starts against CasADi's map, ratio loop / map.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mpc_solve_times.py [--quick] [--steps 30]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from lgutils.practical_optimisation import (
    WARM_STARTS,
    displaced_chain,
    mass_chain_mpc,
    time_batch,
    time_closed_loop,
)


def timing(
    n_masses: int, horizon: int, steps: int, nn_hidden: int | None = None, warm: str = "primal warm"
) -> dict:
    mpc, A, B = mass_chain_mpc(n_masses, horizon, nn_hidden=nn_hidden, warm_start=warm)
    return time_closed_loop(mpc, lambda x, u: A @ x + B @ u, displaced_chain(n_masses), steps)


def table(title: str, label: str, rows: list[tuple[object, dict]], ref: dict) -> None:
    print(f"\n{title}")
    print(f"  {label:>22} {'median ms':>10} {'max ms':>9} {'iterations':>10} {'ratio':>7}")
    for key, r in rows:
        print(
            f"  {key!s:>22} {1e3 * r['median_time']:10.2f} {1e3 * r['max_time']:9.2f} "
            f"{r['median_iterations']:10.1f} {r['median_time'] / ref['median_time']:7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sweep (a few seconds)")
    parser.add_argument("--steps", type=int, default=30, help="closed-loop steps per timing run")
    args = parser.parse_args()
    steps = 5 if args.quick else args.steps
    horizons = [5, 10] if args.quick else [5, 10, 20, 40, 80, 160]
    sizes = [1, 2] if args.quick else [1, 2, 4, 8, 16, 32]
    widths = [8] if args.quick else [8, 32, 64, 128, 256, 512]
    print(
        f"lgutils MPC solve times, {platform.processor() or platform.machine()}, {steps} closed-loop steps per run"
    )
    t0 = time.perf_counter()

    rows = [(H, timing(3, H, steps)) for H in horizons]
    table("horizon sweep (3 masses; ratio to the shortest horizon)", "horizon H", rows, rows[0][1])

    rows = [(2 * n, timing(n, 20, steps)) for n in sizes]
    table("size sweep (H = 20; ratio to the smallest chain)", "state dimension", rows, rows[0][1])

    base = timing(3, 10, steps)
    rows = [("none", base)] + [(w, timing(3, 10, steps, nn_hidden=w)) for w in widths]
    table(
        "neural terminal cost (3 masses, H = 10; ratio to no network)", "hidden units", rows, base
    )

    rows = [(name, timing(4, 20, steps, warm=name)) for name in WARM_STARTS]
    table("warm starts (4 masses, H = 20; ratio to cold)", "start", rows, rows[0][1])

    mpc, _, _ = mass_chain_mpc(3, 20)
    states = np.random.default_rng(0).uniform(-1.0, 1.0, size=(10 if args.quick else 200, 6))
    b = time_batch(mpc, states)
    print("\nbatched evaluation (3 masses, H = 20, random states)")
    print(
        f"  loop {1e3 * b['loop']:.2f} ms/state, map {1e3 * b['map']:.2f} ms/state, "
        f"loop / map = {b['loop'] / b['map']:.2f}, largest action difference {b['max_action_gap']:.1e}"
    )
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
