"""Test problems and timing helpers for the practical requirements of MPC (paper Sec. IV.A).

The chapter "Practical requirements of local optimisation" and ``benchmarks/mpc_solve_times.py``
time :class:`lgutils.mpc.MPC` on problems whose size can be dialled:

- :func:`mass_chain` -- ``n`` masses coupled by springs, a force on the first one: a linear
  system with ``2 n`` states whose MPC (:func:`mass_chain_mpc`) has input and state bounds;
  :func:`displaced_chain` is the initial state of every timing run;
- :func:`random_mlp` -- a random tanh network as a CasADi function, to serve as a neural
  terminal cost ``V(x) = ||NN(x)||^2`` of growing width;
- :func:`time_closed_loop` -- solve times and iterations along a receding-horizon run, with
  cold, primal or primal-dual warm starts;
- :func:`time_batch` -- many independent states, one solve after the other or through a
  CasADi ``map``.

Times are wall-clock seconds of the solver call on this machine; report medians and ratios
measured in one run, never a single number from another machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import casadi as ca
import numpy as np
import scipy.linalg

from lgutils.core.validate import as_array, check_in_open_interval, check_positive_int
from lgutils.mpc import (
    MPC,
    PRIMAL_DUAL_WARM_START,
    Bounds,
    Cost,
    Model,
    SolverOptions,
    closed_loop,
)

__all__ = [
    "WARM_STARTS",
    "mass_chain",
    "displaced_chain",
    "mass_chain_mpc",
    "random_mlp",
    "time_closed_loop",
    "time_batch",
]

#: The warm-start strategies compared: name -> (MPC warm_start flag, IPOPT options of the
#: warm-started solves, ``SolverOptions(warm_ipopt=...)``; the first, cold solve keeps IPOPT's
#: defaults).
WARM_STARTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "cold": (False, {}),
    "primal warm": (True, {}),
    "primal-dual warm": (True, dict(PRIMAL_DUAL_WARM_START)),
}


def mass_chain(
    n_masses: int, dt: float = 0.5, stiffness: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit masses in a row, joined by springs (and to walls at both ends), exactly discretised.

    State ``(positions, velocities)`` of shape (2 n,), in m and m/s; input: a force (N) on the
    first mass, held over a step of ``dt`` seconds.

    Returns
    -------
    A : numpy.ndarray, shape (2 n, 2 n)
    B : numpy.ndarray, shape (2 n, 1)
    """
    n = check_positive_int("n_masses", n_masses)
    dt = check_in_open_interval("dt", dt, 0.0, np.inf)
    k = check_in_open_interval("stiffness", stiffness, 0.0, np.inf)
    L = k * (2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1))  # spring Laplacian with walls
    Ac = np.block([[np.zeros((n, n)), np.eye(n)], [-L, np.zeros((n, n))]])
    Bc = np.zeros((2 * n, 1))
    Bc[n, 0] = 1.0
    M = scipy.linalg.expm(np.block([[Ac, Bc], [np.zeros((1, 2 * n + 1))]]) * dt)
    return M[: 2 * n, : 2 * n], M[: 2 * n, 2 * n :]


def displaced_chain(n_masses: int) -> np.ndarray:
    """The masses displaced from rest, spread evenly from 1.5 m to -1 m, at zero velocity.

    Returns
    -------
    numpy.ndarray, shape (2 n,)
        Positions (m) then velocities (m/s); a single mass sits at 1.5 m.
    """
    n = check_positive_int("n_masses", n_masses)
    return np.concatenate([np.linspace(1.5, -1.0, n) if n > 1 else [1.5], np.zeros(n)])


def random_mlp(n_in: int, hidden: int, depth: int = 2, seed: int = 0) -> ca.Function:
    """A random tanh MLP ``R^n_in -> R`` as a CasADi function (Glorot-scaled Gaussian weights).

    The layers are dense matrix products on MX symbols, so the network stays a handful of
    matrix operations inside the NLP (build the MPC with ``SolverOptions(nlpsol={"expand": False})``;
    expanding to scalar SX operations costs seconds for wide layers).

    Parameters
    ----------
    n_in : int
        Input size.
    hidden : int
        Units per hidden layer.
    depth : int
        Number of hidden layers.
    seed : int
        Seed of the weights.
    """
    n_in = check_positive_int("n_in", n_in)
    hidden = check_positive_int("hidden", hidden)
    depth = check_positive_int("depth", depth)
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))
    sizes = [n_in] + [hidden] * depth + [1]
    x = ca.MX.sym("x", n_in)
    y = x
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        W = ca.DM(rng.normal(size=(o, i)) * np.sqrt(1.0 / i))
        y = ca.mtimes(W, y) + ca.DM(0.1 * rng.normal(size=o))
        if k < depth:
            y = ca.tanh(y)
    return ca.Function(f"mlp_{hidden}x{depth}", [x], [y], ["x"], ["y"])


def mass_chain_mpc(
    n_masses: int,
    horizon: int,
    nn_hidden: int | None = None,
    warm_start: str = "primal warm",
    dt: float = 0.5,
    seed: int = 0,
    ipopt: Mapping[str, Any] | None = None,
) -> tuple[MPC, np.ndarray, np.ndarray]:
    """The MPC of :func:`mass_chain`: quadratic cost, ``|u| <= 0.5`` N, ``|x| <= 4``.

    Parameters
    ----------
    n_masses, horizon : int
    nn_hidden : int, optional
        Add a neural terminal cost ``||NN(x)||^2`` (a :func:`random_mlp` of this width, two
        hidden layers) to the quadratic one; the NLP is then not expanded to SX.
    warm_start : str
        A key of :data:`WARM_STARTS`.
    dt : float
        Sampling time, s.
    seed : int
        Seed of the network's weights.
    ipopt : dict, optional
        Extra IPOPT options of every solve, ``SolverOptions(ipopt=...)`` of the MPC (for
        example ``{"hessian_approximation": "limited-memory"}``).

    Returns
    -------
    mpc : MPC
    A, B : numpy.ndarray
        The plant, for :func:`time_closed_loop`.
    """
    if warm_start not in WARM_STARTS:
        raise ValueError(f"warm_start must be one of {list(WARM_STARTS)}, got {warm_start!r}")
    A, B = mass_chain(n_masses, dt)
    nx = A.shape[0]
    flag, opts = WARM_STARTS[warm_start]
    nn = None if nn_hidden is None else random_mlp(nx, nn_hidden, 2, seed)

    def terminal(x, p):
        quad = 10 * ca.sumsqr(x)
        return quad if nn is None else quad + ca.sumsqr(nn(x))

    mpc = MPC(
        Model(nx, 1, dynamics=lambda x, u, p: ca.mtimes(ca.DM(A), x) + ca.mtimes(ca.DM(B), u)),
        Cost(stage=lambda x, u, p: ca.sumsqr(x) + 0.1 * ca.sumsqr(u), terminal=terminal),
        horizon,
        bounds=Bounds(u_lb=-0.5, u_ub=0.5, x_lb=np.full(nx, -4.0), x_ub=np.full(nx, 4.0)),
        solver=SolverOptions(
            ipopt=ipopt, warm_start=flag, warm_ipopt=opts or None, nlpsol={"expand": nn is None}
        ),
    )
    return mpc, A, B


def time_closed_loop(
    mpc: MPC,
    plant: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x0: Any,
    steps: int,
    phi: Any = None,
    repeats: int = 1,
) -> dict[str, Any]:
    """Median solve time and iterations along a closed-loop run (first solve excluded).

    The first solve of a run is always cold; the statistics use the others, so that they
    measure the warm-start strategy of ``mpc`` (see :data:`WARM_STARTS`). With ``repeats > 1``
    the same run is repeated and, solve by solve, the smallest time is kept: the iterates are
    identical in every repeat, so this only removes the noise of other processes.

    Returns
    -------
    dict
        ``median_time`` and ``max_time`` (s), ``median_iterations``, ``times`` (array, s),
        ``iterations`` (array).
    """
    steps = check_positive_int("steps", steps, minimum=2)
    repeats = check_positive_int("repeats", repeats)
    times = []
    for _ in range(repeats):
        mpc.reset_warm_start()
        run = closed_loop(mpc, plant, x0, steps, phi)
        times.append(run.solve_times[1:])
    t, it = np.min(times, axis=0), run.iterations[1:]
    return {
        "median_time": float(np.median(t)),
        "max_time": float(np.max(t)),
        "median_iterations": float(np.median(it)),
        "times": t,
        "iterations": it,
    }


def time_batch(mpc: MPC, states: Any, phi: Any = None, repeats: int = 3) -> dict[str, float]:
    """Seconds per state of :meth:`MPC.policy_batch` with ``method="loop"`` and ``"map"``.

    Each method is timed ``repeats`` times (wall clock of the whole batch, including Python
    overhead); the minimum over repeats is divided by the number of states.

    Returns
    -------
    dict
        ``loop`` and ``map`` (s per state), and ``max_action_gap``: the largest difference of the
        actions the two methods return.
    """
    S = as_array("states", states, (None, mpc.nx))
    repeats = check_positive_int("repeats", repeats)
    out: dict[str, float] = {}
    actions = {}
    for method in ("loop", "map"):
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = mpc.policy_batch(S, phi, method=method)
            best = min(best, time.perf_counter() - t0)
        out[method] = best / S.shape[0]
        actions[method] = res.actions
    out["max_action_gap"] = float(np.max(np.abs(actions["loop"] - actions["map"])))
    return out
