"""The one closed loop of the book: ``u_t = policy(x_t, t)``, ``x_{t+1} = step(x_t, u_t, t)``.

Every simulation in the book is this loop with a different policy and plant: an LQR gain on the
linear-quadratic environment (many episodes at once), an MPC or a neural network on the CSTR,
the MPC of case study B with its exploration noise. :func:`rollout` runs it once, checks what the
policy and the plant return, and records the states, the applied actions and the time of every
policy call; what is particular to a chapter (rewards, solver statuses, gradients) is computed
by its policy or plant callables or from the returned arrays.

Batches: the state may carry leading batch dimensions, ``x_0`` of shape ``(*batch, n)``; the
policy and the plant then work on the whole batch at once, and the recorded arrays have shape
``(*batch, T + 1, n)`` and ``(*batch, T, m)`` (time on the second-to-last axis).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lgutils.core.validate import as_array, check_positive_int

__all__ = ["Rollout", "rollout"]


@dataclass(frozen=True)
class Rollout:
    """One closed-loop run (or a batch of runs) of :func:`rollout`.

    Attributes
    ----------
    states : numpy.ndarray, shape (*batch, T + 1, n)
        ``x_0, ..., x_T``.
    actions : numpy.ndarray, shape (*batch, T, m)
        The applied actions ``u_t`` (after ``clip``).
    raw_actions : numpy.ndarray, shape (*batch, T, m)
        What the policy returned, before ``clip`` (the same array as ``actions`` without it).
    policy_times : numpy.ndarray, shape (T,)
        Wall-clock seconds of each policy call.
    """

    states: np.ndarray
    actions: np.ndarray
    raw_actions: np.ndarray
    policy_times: np.ndarray


def _checked(name: str, value: Any, shape: tuple[int, ...] | None, t: int) -> np.ndarray:
    """``value`` as a float array of ``shape``, finite; the error names ``name`` and the step."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must return numeric values of shape {shape}, got {type(value).__name__} "
            f"at step t={t}"
        ) from exc
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must return shape {shape}, got shape {arr.shape} at step t={t}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(
            f"{name} must return finite values, but its output at step t={t} holds {bad} NaN or "
            f"infinite entries of {arr.size} (a diverging closed loop or a bad {name})"
        )
    return arr


def rollout(
    policy: Callable[[np.ndarray, int], Any],
    step: Callable[[np.ndarray, np.ndarray, int], Any],
    x0: Any,
    steps: int,
    *,
    action_shape: Sequence[int] | None = None,
    clip: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool | str = False,
) -> Rollout:
    """Run ``steps`` steps of the closed loop ``x_{t+1} = step(x_t, clip(policy(x_t, t)), t)``.

    Parameters
    ----------
    policy : callable
        ``policy(x, t) -> u``, ``x`` of shape ``(*batch, n)``.
    step : callable
        ``step(x, u, t) -> x_next``, the plant (seed any noise it draws).
    x0 : array_like, shape (*batch, n)
        Initial state(s).
    steps : int
        Number of steps T >= 1.
    action_shape : sequence of int, optional
        The shape every action must have (default: the shape of the first action).
    clip : callable, optional
        ``clip(u) -> u_applied``, e.g. the actuator's bounds.
    progress : bool or str
        Show a progress bar over the steps (a string is its label).

    Returns
    -------
    Rollout

    Raises
    ------
    ValueError
        When the policy or the plant returns a wrongly shaped or non-finite value; the message
        names which one and the step.
    """
    if not callable(policy):
        raise ValueError(f"policy must be callable policy(x, t) -> u, got {type(policy).__name__}")
    if not callable(step):
        raise ValueError(
            f"step must be callable step(x, u, t) -> x_next, got {type(step).__name__}"
        )
    T = check_positive_int("steps", steps)
    x = as_array("x0", x0)
    if x.ndim == 0:
        raise ValueError(f"x0 must have shape (*batch, n), got a scalar {x0!r}")
    shape_u = None if action_shape is None else tuple(int(s) for s in action_shape)
    ticks: Any = range(T)
    if progress:
        from tqdm import tqdm

        ticks = tqdm(ticks, desc=progress if isinstance(progress, str) else "rollout", leave=False)
    xs, us, raw, times = [x], [], [], np.empty(T)
    for t in ticks:
        t0 = time.perf_counter()
        out = policy(x, t)
        times[t] = time.perf_counter() - t0
        u = _checked("policy", out, shape_u, t)
        shape_u = u.shape
        raw.append(u)
        u = u if clip is None else np.asarray(clip(u), dtype=float)
        us.append(u)
        x = _checked("step", step(x, u, t), xs[0].shape, t)
        xs.append(x)
    return Rollout(np.stack(xs, axis=-2), np.stack(us, axis=-2), np.stack(raw, axis=-2), times)
