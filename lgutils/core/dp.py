"""Dynamic programming on grids: the Bellman optimality operator, value iteration, greedy policy.

A continuous MDP with dynamics ``x' = f(x, u) + w``, ``w ~ N(0, W)``, and reward ``r(x, u)`` is
discretised on a tensor grid of states and a grid of actions:

- the expectation over ``w`` in eq. (6) becomes a Gauss-Hermite quadrature sum;
- the value ``max_a' Q(x', a')`` at an off-grid next state ``x'`` is interpolated
  (multilinear) from the grid nodes, after clamping ``x'`` into the grid's box.

Both steps are averages with non-negative weights summing to one, so the whole expectation is one
sparse, row-stochastic matrix ``P`` of shape ``(n_states * n_actions, n_states)`` and

    (T Q)(s, a) = r(s, a) + gamma * sum_s' P[(s, a), s'] * max_a' Q(s', a'),

a gamma-contraction in the sup norm (eq. 6-7). Everything is vectorised over states; the only
Python loops run over quadrature nodes, interpolation corners and iterations.

Shapes: ``n`` state dimensions, ``m`` action dimensions, ``S`` grid states, ``M`` grid actions;
a Q-table has shape ``(S, M)``. Units are those of the model.
"""

from __future__ import annotations

import itertools
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse

from lgutils.core.validate import (
    as_array,
    as_matrix,
    check_in_open_interval,
    check_positive_int,
    check_psd,
)

__all__ = [
    "GridMDP",
    "ValueIterationResult",
    "grid",
    "tensor_points",
    "gauss_hermite",
    "interpolation_matrix",
    "discretise",
    "discretise_lq",
    "state_action_pairs",
    "bellman_operator",
    "state_values",
    "value_iteration",
    "greedy_policy",
    "sup_norm",
    "backup_cost",
]


class GridMDP(NamedTuple):
    """A discretised MDP (build it with :func:`discretise` or :func:`discretise_lq`).

    Attributes
    ----------
    state_grids : tuple of numpy.ndarray
        One increasing 1-D grid per state dimension (lengths ``N_1, ..., N_n``).
    action_grids : tuple of numpy.ndarray
        One increasing 1-D grid per action dimension.
    states : numpy.ndarray, shape (S, n)
        All grid states, ``S = N_1 * ... * N_n`` (C order: the last dimension varies fastest).
    actions : numpy.ndarray, shape (M, m)
        All grid actions.
    rewards : numpy.ndarray, shape (S, M)
        ``r(s, a)`` at every grid state and action.
    transition : scipy.sparse.csr_matrix, shape (S * M, S)
        Row ``s * M + a`` holds the probabilities of the next grid state (quadrature weight times
        interpolation weight); every row sums to one.
    gamma : float
        Discount factor in (0, 1).
    """

    state_grids: tuple[np.ndarray, ...]
    action_grids: tuple[np.ndarray, ...]
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    transition: scipy.sparse.csr_matrix
    gamma: float


class ValueIterationResult(NamedTuple):
    """Output of :func:`value_iteration`.

    Attributes
    ----------
    Q : numpy.ndarray, shape (S, M)
        The last iterate.
    deltas : numpy.ndarray, shape (k,)
        ``||Q_{j+1} - Q_j||_inf`` for each iteration j.
    errors : numpy.ndarray, shape (k + 1,) or None
        ``||Q_j - reference||_inf`` for j = 0..k, if a reference was given.
    """

    Q: np.ndarray
    deltas: np.ndarray
    errors: np.ndarray | None


def grid(
    low: Sequence[float] | float, high: Sequence[float] | float, n_points: Sequence[int] | int
) -> tuple[np.ndarray, ...]:
    """Uniform 1-D grids, one per dimension (``numpy.linspace`` with the end points).

    Parameters
    ----------
    low, high : float or sequence of float, length d
        Bounds of the box per dimension (``low < high``).
    n_points : int or sequence of int, length d
        Number of points per dimension (>= 2).

    Returns
    -------
    tuple of numpy.ndarray
    """
    low = np.atleast_1d(as_array("low", low))
    high = np.atleast_1d(as_array("high", high))
    n_points = np.atleast_1d(np.asarray(n_points))
    d = max(low.size, high.size, n_points.size)
    try:
        low, high, n_points = (np.broadcast_to(v, (d,)) for v in (low, high, n_points))
    except ValueError as exc:
        raise ValueError(
            f"low, high and n_points must have one entry per dimension, got sizes {low.size}, "
            f"{high.size} and {n_points.size}"
        ) from exc
    if low.ndim != 1 or np.any(low >= high):
        raise ValueError(f"low must be < high in every dimension, got low={low} and high={high}")
    counts = [check_positive_int("n_points", k, 2) for k in n_points]
    return tuple(np.linspace(lo, hi, k) for lo, hi, k in zip(low, high, counts, strict=True))


def tensor_points(grids: Sequence[np.ndarray]) -> np.ndarray:
    """All points of a tensor grid, shape ``(prod(len(g)), d)``, last dimension fastest."""
    if len(grids) == 0:
        raise ValueError("grids must hold at least one 1-D grid, got none")
    mesh = np.meshgrid(
        *[as_array(f"grids[{i}]", g, (None,)) for i, g in enumerate(grids)], indexing="ij"
    )
    return np.stack([m.ravel() for m in mesh], axis=-1)


def _check_grids(name: str, grids: object, min_points: int = 2) -> tuple[np.ndarray, ...]:
    """``grids`` as a non-empty tuple of finite, strictly increasing 1-D float arrays."""
    if grids is None or isinstance(grids, (str, bytes, dict)):
        items = None
    else:
        try:
            items = list(grids)  # type: ignore[call-overload]
        except TypeError:
            items = None
    if items is None:
        raise ValueError(
            f"{name} must be a sequence of 1-D grids (one per dimension), got "
            f"{type(grids).__name__}: {grids!r}"
        )
    if len(items) == 0:
        raise ValueError(f"{name} must hold at least one 1-D grid, got none")
    out = []
    for i, g in enumerate(items):
        g = as_array(f"{name}[{i}]", g, (None,))
        if g.size < min_points or np.any(np.diff(g) <= 0):
            raise ValueError(
                f"{name}[{i}] must be strictly increasing with >= {min_points} points, got {g}"
            )
        out.append(g)
    return tuple(out)


def _check_mdp(mdp: object) -> GridMDP:
    if not isinstance(mdp, GridMDP):
        text = repr(mdp)
        text = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(
            "mdp must be a GridMDP (build it with discretise or discretise_lq), got "
            f"{type(mdp).__name__}: {text}"
        )
    return mdp


def gauss_hermite(cov: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for ``E[g(w)]``, ``w ~ N(0, cov)``.

    Exact for polynomials of degree ``<= 2 n_points - 1`` in each direction. Directions with
    zero variance get a single node, so a zero covariance gives the single node ``w = 0``.

    Parameters
    ----------
    cov : array_like, shape (n, n)
        Symmetric PSD covariance.
    n_points : int
        Nodes per (non-degenerate) direction, >= 1.

    Returns
    -------
    nodes : numpy.ndarray, shape (K, n)
    weights : numpy.ndarray, shape (K,)
        Positive, summing to one.
    """
    cov = check_psd("cov", cov)
    n_points = check_positive_int("n_points", n_points)
    lam, V = np.linalg.eigh(cov)
    keep = lam > 1e-14 * max(1.0, float(np.max(np.abs(lam))))
    n = cov.shape[0]
    if not np.any(keep):
        return np.zeros((1, n)), np.ones(1)
    xi, wi = np.polynomial.hermite_e.hermegauss(n_points)  # for the weight exp(-x^2 / 2)
    wi = wi / wi.sum()
    k = int(keep.sum())
    nodes_std = tensor_points([xi] * k)  # (n_points^k, k)
    weights = np.prod(tensor_points([wi] * k), axis=1)
    factor = V[:, keep] * np.sqrt(lam[keep])  # (n, k)
    return nodes_std @ factor.T, weights


def interpolation_matrix(
    grids: Sequence[np.ndarray], points: np.ndarray
) -> scipy.sparse.csr_matrix:
    """Multilinear interpolation weights from tensor-grid nodes to arbitrary points.

    Points outside the grid's box are clamped onto it (so every row is a convex combination of
    node values: non-negative weights summing to one).

    Parameters
    ----------
    grids : sequence of numpy.ndarray
        Increasing 1-D grids (each of length >= 2), one per dimension d.
    points : array_like, shape (N, d)

    Returns
    -------
    scipy.sparse.csr_matrix, shape (N, prod(len(g)))
        ``values_at_points = matrix @ values_at_nodes`` (nodes in :func:`tensor_points` order).
    """
    grids = _check_grids("grids", grids)
    d = len(grids)
    points = as_array("points", points, (None, d))
    shape = tuple(len(g) for g in grids)
    idx, frac = [], []
    for j, g in enumerate(grids):
        p = np.clip(points[:, j], g[0], g[-1])
        i = np.clip(np.searchsorted(g, p, side="right") - 1, 0, g.size - 2)
        idx.append(i)
        frac.append((p - g[i]) / (g[i + 1] - g[i]))
    N = points.shape[0]
    rows, cols, vals = [], [], []
    for corner in itertools.product((0, 1), repeat=d):
        w = np.ones(N)
        for j, c in enumerate(corner):
            w = w * (frac[j] if c else 1.0 - frac[j])
        flat = np.ravel_multi_index(tuple(idx[j] + c for j, c in enumerate(corner)), shape)
        rows.append(np.arange(N))
        cols.append(flat)
        vals.append(w)
    return scipy.sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(N, int(np.prod(shape))),
    )


def discretise(
    dynamics: Callable[[np.ndarray, np.ndarray], np.ndarray],
    reward: Callable[[np.ndarray, np.ndarray], np.ndarray],
    state_grids: Sequence[np.ndarray],
    action_grids: Sequence[np.ndarray],
    noise_cov: np.ndarray | None,
    gamma: float,
    n_quadrature: int = 5,
) -> GridMDP:
    """Build the grid MDP of ``x' = dynamics(x, u) + w``, ``w ~ N(0, noise_cov)``.

    Parameters
    ----------
    dynamics : callable
        ``dynamics(x, u)`` maps ``(N, n)`` states and ``(N, m)`` actions to ``(N, n)`` mean
        next states.
    reward : callable
        ``reward(x, u)`` maps them to ``(N,)`` rewards.
    state_grids, action_grids : sequence of numpy.ndarray
        Increasing 1-D grids per state and per action dimension (see :func:`grid`).
    noise_cov : array_like, shape (n, n), or None
        Process-noise covariance (``None``: deterministic).
    gamma : float
        Discount factor in (0, 1).
    n_quadrature : int, default 5
        Gauss-Hermite nodes per noise direction.

    Returns
    -------
    GridMDP
    """
    state_grids = _check_grids("state_grids", state_grids)
    action_grids = _check_grids("action_grids", action_grids, min_points=1)
    gamma = check_in_open_interval("gamma", gamma, 0.0, 1.0)
    n_quadrature = check_positive_int("n_quadrature", n_quadrature)
    states = tensor_points(state_grids)
    actions = tensor_points(action_grids)
    S, M, n = states.shape[0], actions.shape[0], states.shape[1]
    W = np.zeros((n, n)) if noise_cov is None else check_psd("noise_cov", noise_cov, n)
    nodes, weights = gauss_hermite(W, n_quadrature)

    X = np.repeat(states, M, axis=0)  # (S*M, n), row s*M + a
    U = np.tile(actions, (S, 1))  # (S*M, m)
    try:
        r = np.asarray(reward(X, U), dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"reward must return numeric rewards of shape ({S * M},): {exc}") from exc
    if r.shape != (S * M,):
        raise ValueError(f"reward must return shape ({S * M},), got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        bad = int(np.sum(~np.isfinite(r)))
        raise ValueError(
            f"reward must return finite values, got {bad} non-finite of {r.size} "
            f"(first at state {X[~np.isfinite(r)][0]}, action {U[~np.isfinite(r)][0]})"
        )
    mean_next = np.asarray(dynamics(X, U), dtype=float)
    if mean_next.shape != (S * M, n):
        raise ValueError(f"dynamics must return shape ({S * M}, {n}), got shape {mean_next.shape}")
    P = None
    for node, weight in zip(nodes, weights, strict=True):
        Pk = weight * interpolation_matrix(state_grids, mean_next + node)
        P = Pk if P is None else P + Pk
    P = scipy.sparse.csr_matrix(P)
    P.sum_duplicates()
    return GridMDP(state_grids, action_grids, states, actions, r.reshape(S, M), P, gamma)


def discretise_lq(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    state_grids: Sequence[np.ndarray],
    action_grids: Sequence[np.ndarray],
    noise_cov: np.ndarray | None,
    gamma: float,
    n_quadrature: int = 5,
) -> GridMDP:
    """:func:`discretise` for ``x' = A x + B u + w`` and ``r = -(x^T Q x + u^T R u)``.

    Shapes as in :mod:`lgutils.core.lqr`; the grids must have ``n`` and ``m`` entries.
    """
    A = as_matrix("A", A)
    n = A.shape[0]
    A = as_matrix("A", A, n, n)
    B = as_matrix("B", B, n, None)
    m = B.shape[1]
    Q = check_psd("Q", Q, n)
    R = check_psd("R", R, m)
    state_grids = _check_grids("state_grids", state_grids)
    action_grids = _check_grids("action_grids", action_grids, min_points=1)
    if len(state_grids) != n or len(action_grids) != m:
        raise ValueError(
            f"state_grids and action_grids must hold {n} and {m} grids, got {len(state_grids)} and "
            f"{len(action_grids)}"
        )

    def dynamics(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        return x @ A.T + u @ B.T

    def reward(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        return -(np.einsum("ni,ij,nj->n", x, Q, x) + np.einsum("ni,ij,nj->n", u, R, u))

    return discretise(dynamics, reward, state_grids, action_grids, noise_cov, gamma, n_quadrature)


def state_action_pairs(mdp: GridMDP) -> tuple[np.ndarray, np.ndarray]:
    """The state and action of every row ``s * M + a`` of a Q-table flattened in C order.

    Returns
    -------
    x : numpy.ndarray, shape (S * M, n)
    u : numpy.ndarray, shape (S * M, m)
    """
    S, M = mdp.rewards.shape
    return np.repeat(mdp.states, M, axis=0), np.tile(mdp.actions, (S, 1))


def _check_q(mdp: GridMDP, Q: np.ndarray, name: str = "Q") -> np.ndarray:
    return as_array(name, Q, mdp.rewards.shape)


def state_values(Q: np.ndarray) -> np.ndarray:
    """``V(s) = max_a Q(s, a)`` for a Q-table of shape ``(S, M)``; returns shape ``(S,)``."""
    Q = as_array("Q", Q, (None, None))
    return Q.max(axis=1)


def bellman_operator(mdp: GridMDP, Q: np.ndarray) -> np.ndarray:
    """Apply the Bellman optimality operator (eq. 6) to a Q-table.

    Parameters
    ----------
    mdp : GridMDP
    Q : array_like, shape (S, M)

    Returns
    -------
    numpy.ndarray, shape (S, M)
        ``r + gamma * P @ max_a Q``.
    """
    mdp = _check_mdp(mdp)
    Q = _check_q(mdp, Q)
    expected = mdp.transition @ Q.max(axis=1)
    return mdp.rewards + mdp.gamma * expected.reshape(mdp.rewards.shape)


def sup_norm(X: np.ndarray) -> float:
    """``max |X|`` over all entries."""
    X = as_array("X", X)
    if X.size == 0:
        raise ValueError(f"X must have at least one entry, got an empty array of shape {X.shape}")
    return float(np.max(np.abs(X)))


def value_iteration(
    mdp: GridMDP,
    n_iterations: int,
    Q0: np.ndarray | None = None,
    tol: float = 0.0,
    reference: np.ndarray | None = None,
) -> ValueIterationResult:
    """Iterate ``Q_{k+1} = T Q_k`` (eq. 7).

    Parameters
    ----------
    mdp : GridMDP
    n_iterations : int
        Maximum number of backups.
    Q0 : array_like, shape (S, M), optional
        Starting table (default zeros).
    tol : float, default 0
        Stop when ``||Q_{k+1} - Q_k||_inf <= tol``.
    reference : array_like, shape (S, M), optional
        If given, the sup-norm error to it is recorded at every iterate.

    Returns
    -------
    ValueIterationResult
    """
    mdp = _check_mdp(mdp)
    n_iterations = check_positive_int("n_iterations", n_iterations, 0)
    tol = check_in_open_interval("tol", tol, -np.inf, np.inf)
    if tol < 0.0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    Q = np.zeros(mdp.rewards.shape) if Q0 is None else _check_q(mdp, Q0, "Q0").copy()
    ref = None if reference is None else _check_q(mdp, reference, "reference")
    deltas, errors = [], [] if ref is not None else None
    if ref is not None:
        errors.append(sup_norm(Q - ref))
    for _ in range(n_iterations):
        Qn = bellman_operator(mdp, Q)
        deltas.append(sup_norm(Qn - Q))
        Q = Qn
        if ref is not None:
            errors.append(sup_norm(Q - ref))
        if deltas[-1] <= tol:
            break
    return ValueIterationResult(Q, np.array(deltas), None if errors is None else np.array(errors))


def greedy_policy(mdp: GridMDP, Q: np.ndarray, states: np.ndarray | None = None) -> np.ndarray:
    """Greedy actions (eq. 8): ``argmax_a Q(s, a)`` over the action grid.

    Parameters
    ----------
    mdp : GridMDP
    Q : array_like, shape (S, M)
    states : array_like, shape (N, n), optional
        Where to evaluate the policy; Q is interpolated (multilinear, clamped) in the state for
        every grid action. Default: the grid states.

    Returns
    -------
    numpy.ndarray, shape (N, m) (or (S, m))
    """
    mdp = _check_mdp(mdp)
    Q = _check_q(mdp, Q)
    if states is not None:
        states = as_array("states", states, (None, mdp.states.shape[1]))
        Q = interpolation_matrix(mdp.state_grids, states) @ Q
    return mdp.actions[np.argmax(Q, axis=1)]


def backup_cost(
    n_dims: int, points_per_dim: int, n_actions: int, n_quadrature: int = 2, noise_std: float = 0.1
) -> dict[str, float]:
    """Measure the cost of one Bellman backup on a d-dimensional linear-quadratic problem.

    The problem is ``x' = 0.9 x + (1/sqrt(d)) 1 u + w``, ``w ~ N(0, noise_std^2 I)``, on the
    box ``[-1, 1]^d`` with ``points_per_dim`` points per dimension and ``n_actions`` actions in
    ``[-1, 1]``.

    Returns
    -------
    dict
        ``n_states`` (grid states), ``n_entries`` (non-zeros of P), ``bytes`` (memory of P and the
        Q-table), ``peak_bytes`` (peak traced allocation while building), ``build_s`` (seconds
        to build P), ``backup_s`` (seconds for one application of T, best of three).
    """
    d = check_positive_int("n_dims", n_dims)
    N = check_positive_int("points_per_dim", points_per_dim, 2)
    M = check_positive_int("n_actions", n_actions, 2)
    A = 0.9 * np.eye(d)
    B = np.ones((d, 1)) / np.sqrt(d)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    mdp = discretise_lq(
        A,
        B,
        np.eye(d),
        np.eye(1),
        grid(-1.0, 1.0, [N] * d),
        grid(-1.0, 1.0, M),
        noise_std**2 * np.eye(d),
        0.9,
        n_quadrature,
    )
    build = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    if not was_tracing:
        tracemalloc.stop()
    Q = np.zeros(mdp.rewards.shape)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        bellman_operator(mdp, Q)
        times.append(time.perf_counter() - t0)
    P = mdp.transition
    return {
        "n_states": float(mdp.states.shape[0]),
        "n_entries": float(P.nnz),
        "bytes": float(
            P.data.nbytes + P.indices.nbytes + P.indptr.nbytes + Q.nbytes + mdp.rewards.nbytes
        ),
        "peak_bytes": float(peak),
        "build_s": build,
        "backup_s": min(times),
    }
