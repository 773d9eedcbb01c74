"""A parametric MPC that is a Q-function, a policy and differentiable (paper Sec. III.A, eqs. 13-14).

:class:`MPC` builds the optimal control problem of eq. (13) once (:mod:`lgutils.mpc.transcription`)
and solves it with IPOPT, or, when it is a quadratic program and ``SolverOptions(method="qp")``
asks for it, with a QP solver (:mod:`lgutils.mpc.qp`). Everything that may change between solves
is an NLP *parameter*: the current state ``s``, the fixed first action ``a`` (for Q), the
previously applied input ``u_prev`` (for input-move penalties) and the learnable parameters
``phi``. Changing any of them never rebuilds the problem.

Three evaluations at a state ``s`` (costs are minimised; the paper's reward-convention
Q-function is ``Q_phi = -Q^MPC``, footnote 1):

- :meth:`MPC.policy` -- ``pi(s) = u_0*`` (eq. 14), with the optimal cost ``V(s)``;
- :meth:`MPC.q_value` -- ``Q^MPC(s, a)``: the same problem with ``u_0 = a`` fixed (eq. 13f);
- :meth:`MPC.value` -- ``V^MPC(s) = min_a Q^MPC(s, a)``.

Each returns an :class:`~lgutils.mpc.results.MPCResult` with the solver status, iteration count,
wall-clock solve time and the predicted trajectory. A failed solve (infeasible, iteration limit,
non-finite numbers) raises :class:`~lgutils.mpc.results.MPCSolveError`; there is never a silent
garbage action. Derivatives live in :mod:`lgutils.mpc.sensitivity` and batches of states in
:mod:`lgutils.mpc.batch`; the methods of the same names here call them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import casadi as ca
import numpy as np

from lgutils.core.validate import as_array, as_vector, check_positive_int
from lgutils.mpc import batch, qp, sensitivity
from lgutils.mpc.discretisation import integrate
from lgutils.mpc.options import Bounds, Constraints, Cost, Model, Params, SolverOptions
from lgutils.mpc.results import (
    SUCCESS_STATUSES,
    BatchResult,
    MPCResult,
    MPCSolveError,
    PolicySensitivity,
    QSensitivity,
)
from lgutils.mpc.symbols import accepts_stage, call, column
from lgutils.mpc.transcription import Transcription, parameter_dict, transcribe

__all__ = ["MPC", "RawSolution"]


@dataclass(frozen=True)
class RawSolution:
    """What IPOPT returned for one solve, and where it started (for the sensitivities).

    Attributes
    ----------
    sol : dict
        CasADi's solver output (``x``, ``f``, ``g``, ``lam_x``, ``lam_g``, ...).
    w0, lam_x0, lam_g0 : numpy.ndarray or casadi.DM
        The primal and dual starting point (a warm start keeps CasADi's own vectors).
    p : numpy.ndarray
        The parameter vector ``P = [s, (a), (u_prev), phi]``.
    """

    sol: dict
    w0: Any
    lam_x0: Any
    lam_g0: Any
    p: np.ndarray


def _flat(v: Any) -> np.ndarray:
    """A CasADi or numpy vector as a flat float array."""
    return np.asarray(v, dtype=float).ravel()


class MPC:
    r"""The parametric MPC of eq. (13): a Q-function, a policy (eq. 14) and their derivatives.

    The problem solved at state ``s`` is

    .. math::

        \min_{u_{0:H-1}, \sigma \ge 0}\ \sum_{k=0}^{H-1} \gamma^k \ell(x_k, u_k, p, k)
        + \gamma^H V(x_H, p) + \sum_k \| u_k - u_{k-1} \|^2_W
        + \sum_k (w_1^\top \sigma_k + \sigma_k^\top \mathrm{diag}(w_2) \sigma_k)

    subject to ``x_0 = s``, ``x_{k+1} = f(x_k, u_k, p, k)``, ``g(x_k, u_k, p, k) = 0``,
    ``h(x_k, u_k, p, k) <= 0`` (hard), ``h_soft(x_k, u_k, p, k) <= sigma_k`` (soft), input
    bounds on ``u_0..u_{H-1}``, state bounds on ``x_1..x_H``, terminal constraints on ``x_H``,
    and, for :meth:`q_value`, ``u_0 = a``.

    Parameters
    ----------
    model : Model
        ``nx``, ``nu``, the dynamics ``f`` and how they are discretised.
    cost : Cost
        Stage cost ``l``, terminal cost ``V``, discount ``gamma``, move penalty ``W``.
    horizon : int
        Prediction horizon ``H >= 1``.
    params : Params or dict, optional
        The learnable parameters: ``Params(shapes, default)`` or a dict name -> shape
        (``{"A": (4, 4), "r": ()}``). Values are passed at solve time as ``phi``.
    constraints : Constraints, optional
        Hard and soft path and terminal constraints, and the penalties of the soft ones.
    bounds : Bounds, optional
        Input and state bounds.
    solver : SolverOptions, optional
        IPOPT options, warm starts, cold-start guess.

    Raises
    ------
    ValueError
        Wrong dimensions, bounds, parameter shapes, or a callable returning the wrong shape.

    Examples
    --------
    >>> import casadi as ca
    >>> mpc = MPC(
    ...     Model(nx=1, nu=1, dynamics=lambda x, u, p: 1.2 * x + u),
    ...     Cost(stage=lambda x, u, p: x**2 + u**2, terminal=lambda x, p: p["P"] * x**2),
    ...     horizon=5,
    ...     params={"P": ()},
    ...     bounds=Bounds(u_lb=-1.0, u_ub=1.0),
    ... )
    >>> round(float(mpc.policy([0.5], {"P": 2.0}).action[0]), 4)
    -0.3968
    """

    def __init__(
        self,
        model: Model,
        cost: Cost,
        horizon: int,
        *,
        params: Params | Mapping[str, Any] | None = None,
        constraints: Constraints | None = None,
        bounds: Bounds | None = None,
        solver: SolverOptions | None = None,
    ) -> None:
        for name, value, kind in [
            ("model", model, Model),
            ("cost", cost, Cost),
            ("constraints", constraints, Constraints),
            ("bounds", bounds, Bounds),
            ("solver", solver, SolverOptions),
        ]:
            if value is not None and not isinstance(value, kind):
                raise ValueError(
                    f"{name} must be an lgutils.mpc.{kind.__name__}, got {type(value).__name__}"
                )
        if model is None or cost is None:
            raise ValueError("model and cost are required")
        self.model, self.cost = model, cost
        self.constraints = constraints or Constraints()
        self.bounds = bounds or Bounds()
        self.solver_options = solver or SolverOptions()
        self.nx, self.nu = model.nx, model.nu
        self.horizon = check_positive_int("horizon", horizon)
        self.dt, self.integrator = model.dt, model.integrator
        self.substeps, self.degree = model.substeps, model.degree
        self.discount = cost.discount
        self.warm_start = self.solver_options.warm_start
        self._init_params(params)
        self.u_lb, self.u_ub, self.x_lb, self.x_ub = self.bounds.arrays(self.nx, self.nu)
        self.move_weight = cost.move_matrix(self.nu)
        self._initial_guess = self._checked_guess(self.solver_options.initial_guess)
        self._problems: dict[Any, Any] = {}
        self._warm: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.last_result: MPCResult | None = None
        self.problem("policy")  # built now (it checks the callables); the Q problem on first use
        if self.warm_start and self.solver_options.method == "nlp":
            self.warm_solver("policy")  # built now, not in the middle of a closed loop

    # ---------------------------------------------------------------------------------------
    # parameters
    # ---------------------------------------------------------------------------------------
    def _init_params(self, params: Params | Mapping[str, Any] | None) -> None:
        self.params = (
            params if isinstance(params, Params) else Params({} if params is None else params)
        )
        self.param_shapes: dict[str, tuple[int, ...]] = dict(self.params.shapes)
        self.use_u_prev = self.cost.use_u_prev
        if self.use_u_prev and "u_prev" in self.param_shapes:
            raise ValueError(
                "params must not contain 'u_prev' when the MPC uses the previous input"
            )
        self.phi_slices = self.params.slices()
        self.n_phi = self.params.size
        default = self.params.default
        self.default_phi = None if default is None else self.flatten_phi(default, "default_phi")

    @property
    def param_names(self) -> list[str]:
        """Names of the learnable parameters, in flat order."""
        return list(self.param_shapes)

    def flatten_phi(self, phi: Any, name: str = "phi") -> np.ndarray:
        """The parameter values as one flat vector of shape ``(n_phi,)``: :meth:`Params.flatten`."""
        return self.params.flatten(phi, name)

    def unflatten_phi(self, vec: Any) -> dict[str, np.ndarray]:
        """Inverse of :meth:`flatten_phi`: a dict name -> array of the declared shape."""
        return self.params.unflatten(vec)

    def phi_vector(self, phi: Any) -> np.ndarray:
        """``phi`` (dict, flat vector, or None for the defaults) as a checked flat vector."""
        if phi is None:
            if self.n_phi == 0:
                return np.zeros(0)
            if self.default_phi is None:
                raise ValueError(f"phi is required: this MPC has parameters {self.param_names}")
            return self.default_phi
        return self.flatten_phi(phi)

    # ---------------------------------------------------------------------------------------
    # the problems and their solves
    # ---------------------------------------------------------------------------------------
    def problem(self, mode: str) -> Transcription:
        """The NLP of ``mode`` (``"policy"`` or ``"q"``), transcribed on first use."""
        if mode not in ("policy", "q"):
            raise ValueError(f"mode must be 'policy' or 'q', got {mode!r}")
        if mode not in self._problems:
            b = transcribe(self, mode)
            if self.solver_options.method == "qp":
                b.cache["qp"] = qp.build(self, b)  # checks that it is a QP
            self._problems[mode] = b
        return self._problems[mode]

    def _checked_guess(self, guess: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
        out = {}
        for key, n in (("u", self.nu), ("x", self.nx)):
            if guess and key in guess:
                arr = as_array(f"initial_guess[{key!r}]", guess[key])
                if arr.shape not in ((n,), (self.horizon, n)):
                    raise ValueError(
                        f"initial_guess[{key!r}] must have shape ({n},) or ({self.horizon}, {n}), "
                        f"got {arr.shape}"
                    )
                out[key] = arr
        return out

    def cold_guess(self, mode: str, s: np.ndarray) -> np.ndarray:
        """The starting point of a cold solve at ``s``: the initial guess, else ``u = 0`` (clipped)
        and ``x = s`` at every stage, slacks 0."""
        b, H = self.problem(mode), self.horizon
        ug, xg = self._initial_guess.get("u"), self._initial_guess.get("x")
        if ug is None:
            u_traj = np.tile(np.clip(0.0, self.u_lb, self.u_ub), (H, 1))
        elif ug.size == self.nu:
            u_traj = np.tile(ug.reshape(1, self.nu), (H, 1))
        else:
            u_traj = ug.reshape(H, self.nu)
        if xg is None:
            x_traj = np.tile(s, (H + 1, 1))
        elif xg.size == self.nx:
            x_traj = np.tile(xg.reshape(1, self.nx), (H + 1, 1))
        else:
            x_traj = np.vstack([s, xg.reshape(H, self.nx)])
        parts = []
        for (kind, k), size in zip(b.kinds, b.sizes, strict=True):
            if kind == "u":
                parts.append(u_traj[k])
            elif kind == "x":
                parts.append(x_traj[k])
            elif kind == "c":
                parts.append(np.tile(x_traj[k], self.degree - 1))
            else:
                parts.append(np.zeros(size))
        return np.concatenate(parts)

    def parameter_vector(self, mode: str, s, a, u_prev, phi: np.ndarray) -> np.ndarray:
        """The NLP's parameter vector ``P = [s, (a), (u_prev), phi]`` (inputs already checked)."""
        parts = [s]
        if mode == "q":
            parts.append(a)
        if self.use_u_prev:
            parts.append(u_prev)
        parts.append(phi)
        return np.concatenate(parts)

    def check_inputs(self, s: Any, a: Any, u_prev: Any, phi: Any, mode: str):
        """``(s, a, u_prev, phi)`` checked and converted: vectors of the right sizes."""
        s = as_vector("s", s, self.nx)
        a = as_vector("a", a, self.nu) if mode == "q" else None
        if self.use_u_prev:
            if u_prev is None:
                raise ValueError(
                    "u_prev (the previously applied input, shape "
                    f"({self.nu},)) is required because this MPC penalises input moves"
                )
            u_prev = as_vector("u_prev", u_prev, self.nu)
        elif u_prev is not None:
            raise ValueError(
                "u_prev was given but this MPC was built without use_u_prev/move_weight"
            )
        return s, a, u_prev, self.phi_vector(phi)

    def solve_error(self, msg, status, s, a, phi, iterations=0, index=None) -> MPCSolveError:
        """The :class:`MPCSolveError` of a failed solve (``phi`` as a flat vector)."""
        return MPCSolveError(
            msg,
            status=status,
            state=s,
            action=a,
            phi=self.unflatten_phi(phi),
            iterations=iterations,
            index=index,
        )

    def check_fixed_data(self, mode: str, s, a, pv: np.ndarray, phi, index) -> None:
        """Raise MPCSolveError ("infeasible_fixed_data") if the data alone violate a hard constraint."""
        b = self.problem(mode)
        where = f" (batch index {index})" if index is not None else ""
        if mode == "q":
            tol = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(self.u_lb), self.u_lb, 0.0)))
            tol_u = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(self.u_ub), self.u_ub, 0.0)))
            if np.any(a < self.u_lb - tol) or np.any(a > self.u_ub + tol_u):
                raise self.solve_error(
                    f"action a={a} violates the input bounds [{self.u_lb}, {self.u_ub}]{where}: "
                    "Q(s, a) = +inf",
                    "infeasible_fixed_data",
                    s,
                    a,
                    phi,
                    index=index,
                )
        if b.fixed_rows is not None:
            fn, lo, hi = b.fixed_rows
            vals = np.asarray(fn(pv), dtype=float).ravel()
            scale = 1e-6 * np.maximum(1.0, np.abs(vals))
            bad = (vals < lo - scale) | (vals > hi + scale) | ~np.isfinite(vals)
            if np.any(bad):
                raise self.solve_error(
                    f"a hard stage-0 constraint that involves only the fixed data (state s"
                    f"{', action a' if mode == 'q' else ''}) is violated: values {vals[bad]}, "
                    f"bounds [{lo[bad]}, {hi[bad]}]{where}",
                    "infeasible_fixed_data",
                    s,
                    a,
                    phi,
                    index=index,
                )

    def warm_solver(self, mode: str) -> ca.Function:
        """The IPOPT instance of warm-started solves (``SolverOptions.warm_ipopt``), built on first use."""
        b = self.problem(mode)
        opts = self.solver_options.nlpsol_options(warm=True)
        if opts is None:
            return b.solver
        if "warm_solver" not in b.cache:
            b.cache["warm_solver"] = b.make_solver(f"mpc_{mode}_warm", opts)
        return b.cache["warm_solver"]

    def solve(
        self, mode, s, a, u_prev, phi, warm_start=None, index=None
    ) -> tuple[MPCResult, RawSolution]:
        """One solve with checked inputs (as :meth:`check_inputs` returns them).

        The low-level step under :meth:`policy`, :meth:`q_value`, the batches and the
        sensitivities: warm start, IPOPT, status checks, the plan read back; with
        ``SolverOptions(method="qp")``, :func:`lgutils.mpc.qp.solve` (no warm start).
        """
        if self.solver_options.method == "qp":
            res, sol, pv = qp.solve(self, mode, s, a, u_prev, phi, index)
            zeros = np.zeros(0)
            return res, RawSolution(sol=sol, w0=zeros, lam_x0=zeros, lam_g0=zeros, p=pv)
        return self._solve_nlp(mode, s, a, u_prev, phi, warm_start, index)

    def _solve_nlp(self, mode, s, a, u_prev, phi, warm_start, index):
        """:meth:`solve` with IPOPT."""
        b = self.problem(mode)
        pv = self.parameter_vector(mode, s, a, u_prev, phi)
        where = f" (batch index {index})" if index is not None else ""
        self.check_fixed_data(mode, s, a, pv, phi, index)
        use_warm = self.warm_start if warm_start is None else bool(warm_start)
        solver = b.solver
        if use_warm and mode in self._warm:
            w0, lam_x0, lam_g0 = self._warm[mode]
            solver = self.warm_solver(mode)
        else:
            w0, lam_x0, lam_g0 = self.cold_guess(mode, s), np.zeros(b.n_w), np.zeros(b.lbg.size)
        if "bounds_dm" not in b.cache:  # CasADi's own vectors: no conversion at every call
            b.cache["bounds_dm"] = {
                k: ca.DM(v)
                for k, v in (("lbx", b.lbw), ("ubx", b.ubw), ("lbg", b.lbg), ("ubg", b.ubg))
            }
        t0 = time.perf_counter()
        try:
            sol = solver(x0=w0, p=pv, lam_x0=lam_x0, lam_g0=lam_g0, **b.cache["bounds_dm"])
        except RuntimeError as exc:  # e.g. SolverOptions(nlpsol={"error_on_fail": True})
            stats = solver.stats()
            status = str(stats.get("return_status", "casadi_error"))
            raise self.solve_error(
                f"MPC {mode} solve failed with IPOPT status {status!r}{where}; state s={s} "
                f"(CasADi raised: {exc})",
                status,
                s,
                a,
                phi,
                int(stats.get("iter_count", 0)),
                index,
            ) from exc
        elapsed = time.perf_counter() - t0
        stats = solver.stats()
        status = str(stats.get("return_status", "unknown"))
        iters = int(stats.get("iter_count", -1))
        wopt = np.asarray(sol["x"], dtype=float).ravel()
        fval = float(sol["f"])
        if status not in SUCCESS_STATUSES:
            raise self.solve_error(
                f"MPC {mode} solve failed with IPOPT status {status!r} after {iters} iterations"
                f"{where}; state s={s}" + (f", action a={a}" if a is not None else ""),
                status,
                s,
                a,
                phi,
                iters,
                index,
            )
        if not (np.all(np.isfinite(wopt)) and math.isfinite(fval)):
            raise self.solve_error(
                f"MPC {mode} solve returned non-finite numbers{where}; state s={s}",
                "non_finite",
                s,
                a,
                phi,
                iters,
                index,
            )
        # the next warm start, kept as the solver's own vectors (converted only when shifted)
        self._warm[mode] = (sol["x"], sol["lam_x"], sol["lam_g"])
        u_pred, x_pred = self.plan(mode, wopt, s, a)
        res = MPCResult(
            action=u_pred[0].copy(),
            value=fval,
            x_pred=x_pred,
            u_pred=u_pred,
            slack=wopt[b.idx_slack].copy(),
            status=status,
            iterations=iters,
            solve_time=elapsed,
            mode=mode,
        )
        self.last_result = res
        return res, RawSolution(sol=sol, w0=w0, lam_x0=lam_x0, lam_g0=lam_g0, p=pv)

    def plan(self, mode: str, w: np.ndarray, s: np.ndarray, a) -> tuple[np.ndarray, np.ndarray]:
        """The planned inputs (H, nu) and predicted states (H + 1, nx) held in a solution ``w``."""
        b, H = self.problem(mode), self.horizon
        u_pred = np.empty((H, self.nu))
        for k in range(H):
            u_pred[k] = a if (mode == "q" and k == 0) else w[b.idx_u[k]]
        x_pred = np.empty((H + 1, self.nx))
        x_pred[0] = s
        for k in range(1, H + 1):
            x_pred[k] = w[b.idx_x[k]]
        return u_pred, x_pred

    # ---------------------------------------------------------------------------------------
    # warm starts
    # ---------------------------------------------------------------------------------------
    def reset_warm_start(self) -> None:
        """Forget the stored solutions: the next solves start cold."""
        self._warm.clear()

    def warm_point(self, mode: str = "policy") -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The stored ``(w, lam_x, lam_g)`` the next warm solve of ``mode`` starts from, or None."""
        point = self._warm.get(mode)
        return None if point is None else tuple(_flat(v) for v in point)

    def shift_warm_start(self) -> None:
        """Shift the stored policy solution one stage ahead (receding horizon).

        After the plant moved one step, the previous plan's stage ``k + 1`` is the best guess
        for stage ``k``: inputs, states, collocation states and slacks move one stage forward
        and the last stage is repeated. Their bound multipliers and the multipliers of each
        stage's constraints move with them. :func:`lgutils.mpc.closed_loop` calls this after
        every step.
        """
        if "policy" not in self._warm:
            return
        b = self.problem("policy")
        w, lam_x, lam_g = (_flat(v) for v in self._warm["policy"])
        w_new = np.clip(w[b.shift_w], b.lbw, b.ubw)  # x_H may be unbounded
        self._warm["policy"] = (w_new, lam_x[b.shift_w], lam_g[b.shift_g])

    # ---------------------------------------------------------------------------------------
    # the three evaluations, their derivatives and their batches
    # ---------------------------------------------------------------------------------------
    def policy(
        self, s: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
    ) -> MPCResult:
        """Solve eq. (14) at state ``s``: ``result.action`` is ``pi(s) = u_0*``.

        Parameters
        ----------
        s : array_like, shape (nx,)
            The current state.
        phi : dict or array_like, optional
            Parameter values (see :meth:`flatten_phi`); required when the MPC has parameters
            and no defaults.
        u_prev : array_like, shape (nu,), optional
            Previously applied input (required when the MPC uses it).
        warm_start : bool, optional
            Override ``SolverOptions.warm_start`` for this call.

        Returns
        -------
        MPCResult
            ``action`` = ``u_0*``, ``value`` = ``V^MPC(s)``, status, iterations, solve time,
            predicted trajectory.

        Raises
        ------
        MPCSolveError
            If the solve fails (infeasible, iteration limit, non-finite result).
        ValueError
            Wrong shapes, unknown or missing parameters.
        """
        s, _, u_prev, phiv = self.check_inputs(s, None, u_prev, phi, "policy")
        return self.solve("policy", s, None, u_prev, phiv, warm_start)[0]

    def value(
        self, s: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
    ) -> MPCResult:
        """``V^MPC(s) = min_a Q^MPC(s, a)`` (``result.value``); the same solve as :meth:`policy`."""
        return self.policy(s, phi, u_prev=u_prev, warm_start=warm_start)

    def q_value(
        self, s: Any, a: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
    ) -> MPCResult:
        """``Q^MPC(s, a)`` of eq. (13): the optimal cost with ``u_0 = a`` fixed (``result.value``).

        Outside the input bounds ``Q = +inf``: raises MPCSolveError with status
        ``"infeasible_fixed_data"``. Other arguments as in :meth:`policy`.
        """
        s, a, u_prev, phiv = self.check_inputs(s, a, u_prev, phi, "q")
        return self.solve("q", s, a, u_prev, phiv, warm_start)[0]

    def policy_sensitivity(
        self, s: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
    ) -> PolicySensitivity:
        """``d u_0*/d(s, phi)`` and ``d V/d(s, phi)``: :func:`lgutils.mpc.sensitivity.policy_sensitivity`."""
        return sensitivity.policy_sensitivity(self, s, phi, u_prev=u_prev, warm_start=warm_start)

    def q_sensitivity(
        self, s: Any, a: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
    ) -> QSensitivity:
        """``d Q/d(phi, s, a)``: :func:`lgutils.mpc.sensitivity.q_sensitivity`."""
        return sensitivity.q_sensitivity(self, s, a, phi, u_prev=u_prev, warm_start=warm_start)

    def policy_batch(self, S: Any, phi: Any = None, **kwargs: Any) -> BatchResult:
        """:meth:`policy` at many states: :func:`lgutils.mpc.batch.solve_batch`."""
        return batch.solve_batch(self, "policy", S, None, phi, **kwargs)

    def value_batch(self, S: Any, phi: Any = None, **kwargs: Any) -> BatchResult:
        """:meth:`value` at many states (``result.values``); the same solves as :meth:`policy_batch`."""
        return self.policy_batch(S, phi, **kwargs)

    def q_value_batch(self, S: Any, A: Any, phi: Any = None, **kwargs: Any) -> BatchResult:
        """:meth:`q_value` at many state-action pairs: :func:`lgutils.mpc.batch.solve_batch`."""
        return batch.solve_batch(self, "q", S, A, phi, **kwargs)

    def policy_sensitivity_batch(
        self, S: Any, phi: Any = None, **kwargs: Any
    ) -> dict[str, np.ndarray]:
        """:meth:`policy_sensitivity` at many states: :func:`lgutils.mpc.batch.sensitivity_batch`."""
        return batch.sensitivity_batch(self, S, phi, **kwargs)

    # ---------------------------------------------------------------------------------------
    # the prediction model and the constraints, on numbers
    # ---------------------------------------------------------------------------------------
    def model_step(self, x: Any, u: Any, phi: Any = None, k: int = 0) -> np.ndarray:
        """One step of the prediction model ``x_{k+1} = f_phi(x_k, u_k)`` on numbers.

        For ``integrator="collocation"`` the collocation equations are solved by a Newton
        rootfinder, so the result equals the MPC's own prediction.

        Parameters
        ----------
        x : array_like, shape (nx,)
        u : array_like, shape (nu,)
        phi : dict or array_like, optional
        k : int
            Stage index passed to a stage-dependent ``dynamics``.

        Returns
        -------
        numpy.ndarray, shape (nx,)
        """
        x = as_vector("x", x, self.nx)
        u = as_vector("u", u, self.nu)
        k = check_positive_int("k", k, minimum=0)
        phiv = self.phi_vector(phi)
        key = ("step", k)
        if key not in self._problems:
            self._problems[key] = self._make_step(k)
        return np.asarray(self._problems[key](x, u, phiv), dtype=float).ravel()

    def _make_step(self, k: int) -> ca.Function:
        nx, nu = self.nx, self.nu
        xs, us, ps = ca.MX.sym("x", nx), ca.MX.sym("u", nu), ca.MX.sym("phi", self.n_phi)
        pdict = parameter_dict(self.phi_slices, ps)
        fn = self.model.dynamics
        wk = accepts_stage(fn, 3)

        def ode(xx):
            return column("dynamics", call(fn, (xx, us, pdict), k, wk), nx)

        if self.integrator == "discrete":
            xn = ode(xs)
        else:
            data = ca.vertcat(us, ps)
            xn = integrate(ode, xs, data, self.dt, self.integrator, self.substeps, self.degree)
        return ca.Function("model_step", [xs, us, ps], [xn])

    def constraint_violation(
        self, x: Any, u: Any = None, phi: Any = None, *, u_prev: Any = None
    ) -> float:
        """The largest violation of the hard path constraints by a state (and input).

        Measures what the plant did, not what the MPC planned: the state bounds at ``x``; with
        ``u``, also the input bounds and ``Constraints.ineq`` at stage 0
        (``h(x, u, p, 0) <= 0``). Used by :func:`lgutils.mpc.closed_loop`.

        Parameters
        ----------
        x : array_like, shape (nx,)
        u : array_like, shape (nu,), optional
        phi : dict or array_like, optional
            Needed when the inequality constraints use parameters.
        u_prev : array_like, shape (nu,), optional
            Needed when the MPC uses the previous input and has inequality constraints.

        Returns
        -------
        float
            ``max(0, violations)`` in the constraints' own units (0 when all hold).
        """
        x = as_vector("x", x, self.nx)
        viol = max(0.0, float(np.max(self.x_lb - x)), float(np.max(x - self.x_ub)))
        if u is None:
            return viol
        u = as_vector("u", u, self.nu)
        viol = max(viol, float(np.max(self.u_lb - u)), float(np.max(u - self.u_ub)))
        if self.constraints.ineq is None:
            return viol
        phiv = self.phi_vector(phi)
        if self.use_u_prev:
            if u_prev is None:
                raise ValueError(
                    f"u_prev (shape ({self.nu},)) is required: this MPC uses the previous input"
                )
            up = as_vector("u_prev", u_prev, self.nu)
        else:
            up = np.zeros(0)
        if "path_ineq" not in self._problems:
            self._problems["path_ineq"] = self._make_path_ineq(up.size)
        h = np.asarray(self._problems["path_ineq"](x, u, up, phiv), dtype=float).ravel()
        return max(viol, float(np.max(h, initial=0.0)))

    def _make_path_ineq(self, n_up: int) -> ca.Function:
        xs, us = ca.MX.sym("x", self.nx), ca.MX.sym("u", self.nu)
        ps, ups = ca.MX.sym("phi", self.n_phi), ca.MX.sym("u_prev", n_up)
        pdict = parameter_dict(self.phi_slices, ps)
        if self.use_u_prev:
            pdict["u_prev"] = ups
        fn = self.constraints.ineq
        h = column("ineq_constraints", call(fn, (xs, us, pdict), 0, accepts_stage(fn, 3)))
        return ca.Function("path_ineq", [xs, us, ups, ps], [h])

    def __repr__(self) -> str:
        return (
            f"MPC(nx={self.nx}, nu={self.nu}, horizon={self.horizon}, "
            f"integrator={self.integrator!r}, params={self.param_shapes})"
        )
