"""The receding-horizon loop of eq. (14): solve, apply ``u_0*``, measure, repeat.

:func:`closed_loop` is :func:`lgutils.core.rollout.rollout` with an MPC as the policy: it adds
what an MPC run needs to keep, the solver's statuses, failures and plans, and the constraint
violations of what the plant actually did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lgutils.core.rollout import rollout
from lgutils.core.validate import as_array, as_vector, check_positive_int
from lgutils.mpc.controller import MPC
from lgutils.mpc.results import MPCSolveError

__all__ = ["ClosedLoop", "closed_loop"]

_ON_FAILURE = ("raise", "record")


@dataclass(frozen=True)
class ClosedLoop:
    """A closed-loop run of an MPC on a plant (see :func:`closed_loop`).

    Attributes
    ----------
    states : numpy.ndarray, shape (T + 1, nx)
        ``s_0, ..., s_T``.
    actions : numpy.ndarray, shape (T, nu)
        The applied actions (the MPC's ``u_0*`` plus the exploration noise, clipped to the
        input bounds; after a failed solve with ``on_failure="record"``, the fallback input).
    values : numpy.ndarray, shape (T,)
        ``V^MPC(s_t)``, the optimal cost of each solve (NaN where the solve failed).
    plans : numpy.ndarray, shape (T, H + 1, nx)
        The predicted state trajectory of each solve (NaN where the solve failed).
    solve_times : numpy.ndarray, shape (T,)
        Wall-clock seconds per solve (NaN where the solve failed).
    iterations : numpy.ndarray of int, shape (T,)
        IPOPT iterations (also of the failed solves).
    success : numpy.ndarray of bool, shape (T,)
        Whether each solve succeeded.
    statuses : tuple of str, length T
        IPOPT's return status of each solve (or the status of its :class:`MPCSolveError`).
    failures : tuple of MPCSolveError
        The failed solves, in time order; ``failure.index`` is the step ``t``, and each carries
        the status, the state and the parameters.
    violations : numpy.ndarray, shape (T + 1,)
        The largest violation of the MPC's hard path constraints by the plant
        (:meth:`MPC.constraint_violation`): by ``(s_t, a_t)`` for ``t < T``, by the state
        bounds alone for ``s_T``; 0 where every constraint holds.
    """

    states: np.ndarray
    actions: np.ndarray
    values: np.ndarray
    plans: np.ndarray
    solve_times: np.ndarray
    iterations: np.ndarray
    success: np.ndarray | None = None
    statuses: tuple[str, ...] = ()
    failures: tuple[MPCSolveError, ...] = ()
    violations: np.ndarray | None = None

    @property
    def n_failures(self) -> int:
        """Number of failed solves."""
        return len(self.failures)

    @property
    def max_violation(self) -> float:
        """The largest constraint violation over the run (0 if none, or not measured)."""
        return 0.0 if self.violations is None else float(np.max(self.violations, initial=0.0))


class _Recorder:
    """The MPC as a rollout policy, keeping each solve's outcome (and a fallback input)."""

    def __init__(self, mpc: MPC, T: int, phiv, noise, u_prev, warm_start, on_failure) -> None:
        H = mpc.horizon
        self.mpc, self.phiv, self.noise = mpc, phiv, noise
        self.up, self.warm_start, self.on_failure = u_prev, warm_start, on_failure
        self.values = np.full(T, np.nan)
        self.plans = np.full((T, H + 1, mpc.nx), np.nan)
        self.times = np.full(T, np.nan)
        self.iters = np.zeros(T, dtype=int)
        self.success = np.zeros(T, dtype=bool)
        self.statuses: list[str] = []
        self.failures: list[MPCSolveError] = []
        self.plan_u = np.tile(np.clip(0.0, mpc.u_lb, mpc.u_ub), (1, 1))  # before any success
        self.age = 0

    def __call__(self, x: np.ndarray, t: int) -> np.ndarray:
        try:
            res = self.mpc.policy(x, self.phiv, u_prev=self.up, warm_start=self.warm_start)
        except MPCSolveError as exc:
            exc.index = t
            if self.on_failure == "raise":
                raise
            self.failures.append(exc)
            self.statuses.append(exc.status)
            self.iters[t] = exc.iterations
            self.age += 1
            u = self.plan_u[min(self.age, len(self.plan_u) - 1)]
        else:
            self.success[t] = True
            self.statuses.append(res.status)
            self.values[t], self.plans[t] = res.value, res.x_pred
            self.times[t], self.iters[t] = res.solve_time, res.iterations
            self.plan_u, self.age = res.u_pred, 0
            u = res.action
        return u + self.noise[t]


def closed_loop(
    mpc: MPC,
    plant: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x0: Any,
    steps: int,
    phi: Any = None,
    *,
    noise: Any = None,
    u_prev: Any = None,
    warm_start: bool | None = None,
    shift: bool = True,
    on_failure: str = "raise",
) -> ClosedLoop:
    """Run the receding-horizon loop of eq. (14): solve, apply ``u_0*``, measure, repeat.

    The run starts cold (:meth:`MPC.reset_warm_start`), so the same arguments give the same
    numbers whatever the MPC solved before.

    Parameters
    ----------
    mpc : MPC
    plant : callable
        ``plant(x, u) -> x_next`` on numpy arrays (shapes (nx,), (nu,) -> (nx,)): the true
        system, which may differ from the MPC's model. Seed any noise it draws.
    x0 : array_like, shape (nx,)
        Initial state.
    steps : int
        Number of steps T.
    phi : dict or array_like, optional
        The MPC's parameters.
    noise : array_like, shape (T, nu), optional
        Exploration noise added to each action (then clipped to the input bounds).
    u_prev : array_like, shape (nu,), optional
        Input applied before ``t = 0`` (required when the MPC uses it); afterwards the
        previously applied action is passed.
    warm_start : bool, optional
        Override the MPC's warm-start choice.
    shift : bool
        Shift the stored solution one stage after each step (:meth:`MPC.shift_warm_start`),
        so that the next solve starts from the tail of the current plan.
    on_failure : {"raise", "record"}
        ``"raise"``: a failed solve raises :class:`MPCSolveError` (its ``index`` is the step)
        and the run stops there.
        ``"record"``: the failure is kept in the result (``success``, ``statuses``,
        ``failures``) and the run continues with a fallback input: the input that the last
        successful plan scheduled for this step (its last input once the plan is used up),
        or ``u = 0`` clipped to the bounds before any success; the exploration noise is added
        to it as to any action.

    Returns
    -------
    ClosedLoop
        With the solver statuses, the failures and the constraint violations of the run.

    Raises
    ------
    MPCSolveError
        If a solve fails and ``on_failure="raise"``.
    ValueError
        Wrong arguments, or a plant that returns a wrongly shaped or non-finite state.
    """
    if not isinstance(mpc, MPC):
        raise ValueError(f"mpc must be an MPC, got {type(mpc).__name__}")
    if not callable(plant):
        raise ValueError(f"plant must be callable, got {type(plant).__name__}")
    if on_failure not in _ON_FAILURE:
        raise ValueError(f"on_failure must be one of {_ON_FAILURE}, got {on_failure!r}")
    x = as_vector("x0", x0, mpc.nx)
    T = check_positive_int("steps", steps)
    E = np.zeros((T, mpc.nu)) if noise is None else as_array("noise", noise, (T, mpc.nu))
    up = None if u_prev is None else as_vector("u_prev", u_prev, mpc.nu)
    phiv = mpc.phi_vector(phi)
    violations = np.zeros(T + 1)
    mpc.reset_warm_start()
    policy = _Recorder(mpc, T, phiv, E, up, warm_start, on_failure)

    def step(x: np.ndarray, a: np.ndarray, t: int) -> np.ndarray:
        violations[t] = mpc.constraint_violation(x, a, phiv, u_prev=policy.up)
        x_next = as_vector("plant(x, u)", plant(x, a), mpc.nx)
        policy.up = a if mpc.use_u_prev else None
        if shift:
            mpc.shift_warm_start()
        return x_next

    run = rollout(policy, step, x, T, clip=lambda u: np.clip(u, mpc.u_lb, mpc.u_ub))
    violations[T] = mpc.constraint_violation(run.states[-1])
    return ClosedLoop(
        run.states,
        run.actions,
        policy.values,
        policy.plans,
        policy.times,
        policy.iters,
        success=policy.success,
        statuses=tuple(policy.statuses),
        failures=tuple(policy.failures),
        violations=violations,
    )
