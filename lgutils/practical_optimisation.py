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
  CasADi ``map``;
- :func:`time_sensitivity` -- the solve alone against the solve with its sensitivities
  (``MPC.policy_sensitivity``), state by state;
- :func:`fit_value_network` and :func:`closed_loop_cost` -- a tanh network fitted to sampled
  values (a learned terminal cost of chosen width) and the closed-loop cost it buys;
- :func:`linear_mpc_gain` -- the feedback gain ``u = -K x`` of an MPC that is linear in the
  state, and the gain's derivative with respect to the MPC's parameters.

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
    Params,
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
    "INPUT_WEIGHT",
    "time_sensitivity",
    "fit_value_network",
    "closed_loop_cost",
    "linear_mpc_gain",
]

#: The mass chain's stage cost is ``x^T x + INPUT_WEIGHT u^T u``.
INPUT_WEIGHT = 0.1

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
    *,
    terminal_cost: Callable[[Any], Any] | None = None,
    learnable_model: bool = False,
    method: str = "nlp",
) -> tuple[MPC, np.ndarray, np.ndarray]:
    """The MPC of :func:`mass_chain`: quadratic cost, ``|u| <= 0.5`` N, ``|x| <= 4``.

    Stage cost ``x^T x + 0.1 u^T u`` (:data:`INPUT_WEIGHT`), terminal cost ``10 x^T x`` unless
    ``terminal_cost`` replaces it.

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
    terminal_cost : callable, optional
        ``V(x_H)`` on CasADi symbols, in place of ``10 x^T x`` (not with ``nn_hidden``).
    learnable_model : bool
        Make the model's ``A`` and ``B`` parameters of the MPC (``phi = {"A", "B"}``, the
        exact chain by default), as in case study B: ``MPC.policy_sensitivity`` then
        differentiates with respect to ``4 n^2 + 2 n`` numbers.
    method : {"nlp", "qp"}
        ``SolverOptions(method=...)``: IPOPT, or a QP solver (no network terminal cost then).

    Returns
    -------
    mpc : MPC
    A, B : numpy.ndarray
        The plant, for :func:`time_closed_loop`.
    """
    if warm_start not in WARM_STARTS:
        raise ValueError(f"warm_start must be one of {list(WARM_STARTS)}, got {warm_start!r}")
    if terminal_cost is not None and nn_hidden is not None:
        raise ValueError("give terminal_cost or nn_hidden, not both")
    A, B = mass_chain(n_masses, dt)
    nx = A.shape[0]
    flag, opts = WARM_STARTS[warm_start]
    nn = None if nn_hidden is None else random_mlp(nx, nn_hidden, 2, seed)

    def terminal(x, p):
        if terminal_cost is not None:
            return terminal_cost(x)
        quad = 10 * ca.sumsqr(x)
        return quad if nn is None else quad + ca.sumsqr(nn(x))

    def dynamics(x, u, p):
        if learnable_model:
            return ca.mtimes(p["A"], x) + ca.mtimes(p["B"], u)
        return ca.mtimes(ca.DM(A), x) + ca.mtimes(ca.DM(B), u)

    mpc = MPC(
        Model(nx, 1, dynamics=dynamics),
        Cost(stage=lambda x, u, p: ca.sumsqr(x) + INPUT_WEIGHT * ca.sumsqr(u), terminal=terminal),
        horizon,
        params=Params({"A": A.shape, "B": B.shape}, {"A": A, "B": B}) if learnable_model else None,
        bounds=Bounds(u_lb=-0.5, u_ub=0.5, x_lb=np.full(nx, -4.0), x_ub=np.full(nx, 4.0)),
        solver=SolverOptions(
            ipopt=ipopt,
            warm_start=flag,
            warm_ipopt=opts or None,
            nlpsol={"expand": nn is None},
            method=method,
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


def time_sensitivity(mpc: MPC, states: Any, phi: Any = None, repeats: int = 1) -> dict[str, Any]:
    """Seconds of :meth:`MPC.policy` (the solve alone) and of :meth:`MPC.policy_sensitivity`
    (the same solve and the derivatives of ``u_0*`` with respect to ``phi`` and the state).

    Both are cold solves from the same states (``warm_start=False``), so the difference is the
    price of the sensitivities. Each call is repeated ``repeats`` times and keeps its fastest
    time (the iterates are identical; this only removes the noise of other processes). A first,
    untimed call builds what the MPC builds on first use.

    Returns
    -------
    dict
        ``solve`` and ``sensitivity``: median seconds over the states; ``ratio``: their ratio;
        ``solve_times`` and ``sensitivity_times``: arrays of shape (N,), s.
    """
    S = as_array("states", states, (None, mpc.nx))
    repeats = check_positive_int("repeats", repeats)
    mpc.policy_sensitivity(S[0], phi, warm_start=False)  # build on first use, untimed
    times = np.full((2, S.shape[0]), np.inf)
    for i, s in enumerate(S):
        for _ in range(repeats):
            t0 = time.perf_counter()
            mpc.policy(s, phi, warm_start=False)
            t1 = time.perf_counter()
            mpc.policy_sensitivity(s, phi, warm_start=False)
            t2 = time.perf_counter()
            times[:, i] = np.minimum(times[:, i], [t1 - t0, t2 - t1])
    solve, sens = np.median(times, axis=1)
    return {
        "solve": float(solve),
        "sensitivity": float(sens),
        "ratio": float(sens / solve),
        "solve_times": times[0],
        "sensitivity_times": times[1],
    }


def fit_value_network(
    states: Any, values: Any, width: int, depth: int = 2, seed: int = 0, iterations: int = 300
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A tanh network ``V(x)`` fitted to sampled values by least squares (full-batch L-BFGS).

    Inputs and outputs are standardised for the fit and the scalings folded back into the first
    and last layers, so the returned layers map states to values directly
    (:func:`lgutils.core.nn.mlp_function` makes them a CasADi function, a terminal cost). The
    fit runs in double precision on one CPU thread, so the same arguments give the same weights.

    Parameters
    ----------
    states : array_like, shape (N, n)
    values : array_like, shape (N,)
    width : int
        Units per hidden layer.
    depth : int
        Number of hidden layers.
    seed : int
        Seed of the initial weights (torch's default initialisation).
    iterations : int
        L-BFGS iterations (strong Wolfe line search).

    Returns
    -------
    list of (W, b)
        ``W`` of shape ``(out, in)``; tanh after every layer but the last.
    """
    import torch

    X = as_array("states", states, (None, None))
    y = as_array("values", values, (X.shape[0],))
    width, depth = check_positive_int("width", width), check_positive_int("depth", depth)
    iterations = check_positive_int("iterations", iterations)
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-12
    y_mu, y_sd = float(y.mean()), float(y.std()) + 1e-12
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(check_positive_int("seed", seed, minimum=0))
        sizes = [X.shape[1]] + [width] * depth
        mods: list[Any] = []
        for i, o in zip(sizes[:-1], sizes[1:], strict=True):
            mods += [torch.nn.Linear(i, o), torch.nn.Tanh()]
        net = torch.nn.Sequential(*mods, torch.nn.Linear(width, 1)).double()
        Xt, yt = torch.tensor((X - mu) / sd), torch.tensor((y - y_mu) / y_sd)
        opt = torch.optim.LBFGS(
            net.parameters(),
            max_iter=iterations,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
        )

        def closure():
            opt.zero_grad()
            loss = torch.mean((net(Xt)[:, 0] - yt) ** 2)
            loss.backward()
            return loss

        opt.step(closure)
        layers = [
            (m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
            for m in net
            if isinstance(m, torch.nn.Linear)
        ]
    finally:
        torch.set_num_threads(threads)
    W0, b0 = layers[0]
    layers[0] = (W0 / sd, b0 - W0 @ (mu / sd))  # standardise the input inside the first layer
    W, b = layers[-1]
    layers[-1] = (y_sd * W, y_sd * b + y_mu)  # and the output inside the last
    return layers


def closed_loop_cost(
    mpc: MPC, A: Any, B: Any, initial_states: Any, steps: int, tail: Any
) -> dict[str, Any]:
    """The mass chain's closed-loop cost under ``mpc``, summed over several initial states.

    Each run costs ``sum_t (x_t^T x_t + 0.1 u_t^T u_t) + x_T^T tail x_T``: the stage cost of
    :func:`mass_chain_mpc` over ``steps`` steps of the exact plant ``x+ = A x + B u``, and a
    quadratic estimate (e.g. the LQR value) of the cost that follows.

    Returns
    -------
    dict
        ``cost`` (sum over the runs), ``costs`` (array, per run), ``median_time`` (s, over every
        solve but each run's first, cold one) and ``failures`` (failed solves, recorded).
    """
    X0 = as_array("initial_states", initial_states, (None, mpc.nx))
    A, B = as_array("A", A, (mpc.nx, mpc.nx)), as_array("B", B, (mpc.nx, mpc.nu))
    tail = as_array("tail", tail, (mpc.nx, mpc.nx))
    costs, times, failures = [], [], 0
    for x0 in X0:
        run = closed_loop(mpc, lambda x, u: A @ x + B @ u, x0, steps, on_failure="record")
        x, u, xT = run.states[:-1], run.actions, run.states[-1]
        costs.append(np.sum(x * x) + INPUT_WEIGHT * np.sum(u * u) + xT @ tail @ xT)
        times.append(run.solve_times[1:])
        failures += run.n_failures
    times = np.concatenate(times)
    return {
        "cost": float(np.sum(costs)),
        "costs": np.asarray(costs),
        "median_time": float(np.nanmedian(times)),
        "failures": failures,
    }


def linear_mpc_gain(mpc: MPC, phi: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The gain ``K`` of an MPC whose policy is linear, ``u = -K x``, and ``dK / dphi``.

    For an MPC without active constraints, a linear model and a quadratic cost, ``u_0*`` is
    linear in the state: ``d u_0*/ds = -K`` and, at the unit state ``e_j``,
    ``d u_0*/dphi = -dK[:, j]/dphi``. One :meth:`MPC.policy_sensitivity` per state dimension
    gives both; a ValueError says when ``d u_0*/ds`` differs between them (an active
    constraint).

    Returns
    -------
    K : numpy.ndarray, shape (nu, nx)
    dK : numpy.ndarray, shape (nu, nx, n_phi)
        ``dK[i, j, k] = d K_ij / d phi_k``, ``phi`` flattened as by :meth:`MPC.flatten_phi`.
    """
    sens = [mpc.policy_sensitivity(e, phi) for e in np.eye(mpc.nx)]
    K = -sens[0].d_action_d_state
    gap = max(float(np.max(np.abs(s.d_action_d_state + K))) for s in sens)
    if gap > 1e-8 * (1.0 + float(np.max(np.abs(K)))):
        raise ValueError(
            f"mpc must have a linear policy (no active constraint at the unit states), but "
            f"d u_0*/ds differs between unit states by {gap:.1e}"
        )
    dK = -np.stack([s.d_action_d_phi for s in sens], axis=1)
    return K, dK
