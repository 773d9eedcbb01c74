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
``x_1, ..., x_{H-1}`` (and on ``x_H`` with ``SoftBounds(terminal=True)``), as do-mpc's soft
constraints do on the states at the start of each finite element (``x_0`` is data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import casadi as ca
import numpy as np

from lgutils.core.validate import as_array, as_vector, check_positive_int
from lgutils.mpc.controller import MPC
from lgutils.mpc.options import Bounds, Constraints, Cost, Model, Params, SolverOptions
from lgutils.mpc.results import MPCResult
from lgutils.mpc.symbols import gradient_and_hessian

__all__ = [
    "ScenarioMPC",
    "ScenarioResult",
    "ScenarioTree",
    "SoftBounds",
    "Scaling",
    "scenario_grid",
]


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


def _vector(name: str, v: Any, n: int, fill: float) -> np.ndarray:
    if v is None:
        return np.full(n, fill)
    arr = np.atleast_1d(np.asarray(v, dtype=float))
    if arr.shape != (n,) or np.any(np.isnan(arr)):
        raise ValueError(f"{name} must have shape ({n},) without NaN, got {v!r}")
    return arr


def _stacked_functions(smpc: Any, model: Model, cost: Cost, params: Params):
    """The stacked scenarios' stage cost, dynamics and terminal cost, on scaled variables.

    Each scenario's dynamics and the stage cost are SX functions, so that the NLP graph calls
    small SX graphs even when it is not expanded.
    """
    nx, nu, S, w = smpc.nx, smpc.nu, smpc.n_scenarios, smpc.weights
    xs, us, th = smpc.x_scale, smpc.u_scale, smpc.scenarios
    pnames = list(params.shapes)
    psyms = {}
    for name, shp in params.shapes.items():
        rows_, cols_ = (1, 1) if len(shp) == 0 else ((shp[0], 1) if len(shp) == 1 else shp)
        psyms[name] = ca.SX.sym(name, rows_, cols_)
    xsx, usx = ca.SX.sym("x", nx), ca.SX.sym("u", nu)
    dynamics = model.dynamics
    dyn_fns = [
        ca.Function(
            f"dyn_{i}",
            [xsx, usx],
            [ca.vec(dynamics(xsx * ca.DM(xs), usx * ca.DM(us), th[i])) / ca.DM(xs)],
        )
        for i in range(S)
    ]
    stage_fn = ca.Function(
        "stage", [xsx, usx, *psyms.values()], [cost.stage(xsx * ca.DM(xs), usx * ca.DM(us), psyms)]
    )
    split = smpc._split

    def dyn(X, U, p):
        pairs = zip(split(X, nx), split(U, nu), strict=True)
        return ca.vertcat(*[dyn_fns[i](xi, ui) for i, (xi, ui) in enumerate(pairs)])

    def stage(X, U, p):
        pv = [p[n] for n in pnames]
        pairs = zip(split(X, nx), split(U, nu), strict=True)
        return sum(float(w[i]) * stage_fn(xi, ui, *pv) for i, (xi, ui) in enumerate(pairs))

    term = term_derivatives = None
    if cost.terminal is not None:

        def term(X, p):
            parts = split(X, nx)
            return sum(float(w[i]) * cost.terminal(xi * ca.DM(xs), p) for i, xi in enumerate(parts))

    if cost.terminal_derivatives is not None:

        def term_derivatives(X, p):
            # the scenarios' terminal costs are separate: a stacked gradient, a block-diagonal
            # Hessian, both in the scaled variables
            grads, hessians = [], []
            D = ca.DM(np.diag(xs))
            for i, xi in enumerate(split(X, nx)):
                g_i, H_i = gradient_and_hessian(
                    "terminal_derivatives", cost.terminal_derivatives(xi * ca.DM(xs), p), nx
                )
                grads.append(float(w[i]) * (D @ g_i))
                hessians.append(float(w[i]) * (D @ H_i @ D))
            return ca.vertcat(*grads), ca.diagcat(*hessians)

    return stage, dyn, term, term_derivatives


@dataclass(frozen=True)
class ScenarioTree:
    """The scenarios of a robust-horizon-1 tree: one row of parameter values each, and weights.

    Parameters
    ----------
    values : array_like, shape (S, n_theta) or (S,)
        One row of parameter values ``theta_i`` per scenario (see :func:`scenario_grid`).
    weights : array_like, shape (S,), optional
        Scenario weights, non-negative, summing to 1 (default equal, ``1 / S``).
    """

    values: Any
    weights: Any = None

    def __post_init__(self) -> None:
        th = as_array("scenarios", self.values)
        if th.ndim == 1:
            th = th[:, None]
        if th.ndim != 2 or th.shape[0] < 1:
            raise ValueError(f"scenarios must have shape (S, n_theta), got shape {th.shape}")
        S = th.shape[0]
        w = np.full(S, 1.0 / S) if self.weights is None else as_vector("weights", self.weights, S)
        if np.any(w < 0) or not np.isclose(w.sum(), 1.0):
            raise ValueError(f"weights must be non-negative and sum to 1, got {w}")
        object.__setattr__(self, "values", th)
        object.__setattr__(self, "weights", w)


@dataclass(frozen=True)
class SoftBounds:
    """Soft upper bounds of the states, penalised linearly per unit of violation.

    Parameters
    ----------
    ub : array_like, shape (nx,)
        Soft upper bounds (``inf`` where none), physical units.
    penalty : float or array_like, shape (n_soft,)
        Linear penalty per unit of violation in physical units (one per softened state, in the
        order of the states), applied to every scenario (summed, not averaged).
    terminal : bool
        Also soften-constrain ``x_H``.
    """

    ub: Any = None
    penalty: Any = 0.0
    terminal: bool = False


@dataclass(frozen=True)
class Scaling:
    """Variable scaling of the NLP (do-mpc's): the solver sees ``x / x`` and ``u / u``.

    Parameters
    ----------
    x : array_like, shape (nx,), optional
    u : array_like, shape (nu,), optional
        Positive scales (default ones).
    """

    x: Any = None
    u: Any = None


class ScenarioMPC:
    """Robust multi-stage MPC, robust horizon 1, on :class:`lgutils.mpc.MPC`.

    Parameters
    ----------
    model : Model
        One scenario's model: ``dynamics(x, u, theta) -> dx/dt`` (or the next state with
        ``integrator="discrete"``), with ``x``, ``u`` in physical units and ``theta`` a numpy
        vector of the scenario's parameter values.
    cost : Cost
        One scenario's ``stage(x, u, p)`` and ``terminal(x, p)`` (physical units; ``p`` a dict of
        the declared ``params`` as CasADi symbols), and the move penalty ``move_weight``, shape
        (nu,), on *scaled* inputs ``(u_k - u_{k-1}) / u_scale`` (do-mpc's rterm).
    horizon : int
        Prediction horizon ``H``.
    tree : ScenarioTree
        The scenarios and their weights.
    params : Params or dict, optional
        The run-time parameters (e.g. the set-point ``Params({"g": ()}, default={"g": 0.6})``).
    bounds : Bounds, optional
        Hard input bounds and hard state bounds on ``x_1..x_H`` (``x_1..x_{H-1}`` with
        ``terminal=False``, as in do-mpc), physical units; bounds of the decision variables.
    soft : SoftBounds, optional
        Soft upper bounds of the states.
    scaling : Scaling, optional
        Variable scaling (default ones).
    solver : SolverOptions, optional
        IPOPT options for cold and warm-started solves (``ipopt``, ``warm_ipopt``) and
        ``nlpsol={"expand": False}`` to keep a matrix-level terminal cost (a neural network
        built from MX, see :func:`lgutils.core.nn.value_function`) out of CasADi's scalar
        expansion: the dynamics and stage costs are SX functions in any case. Faster still, a
        terminal cost with ``Cost.terminal_derivatives`` keeps itself out of the expansion and
        the rest is expanded. Warm starts are always on; the cold start puts the inputs in the
        middle of their bounds.
    """

    def __init__(
        self,
        model: Model,
        cost: Cost,
        horizon: int,
        tree: ScenarioTree,
        *,
        params: Params | Mapping[str, Any] | None = None,
        bounds: Bounds | None = None,
        soft: SoftBounds | None = None,
        scaling: Scaling | None = None,
        solver: SolverOptions | None = None,
    ) -> None:
        for name, value, kind in [
            ("model", model, Model),
            ("cost", cost, Cost),
            ("tree", tree, ScenarioTree),
            ("bounds", bounds, Bounds),
            ("soft", soft, SoftBounds),
            ("scaling", scaling, Scaling),
            ("solver", solver, SolverOptions),
        ]:
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
        self.nx = nx = model.nx
        self.nu = nu = model.nu
        self.horizon = check_positive_int("horizon", horizon)
        self.scenarios, self.weights = tree.values, tree.weights
        self.n_scenarios = tree.values.shape[0]
        scaling = scaling or Scaling()
        self.x_scale = np.ones(nx) if scaling.x is None else as_vector("x_scale", scaling.x, nx)
        self.u_scale = np.ones(nu) if scaling.u is None else as_vector("u_scale", scaling.u, nu)
        if np.any(self.x_scale <= 0) or np.any(self.u_scale <= 0):
            raise ValueError("x_scale and u_scale must be positive")
        bounds = bounds or Bounds()
        self.u_lb, self.u_ub, self.x_lb, self.x_ub = bounds.arrays(nx, nu)
        soft = soft or SoftBounds()
        self.soft_ub = _vector("soft_ub", soft.ub, nx, np.inf)
        self._soft_idx = np.flatnonzero(np.isfinite(self.soft_ub))
        self.soft_terminal = bool(soft.terminal)
        params = params if isinstance(params, Params) else Params(params or {})
        stage, dyn, term, term_derivatives = _stacked_functions(self, model, cost, params)
        mw = None
        if cost.move_weight is not None:
            r = as_vector("move_weight", cost.move_weight, nu)
            mw = np.kron(np.diag(self.weights), np.diag(r))
        self._has_u_prev = mw is not None
        S, xs, us = self.n_scenarios, self.x_scale, self.u_scale
        solver = solver or SolverOptions()
        self.mpc = MPC(
            Model(S * nx, S * nu, dyn, model.integrator, model.dt, model.substeps, model.degree),
            Cost(
                stage,
                term,
                discount=cost.discount,
                move_weight=mw,
                terminal_derivatives=term_derivatives,
            ),
            self.horizon,
            params=params,
            constraints=self._constraints(soft.penalty),
            bounds=Bounds(
                np.tile(self.u_lb / us, S),
                np.tile(self.u_ub / us, S),
                np.tile(self.x_lb / xs, S),
                np.tile(self.x_ub / xs, S),
                terminal=bounds.terminal,
            ),
            solver=SolverOptions(
                ipopt=solver.ipopt,
                warm_ipopt=solver.warm_ipopt,
                nlpsol=solver.nlpsol,
                warm_start=True,
                initial_guess={"u": np.tile(self._u_guess() / us, S)},
            ),
        )

    def _split(self, X: Any, n: int) -> list:
        return [X[i * n : (i + 1) * n] for i in range(self.n_scenarios)]

    def _constraints(self, penalty: Any) -> Constraints:
        """Non-anticipativity of the first input, and the soft state bounds of every scenario."""
        S, nu = self.n_scenarios, self.nu

        def nonanticipative(X, U, p, k):
            if k != 0 or S == 1:
                return ca.MX(0, 1)
            U0 = self._split(U, nu)
            return ca.vertcat(*[U0[i] - U0[0] for i in range(1, S)])

        soft = t_soft = None
        soft_idx = self._soft_idx
        n_soft = soft_idx.size
        if n_soft:
            ub_s = ca.DM(self.soft_ub[soft_idx])
            sc = ca.DM(self.x_scale[soft_idx])

            def rows(X):  # violations in physical units, scenario by scenario
                return ca.vertcat(
                    *[xi[soft_idx.tolist()] * sc - ub_s for xi in self._split(X, self.nx)]
                )

            def soft(X, U, p, k):
                return ca.MX(0, 1) if k == 0 else rows(X)  # x_0 is data

            if self.soft_terminal:

                def t_soft(X, p):
                    return rows(X)

        return Constraints(
            eq=nonanticipative,
            soft=soft,
            terminal_soft=t_soft,
            soft_linear=np.tile(self._soft_penalty(penalty, n_soft), S) if n_soft else 0.0,
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
