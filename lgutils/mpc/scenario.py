"""Robust multi-stage (scenario-tree) MPC with robust horizon 1, built on :class:`lgutils.mpc.MPC`.

Multi-stage MPC (Fiedler et al., 2023, paper ref. [52]) represents parametric uncertainty by a
tree of scenarios: at the root the plan branches once into ``S`` scenarios, one per value
``theta_i`` of the uncertain parameters (robust horizon 1); each branch then keeps its value
until the end of the horizon. The first input is *non-anticipative*: it is the same in every
branch, since it is applied before the uncertainty reveals itself; later inputs may differ
per branch (recourse). The problem is

.. math::

    \\min\\ \\sum_{i=1}^S w_i \\Big[ \\sum_{k=0}^{H-1} \\ell(x^i_k, u^i_k)
    + V(x^i_H) + \\sum_{k=0}^{H-1} \\|u^i_k - u^i_{k-1}\\|^2_R \\Big]
    + \\rho \\sum_{i, k} \\sigma^i_k

subject to ``x^i_0 = s``, ``x^i_{k+1} = F(x^i_k, u^i_k; theta_i)``, bounds,
``h(x^i_k) <= sigma^i_k`` (soft), ``sigma >= 0`` and ``u^i_0 = u^1_0``.

:class:`ScenarioMPC` builds it as *one* :class:`lgutils.mpc.MPC` on the stacked state
``(x^1, ..., x^S)`` and stacked input ``(u^1, ..., u^S)``; the non-anticipativity constraint is a
stage-dependent equality constraint that exists only at ``k = 0``. Variables are scaled
(``x / x_scale``, ``u / u_scale``) as in do-mpc, which also scales its move penalty; callables
see physical units. The slack penalty is summed (not averaged) over the scenarios and acts on
``x_1, ..., x_{H-1}`` (and on ``x_H`` with ``soft_terminal=True``), as do-mpc's soft
constraints do on the states at the start of each finite element (``x_0`` is data).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import casadi as ca
import numpy as np

from lgutils.core.validate import as_array, as_vector, check_positive_int
from lgutils.mpc import MPC, MPCResult

__all__ = ["ScenarioMPC", "ScenarioResult", "scenario_grid"]


def scenario_grid(*values: Any) -> np.ndarray:
    """All combinations of the given parameter values, first parameter varying slowest.

    ``scenario_grid([1, 1.05, 0.95], [1, 1.1, 0.9])`` gives the 9 rows ``(alpha, beta)``.

    Returns
    -------
    numpy.ndarray, shape (prod of lengths, number of parameters)
    """
    if not values:
        raise ValueError("values must hold at least one list of parameter values")
    vecs = [as_vector(f"values[{i}]", v) for i, v in enumerate(values)]
    mesh = np.meshgrid(*vecs, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


@dataclass(frozen=True)
class ScenarioResult:
    """One solve of a :class:`ScenarioMPC`.

    Attributes
    ----------
    action : numpy.ndarray, shape (nu,)
        The non-anticipative first input, physical units.
    value : float
        The optimal cost.
    x_pred : numpy.ndarray, shape (S, H + 1, nx)
        Predicted states per scenario, physical units.
    u_pred : numpy.ndarray, shape (S, H, nu)
        Planned inputs per scenario, physical units.
    slack : numpy.ndarray
        Slack values of the soft constraints (physical units), stage by stage, scenario by
        scenario.
    status : str
    iterations : int
    solve_time : float
        Seconds of the IPOPT call.
    """

    action: np.ndarray
    value: float
    x_pred: np.ndarray
    u_pred: np.ndarray
    slack: np.ndarray
    status: str
    iterations: int
    solve_time: float


class ScenarioMPC:
    """Robust multi-stage MPC, robust horizon 1, on :class:`lgutils.mpc.MPC`.

    Parameters
    ----------
    nx, nu : int
        State and input dimensions of one scenario.
    horizon : int
        Prediction horizon ``H``.
    dynamics : callable
        ``dynamics(x, u, theta) -> dx/dt`` (CasADi, shape (nx, 1)), with ``x``, ``u`` in
        physical units and ``theta`` a numpy vector of the scenario's parameter values.
    scenarios : array_like, shape (S, n_theta)
        One row of parameter values per scenario (see :func:`scenario_grid`).
    stage_cost : callable
        ``stage_cost(x, u, p) -> scalar`` for one scenario (physical units; ``p`` is a dict of
        the declared ``params`` as CasADi symbols).
    terminal_cost : callable, optional
        ``terminal_cost(x, p) -> scalar`` for one scenario.
    weights : array_like, shape (S,), optional
        Scenario weights (default equal, ``1 / S``).
    params : dict, optional
        Name -> shape of the run-time parameters (e.g. the set-point ``{"g": ()}``).
    default_phi : dict, optional
        Their default values.
    x_lb, x_ub : array_like, shape (nx,), optional
        Hard state bounds on ``x_1..x_H`` (physical units).
    u_lb, u_ub : array_like, shape (nu,)
        Hard input bounds (physical units).
    soft_ub : array_like, shape (nx,), optional
        Soft upper bounds of the states (``inf`` where none), penalised linearly.
    soft_penalty : float or array_like, shape (n_soft,)
        Linear penalty per unit of violation in physical units (one per softened state, in
        the order of the states), applied to every scenario (summed, not averaged).
    terminal_bounds : bool
        Impose the hard state bounds on ``x_H`` too (default). With False they hold on
        ``x_1..x_{H-1}`` only, as in do-mpc (whose ``use_terminal_bounds`` defaults to False);
        either way they are bounds of the decision variables, not constraint rows.
    soft_terminal : bool
        Also soften-constrain ``x_H``.
    move_weight : array_like, shape (nu,), optional
        Move penalty ``R`` on *scaled* inputs ``(u_k - u_{k-1}) / u_scale`` (do-mpc's rterm).
    dt : float
        Sampling time (units of ``dynamics``' time).
    integrator : {"collocation", "rk4"}
    degree : int
        Radau collocation degree (do-mpc: 2).
    substeps : int
        RK4 sub-steps.
    x_scale, u_scale : array_like, optional
        Variable scaling (default ones).
    ipopt_options, warm_ipopt_options : dict, optional
        Passed to :class:`lgutils.mpc.MPC` (the second for warm-started solves).
    expand : bool
        Expand the whole NLP to CasADi SX before handing it to IPOPT (fast for scalar models).
        Use False when ``terminal_cost`` holds large matrix operations (a neural network built
        from MX, see :func:`lgutils.core.nn.value_function`): the dynamics and stage costs are SX
        functions in any case, and the network's derivatives stay matrix-level instead of being
        expanded into millions of scalar nodes.
    """

    def __init__(
        self,
        nx: int,
        nu: int,
        horizon: int,
        dynamics: Callable,
        scenarios: Any,
        stage_cost: Callable,
        terminal_cost: Callable | None = None,
        *,
        weights: Any = None,
        params: Mapping[str, Any] | None = None,
        default_phi: Mapping[str, Any] | None = None,
        x_lb: Any = None,
        x_ub: Any = None,
        u_lb: Any = None,
        u_ub: Any = None,
        soft_ub: Any = None,
        soft_penalty: Any = 0.0,
        soft_terminal: bool = False,
        terminal_bounds: bool = True,
        move_weight: Any = None,
        dt: float = 1.0,
        integrator: str = "collocation",
        degree: int = 2,
        substeps: int = 1,
        x_scale: Any = None,
        u_scale: Any = None,
        ipopt_options: Mapping[str, Any] | None = None,
        warm_ipopt_options: Mapping[str, Any] | None = None,
        expand: bool = True,
    ) -> None:
        self.nx = nx = check_positive_int("nx", nx)
        self.nu = nu = check_positive_int("nu", nu)
        self.horizon = check_positive_int("horizon", horizon)
        th = as_array("scenarios", scenarios)
        if th.ndim == 1:
            th = th[:, None]
        if th.ndim != 2 or th.shape[0] < 1:
            raise ValueError(f"scenarios must have shape (S, n_theta), got shape {th.shape}")
        self.scenarios = th
        self.n_scenarios = S = th.shape[0]
        w = np.full(S, 1.0 / S) if weights is None else as_vector("weights", weights, S)
        if np.any(w < 0) or not np.isclose(w.sum(), 1.0):
            raise ValueError(f"weights must be non-negative and sum to 1, got {w}")
        self.weights = w
        for name, fn in [("dynamics", dynamics), ("stage_cost", stage_cost)]:
            if not callable(fn):
                raise ValueError(f"{name} must be callable, got {type(fn).__name__}")
        if terminal_cost is not None and not callable(terminal_cost):
            raise ValueError(
                f"terminal_cost must be callable or None, got {type(terminal_cost).__name__}"
            )
        self.x_scale = np.ones(nx) if x_scale is None else as_vector("x_scale", x_scale, nx)
        self.u_scale = np.ones(nu) if u_scale is None else as_vector("u_scale", u_scale, nu)
        if np.any(self.x_scale <= 0) or np.any(self.u_scale <= 0):
            raise ValueError("x_scale and u_scale must be positive")

        def vec(name: str, v: Any, n: int, fill: float) -> np.ndarray:
            if v is None:
                return np.full(n, fill)
            arr = np.atleast_1d(np.asarray(v, dtype=float))
            if arr.shape != (n,) or np.any(np.isnan(arr)):
                raise ValueError(f"{name} must have shape ({n},) without NaN, got {v!r}")
            return arr

        self.x_lb = vec("x_lb", x_lb, nx, -np.inf)
        self.x_ub = vec("x_ub", x_ub, nx, np.inf)
        self.u_lb = vec("u_lb", u_lb, nu, -np.inf)
        self.u_ub = vec("u_ub", u_ub, nu, np.inf)
        self.soft_ub = vec("soft_ub", soft_ub, nx, np.inf)
        soft_idx = np.flatnonzero(np.isfinite(self.soft_ub))
        self._soft_idx = soft_idx
        self.soft_terminal = bool(soft_terminal)
        xs, us = self.x_scale, self.u_scale

        def split(X, n):
            return [X[i * n : (i + 1) * n] for i in range(S)]

        # each scenario's dynamics and the stage cost as SX functions (scaled variables), so
        # that the NLP graph calls small compiled-in-memory SX graphs even when not expanded
        pnames = list((params or {}).keys())
        psyms = {}
        for name in pnames:
            shp = (
                tuple(np.atleast_1d(params[name]))
                if not isinstance(params[name], tuple)
                else params[name]
            )
            shp = tuple(int(v) for v in shp)
            rows_, cols_ = (1, 1) if len(shp) == 0 else ((shp[0], 1) if len(shp) == 1 else shp)
            psyms[name] = ca.SX.sym(name, rows_, cols_)
        xsx, usx = ca.SX.sym("x", nx), ca.SX.sym("u", nu)
        dyn_fns = [
            ca.Function(
                f"dyn_{i}",
                [xsx, usx],
                [ca.vec(dynamics(xsx * ca.DM(xs), usx * ca.DM(us), th[i])) / ca.DM(xs)],
            )
            for i in range(S)
        ]
        stage_fn = ca.Function(
            "stage",
            [xsx, usx, *psyms.values()],
            [stage_cost(xsx * ca.DM(xs), usx * ca.DM(us), psyms)],
        )

        def dyn(X, U, p):
            return ca.vertcat(
                *[
                    dyn_fns[i](xi, ui)
                    for i, (xi, ui) in enumerate(zip(split(X, nx), split(U, nu), strict=True))
                ]
            )

        def stage(X, U, p):
            pv = [p[n] for n in pnames]
            return sum(
                float(w[i]) * stage_fn(xi, ui, *pv)
                for i, (xi, ui) in enumerate(zip(split(X, nx), split(U, nu), strict=True))
            )

        term = None
        if terminal_cost is not None:

            def term(X, p):
                return sum(
                    float(w[i]) * terminal_cost(xi * ca.DM(xs), p)
                    for i, xi in enumerate(split(X, nx))
                )

        def nonanticipative(X, U, p, k):
            if k != 0 or S == 1:
                return ca.MX(0, 1)
            U0 = split(U, nu)
            return ca.vertcat(*[U0[i] - U0[0] for i in range(1, S)])

        soft = t_soft = None
        n_soft = soft_idx.size
        if n_soft:
            ub_s = ca.DM(self.soft_ub[soft_idx])
            sc = ca.DM(xs[soft_idx])

            def rows(X):  # violations in physical units, scenario by scenario
                return ca.vertcat(*[xi[soft_idx.tolist()] * sc - ub_s for xi in split(X, nx)])

            def soft(X, U, p, k):
                return ca.MX(0, 1) if k == 0 else rows(X)  # x_0 is data

            if self.soft_terminal:

                def t_soft(X, p):
                    return rows(X)

        mw = None
        if move_weight is not None:
            r = as_vector("move_weight", move_weight, nu)
            mw = np.kron(np.diag(w), np.diag(r))
        self._has_u_prev = mw is not None
        self.mpc = MPC(
            S * nx,
            S * nu,
            self.horizon,
            dyn,
            stage,
            term,
            params=params,
            default_phi=default_phi,
            eq_constraints=nonanticipative,
            soft_constraints=soft,
            terminal_soft_constraints=t_soft,
            soft_linear=np.tile(self._soft_penalty(soft_penalty, n_soft), S) if n_soft else 0.0,
            u_lb=np.tile(self.u_lb / us, S),
            u_ub=np.tile(self.u_ub / us, S),
            x_lb=np.tile(self.x_lb / xs, S),
            x_ub=np.tile(self.x_ub / xs, S),
            terminal_state_bounds=terminal_bounds,
            dt=dt,
            integrator=integrator,
            degree=degree,
            substeps=substeps,
            move_weight=mw,
            warm_start=True,
            initial_guess={"u": np.tile(self._u_guess() / us, S)},
            ipopt_options=ipopt_options,
            warm_ipopt_options=warm_ipopt_options,
            solver_options={"expand": bool(expand)},
        )

    def _u_guess(self) -> np.ndarray:
        """Cold-start input: the middle of finite bounds, else 0 clipped to the bounds."""
        both = np.isfinite(self.u_lb) & np.isfinite(self.u_ub)
        mid = np.where(
            both, 0.5 * (np.where(both, self.u_lb, 0) + np.where(both, self.u_ub, 0)), 0.0
        )
        return np.clip(mid, self.u_lb, self.u_ub)

    @staticmethod
    def _soft_penalty(value: Any, n: int) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(value, dtype=float))
        if arr.size == 1:
            arr = np.full(n, float(arr[0]))
        if arr.shape != (n,) or np.any(~np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(
                f"soft_penalty must be a non-negative scalar or have shape ({n},), got {value!r}"
            )
        return arr

    @property
    def uses_u_prev(self) -> bool:
        """Whether :meth:`policy` needs the previously applied input (a move penalty is set)."""
        return self._has_u_prev

    def _result(self, res: MPCResult) -> ScenarioResult:
        S, nx, nu, H = self.n_scenarios, self.nx, self.nu, self.horizon
        xp = res.x_pred.reshape(H + 1, S, nx).transpose(1, 0, 2) * self.x_scale
        up = res.u_pred.reshape(H, S, nu).transpose(1, 0, 2) * self.u_scale
        return ScenarioResult(
            action=up[0, 0].copy(),
            value=res.value,
            x_pred=xp,
            u_pred=up,
            slack=res.slack,
            status=res.status,
            iterations=res.iterations,
            solve_time=res.solve_time,
        )

    def policy(self, x: Any, phi: Any = None, u_prev: Any = None) -> ScenarioResult:
        """Solve at state ``x`` (physical units, shape (nx,)) and return the first input.

        Parameters
        ----------
        x : array_like, shape (nx,)
        phi : dict, optional
            Values of the run-time parameters (e.g. ``{"g": 0.65}``).
        u_prev : array_like, shape (nu,), optional
            The input applied at the previous step (required with a move penalty).

        Raises
        ------
        lgutils.mpc.MPCSolveError
            If IPOPT fails.
        """
        x = as_vector("x", x, self.nx)
        s = np.tile(x / self.x_scale, self.n_scenarios)
        up = None
        if self._has_u_prev:
            if u_prev is None:
                raise ValueError(
                    f"u_prev of shape ({self.nu},) is required: this MPC penalises input moves"
                )
            up = np.tile(as_vector("u_prev", u_prev, self.nu) / self.u_scale, self.n_scenarios)
        return self._result(self.mpc.policy(s, phi, u_prev=up))

    def shift_warm_start(self) -> None:
        """Shift the stored solution one stage (call after each closed-loop step)."""
        self.mpc.shift_warm_start()

    def reset_warm_start(self) -> None:
        """Forget the stored solution: the next solve starts cold."""
        self.mpc.reset_warm_start()
