"""A parametric MPC that is a Q-function, a policy and differentiable (paper Sec. III.A, eqs. 13-14).

:class:`MPC` builds the optimal control problem of eq. (13) once, with CasADi, and solves it
with IPOPT. Everything that may change between solves is an NLP *parameter*: the current state
``s``, the fixed first action ``a`` (for Q), the previously applied input ``u_prev`` (for
input-move penalties) and the learnable parameters ``phi``. Changing any of them never rebuilds
the problem.

Three evaluations at a state ``s`` (costs are minimised; the paper's reward-convention
Q-function is ``Q_phi = -Q^MPC``, footnote 1):

- :meth:`MPC.policy` -- ``pi(s) = u_0*`` (eq. 14), with the optimal cost ``V(s)``;
- :meth:`MPC.q_value` -- ``Q^MPC(s, a)``: the same problem with ``u_0 = a`` fixed (eq. 13f);
- :meth:`MPC.value` -- ``V^MPC(s) = min_a Q^MPC(s, a)``.

Each returns an :class:`MPCResult` with the solver status, iteration count, wall-clock solve
time and the predicted trajectory. A failed solve (infeasible, iteration limit, non-finite
numbers) raises :class:`MPCSolveError`; there is never a silent garbage action.

Sensitivities (:meth:`MPC.policy_sensitivity`, :meth:`MPC.q_sensitivity`)
--------------------------------------------------------------------------
- ``d u_0* / d(s, phi)``: CasADi's own derivative of the ``nlpsol`` solution (its reverse mode,
  evaluated at the nominal solution without re-solving). CasADi linearises the KKT conditions
  at the solution with the active set read from the signs of the multipliers, and treats
  *any* non-zero multiplier as active. IPOPT's interior-point multipliers of inactive
  constraints are tiny but not zero, so we zero every inequality multiplier that is smaller
  than its constraint's distance to the bound (``lam * slack ~ mu`` at an interior-point
  solution; ``clip_inactive_lam=True`` alone misses near-active rows) before differentiating;
  without this every bound looks active and the derivative is 0. The KKT system is solved in
  the least-squares sense (``sens_linsol="lsqr"``), which equals the exact solve where it is
  regular. Exact wherever strict complementarity and linearly independent active constraints
  hold; checked against central finite differences in ``tests/test_mpc.py`` (unconstrained and
  active-constraint problems). At degenerate points (weakly active constraints, dependent
  active constraints) the solution map need not be differentiable; see
  :meth:`MPC.policy_sensitivity`.
- ``d Q / d(s, a, phi)`` and ``d V / d(s, phi)``: the gradient of the Lagrangian with respect to
  the parameters at the solution (envelope theorem; CasADi's ``lam_p`` output equals
  ``-grad_p L``).

Batched evaluation
------------------
:meth:`MPC.policy_batch` / :meth:`MPC.q_value_batch` loop over the states with a warm start
chained from one solve to the next (``method="loop"``, the default), or hand all of them to a
CasADi ``map`` of the solver (``method="map"``, cold starts). ``benchmarks/mpc_solve_times.py``
measures both: on the book's test problems (a few states, horizon 20) the map took 0.7-0.9 times
the loop's time per state, the difference being the Python overhead of one call per state; the
loop is the default because it reports each state's status and iteration count, which a map
cannot: it checks the fixed data as a single solve does, then recomputes the objective and the
constraints at each returned point and flags non-finite numbers, violated constraints and an
objective that differs from the one returned (an aborted solve returns its starting point), but
a solve stopped by the iteration limit at a feasible point goes unnoticed.
"""

from __future__ import annotations

import inspect
import math
import operator
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import casadi as ca
import numpy as np

from lgutils.core.validate import as_array, as_vector, check_in_open_interval, check_positive_int

__all__ = [
    "MPC",
    "MPCResult",
    "BatchResult",
    "PolicySensitivity",
    "QSensitivity",
    "MPCSolveError",
    "discretize",
    "collocation_coefficients",
    "SUCCESS_STATUSES",
    "PRIMAL_DUAL_WARM_START",
    "ClosedLoop",
    "closed_loop",
    "linear_quadratic_mpc",
    "check_mpc_options",
    "UnknownParameterError",
]

#: IPOPT return statuses accepted as a converged solve.
SUCCESS_STATUSES = ("Solve_Succeeded", "Solved_To_Acceptable_Level")

#: IPOPT options for a primal-dual warm start (pass as ``warm_ipopt_options``, so that they apply
#: to the solves that start from a stored solution): start from the stored primal-dual solution
#: with a small barrier parameter instead of IPOPT's default ``mu_init=0.1``.
PRIMAL_DUAL_WARM_START: dict[str, Any] = {
    "warm_start_init_point": "yes",
    "mu_init": 1e-5,
    "warm_start_bound_push": 1e-9,
    "warm_start_bound_frac": 1e-9,
    "warm_start_slack_bound_push": 1e-9,
    "warm_start_slack_bound_frac": 1e-9,
    "warm_start_mult_bound_push": 1e-9,
}

_INTEGRATORS = ("discrete", "rk4", "collocation")


class UnknownParameterError(ValueError, KeyError):
    """A callable of the MPC asked for a parameter name that ``params`` does not declare."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class _Params(dict):
    """The parameters handed to the user's callables; an unknown name says what is declared."""

    def __missing__(self, key: object) -> Any:
        raise UnknownParameterError(
            f"a callable of the MPC asked for the parameter p[{key!r}], but params declares only "
            f"{sorted(self)}: add {key!r} to params={{name: shape}} (or fix the name)"
        )


class _Builds(dict):
    """The built problems by mode; ``"policy"`` and ``"q"`` are built on first access."""

    def __init__(self, build: Callable[[str], None]) -> None:
        super().__init__()
        self._build_mode = build

    def __missing__(self, key: Any) -> dict[str, Any]:
        if key not in ("policy", "q"):
            raise KeyError(key)
        self._build_mode(key)
        return self[key]


class MPCSolveError(RuntimeError):
    """An MPC solve failed: infeasible, iteration limit, non-finite result or infeasible data.

    Attributes
    ----------
    status : str
        IPOPT's return status (e.g. ``"Infeasible_Problem_Detected"``,
        ``"Maximum_Iterations_Exceeded"``), or ``"infeasible_fixed_data"`` when a hard
        constraint that involves only fixed data (the state ``s``, the action ``a``) is violated,
        or ``"non_finite"``.
    state : numpy.ndarray, shape (nx,)
        The state ``s`` of the failed solve.
    action : numpy.ndarray or None, shape (nu,)
        The fixed first action ``a`` (Q evaluations), else ``None``.
    phi : dict of str to numpy.ndarray
        The parameter values of the failed solve.
    iterations : int
        Solver iterations before the failure (0 if the solver was not called).
    index : int or None
        Position of the state in a batch, when the failure happened in a batched call, or the
        time step of a :func:`closed_loop` run.
    """

    def __init__(
        self,
        message: str,
        status: str,
        state: np.ndarray,
        phi: dict[str, np.ndarray],
        action: np.ndarray | None = None,
        iterations: int = 0,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.state = state
        self.phi = phi
        self.action = action
        self.iterations = iterations
        self.index = index


@dataclass(frozen=True)
class MPCResult:
    """One MPC solve.

    Attributes
    ----------
    action : numpy.ndarray, shape (nu,)
        The first input ``u_0`` of the plan (``pi(s)`` for a policy solve, ``a`` for a Q solve).
    value : float
        The optimal cost: ``V^MPC(s)`` for a policy solve, ``Q^MPC(s, a)`` for a Q solve.
    x_pred : numpy.ndarray, shape (H + 1, nx)
        The predicted states ``x_0 = s, x_1, ..., x_H``.
    u_pred : numpy.ndarray, shape (H, nu)
        The planned inputs ``u_0, ..., u_{H-1}``.
    slack : numpy.ndarray, shape (n_slack,)
        The slack variables of the soft constraints (empty when there are none), stage by stage.
    status : str
        IPOPT's return status.
    iterations : int
        IPOPT iterations.
    solve_time : float
        Wall-clock time of the solver call, seconds.
    mode : str
        ``"policy"`` or ``"q"``.
    """

    action: np.ndarray
    value: float
    x_pred: np.ndarray
    u_pred: np.ndarray
    slack: np.ndarray
    status: str
    iterations: int
    solve_time: float
    mode: str

    @property
    def success(self) -> bool:
        """True when the status is one of :data:`SUCCESS_STATUSES`."""
        return self.status in SUCCESS_STATUSES


@dataclass(frozen=True)
class BatchResult:
    """Many MPC solves, one per state (row).

    Attributes
    ----------
    actions : numpy.ndarray, shape (N, nu)
        First inputs (NaN where a solve failed and ``raise_on_failure=False``).
    values : numpy.ndarray, shape (N,)
        Optimal costs (NaN where a solve failed).
    x_pred : numpy.ndarray, shape (N, H + 1, nx)
    u_pred : numpy.ndarray, shape (N, H, nu)
    success : numpy.ndarray of bool, shape (N,)
    statuses : list of str, length N
    iterations : numpy.ndarray of int, shape (N,)
        IPOPT iterations (-1 with ``method="map"``, which cannot report them).
    solve_times : numpy.ndarray, shape (N,)
        Wall-clock seconds per solve (with ``method="map"``: the total divided by N).
    """

    actions: np.ndarray
    values: np.ndarray
    x_pred: np.ndarray
    u_pred: np.ndarray
    success: np.ndarray
    statuses: list[str]
    iterations: np.ndarray
    solve_times: np.ndarray


@dataclass(frozen=True)
class PolicySensitivity:
    """Derivatives of the policy ``u_0*(s; phi)`` and of ``V(s; phi)`` at one state.

    Attributes
    ----------
    result : MPCResult
        The policy solve the derivatives are taken at.
    d_action_d_phi : numpy.ndarray, shape (nu, n_phi)
        ``d u_0* / d phi``, columns in the flat order of :meth:`MPC.flatten_phi`.
    d_action_d_state : numpy.ndarray, shape (nu, nx)
        ``d u_0* / d s``.
    d_value_d_phi : numpy.ndarray, shape (n_phi,)
        ``d V / d phi`` (gradient of the Lagrangian).
    d_value_d_state : numpy.ndarray, shape (nx,)
    d_action_d_u_prev : numpy.ndarray or None, shape (nu, nu)
        ``d u_0* / d u_prev`` when the MPC uses the previous input.
    phi_slices : dict
        Parameter name -> (slice of the flat vector, shape); see :meth:`by_name`.
    """

    result: MPCResult
    d_action_d_phi: np.ndarray
    d_action_d_state: np.ndarray
    d_value_d_phi: np.ndarray
    d_value_d_state: np.ndarray
    d_action_d_u_prev: np.ndarray | None = None
    phi_slices: dict = field(default_factory=dict, repr=False)

    def by_name(self) -> dict[str, np.ndarray]:
        """``d u_0* / d phi`` split by parameter: name -> array of shape ``(nu, *shape)``."""
        nu = self.d_action_d_phi.shape[0]
        return {
            n: self.d_action_d_phi[:, sl].reshape((nu, *shp))
            for n, (sl, shp) in self.phi_slices.items()
        }


@dataclass(frozen=True)
class QSensitivity:
    """Derivatives of ``Q^MPC(s, a; phi)`` at one state-action pair.

    Attributes
    ----------
    result : MPCResult
    d_q_d_phi : numpy.ndarray, shape (n_phi,)
        ``d Q / d phi``: the gradient of the Lagrangian with respect to phi at the solution.
    d_q_d_state : numpy.ndarray, shape (nx,)
    d_q_d_action : numpy.ndarray, shape (nu,)
    d_q_d_u_prev : numpy.ndarray or None, shape (nu,)
    phi_slices : dict
        Parameter name -> (slice, shape); see :meth:`by_name`.
    """

    result: MPCResult
    d_q_d_phi: np.ndarray
    d_q_d_state: np.ndarray
    d_q_d_action: np.ndarray
    d_q_d_u_prev: np.ndarray | None = None
    phi_slices: dict = field(default_factory=dict, repr=False)

    def by_name(self) -> dict[str, np.ndarray]:
        """``d Q / d phi`` split by parameter: name -> array of the parameter's shape."""
        return {n: self.d_q_d_phi[sl].reshape(shp) for n, (sl, shp) in self.phi_slices.items()}


# --------------------------------------------------------------------------------------------
# integration schemes
# --------------------------------------------------------------------------------------------
def collocation_coefficients(degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radau collocation coefficients on the unit interval (one finite element).

    Parameters
    ----------
    degree : int
        Number of collocation points ``d >= 1`` (Radau IIA, order ``2 d - 1``).

    Returns
    -------
    tau : numpy.ndarray, shape (d + 1,)
        ``0`` followed by the Radau points (the last one is 1).
    C : numpy.ndarray, shape (d + 1, d)
        ``C[j, r]`` is the derivative of the j-th Lagrange polynomial at ``tau[r + 1]``, so the
        collocation equations read ``sum_j C[j, r] X_j = dt f(X_{r+1}, u)``.
    D : numpy.ndarray, shape (d + 1,)
        The Lagrange polynomials at 1: ``x_next = sum_j D[j] X_j``.
    """
    d = check_positive_int("degree", degree)
    tau = np.concatenate([[0.0], np.asarray(ca.collocation_points(d, "radau"), dtype=float)])
    C = np.zeros((d + 1, d))
    D = np.zeros(d + 1)
    for j in range(d + 1):
        poly = np.poly1d([1.0])
        for r in range(d + 1):
            if r != j:
                poly *= np.poly1d([1.0, -tau[r]]) / (tau[j] - tau[r])
        D[j] = poly(1.0)
        dpoly = np.polyder(poly)
        C[j] = [dpoly(tau[r]) for r in range(1, d + 1)]
    return tau, C, D


def _accepts_stage(fn: Callable, n_base: int) -> bool:
    """Whether ``fn`` accepts the stage index as an extra positional argument."""
    if isinstance(fn, ca.Function):
        return fn.n_in() > n_base
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    try:
        sig.bind(*range(n_base + 1))
    except TypeError:
        return False
    return True


def _call(fn: Callable, args: tuple, k: int | None, with_k: bool) -> Any:
    return fn(*args, k) if with_k else fn(*args)


def _options_error(exc: RuntimeError, opts: dict[str, Any]) -> ValueError:
    """CasADi's refusal of an option, as a ValueError that names the offending argument."""
    text = str(exc)
    ipopt = "IpoptInterface" in text or "IPOPT option" in text
    first = text.split("Did you mean")[0]  # CasADi's list of suggestions is long
    reason = " ".join(first.rsplit(".cpp:", 1)[-1].split(":", 1)[-1].split()) or text
    name = "ipopt_options" if ipopt else "solver_options"
    given = opts.get("ipopt", {}) if ipopt else {k: v for k, v in opts.items() if k != "ipopt"}
    return ValueError(f"{name} was rejected by CasADi/IPOPT: {reason} (options given: {given})")


def _column(name: str, value: Any, length: int | None = None) -> ca.MX:
    """A user callable's output as an MX column vector (optionally of a given length)."""
    if isinstance(value, (list, tuple)):
        value = ca.vertcat(*value) if len(value) else ca.MX(0, 1)
    if isinstance(value, (int, float, np.ndarray, np.generic)):
        value = ca.MX(ca.DM(np.atleast_1d(np.asarray(value, dtype=float))))
    if not isinstance(value, (ca.MX, ca.SX, ca.DM)):
        raise ValueError(f"{name} must return a CasADi expression, got {type(value).__name__}")
    value = ca.MX(value) if not isinstance(value, ca.MX) else value
    if value.numel() > 0 and value.size2() != 1:
        value = ca.vec(value)
    if length is not None and value.numel() != length:
        raise ValueError(f"{name} must return {length} values, got shape {value.shape}")
    return value


def _scalar(name: str, value: Any) -> ca.MX:
    col = _column(name, value)
    if col.numel() != 1:
        raise ValueError(f"{name} must return a scalar, got shape {col.shape}")
    return col


def discretize(
    dynamics: Callable,
    nx: int,
    nu: int,
    dt: float,
    method: str = "rk4",
    substeps: int = 1,
    degree: int = 3,
    n_p: int = 0,
) -> ca.Function:
    """One-step map ``x_next = F(x, u, p)`` of an ODE ``dx/dt = dynamics(x, u, p)``.

    Parameters
    ----------
    dynamics : callable
        ``dynamics(x, u, p) -> dx/dt`` on CasADi symbols: ``x`` of shape (nx, 1), ``u`` of
        shape (nu, 1), ``p`` of shape (n_p, 1); in units of state per unit time.
    nx, nu : int
        State and input dimensions.
    dt : float
        Step length, in the time unit of ``dynamics``.
    method : {"rk4", "collocation"}
        Explicit Runge-Kutta 4 with ``substeps`` equal sub-steps, or Radau collocation with
        ``degree`` points on one finite element, whose equations are solved by CasADi's Newton
        rootfinder (the same discretisation as ``MPC(integrator="collocation")``).
    substeps : int
        RK4 sub-steps per step.
    degree : int
        Collocation degree.
    n_p : int
        Length of the parameter vector ``p`` (0: none).

    Returns
    -------
    casadi.Function
        ``F(x, u, p) -> x_next``; call it with numpy arrays (returns a ``DM``, convert with
        ``np.asarray(...).ravel()``) or with CasADi symbols.
    """
    nx = check_positive_int("nx", nx)
    nu = check_positive_int("nu", nu, minimum=0)
    dt = check_in_open_interval("dt", dt, 0.0, np.inf)
    substeps = check_positive_int("substeps", substeps)
    degree = check_positive_int("degree", degree)
    n_p = check_positive_int("n_p", n_p, minimum=0)
    if method not in ("rk4", "collocation"):
        raise ValueError(f"method must be 'rk4' or 'collocation', got {method!r}")
    xs, us, ps = ca.MX.sym("x", nx), ca.MX.sym("u", nu), ca.MX.sym("p", n_p)
    xn = _integrate(
        lambda xx: _column("dynamics", dynamics(xx, us, ps), nx),
        xs,
        ca.vertcat(us, ps),
        dt,
        method,
        substeps,
        degree,
    )
    return ca.Function("F", [xs, us, ps], [xn], ["x", "u", "p"], ["x_next"])


def _integrate(
    ode: Callable, xs: ca.MX, data: ca.MX, dt: float, method: str, substeps: int, degree: int
) -> ca.MX:
    """Symbolic one-step map of ``dx/dt = ode(x)``; ``data`` are all the other symbols ``ode`` uses."""
    if method == "rk4":
        h = dt / substeps
        xn = xs
        for _ in range(substeps):
            k1 = ode(xn)
            k2 = ode(xn + h / 2 * k1)
            k3 = ode(xn + h / 2 * k2)
            k4 = ode(xn + h * k3)
            xn = xn + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return xn
    nx = xs.numel()
    _, C, D = collocation_coefficients(degree)
    V = ca.MX.sym("V", nx * degree)
    Xc = [xs] + [V[r * nx : (r + 1) * nx] for r in range(degree)]
    res = [
        sum(C[j, r] * Xc[j] for j in range(degree + 1)) - dt * ode(Xc[r + 1]) for r in range(degree)
    ]
    G = ca.Function("colloc", [V, ca.vertcat(xs, data)], [ca.vertcat(*res)])
    rf = ca.rootfinder("colloc_rf", "newton", G, {"error_on_fail": True})
    sol = rf(ca.repmat(xs, degree, 1), ca.vertcat(xs, data))
    Xs = [xs] + [sol[r * nx : (r + 1) * nx] for r in range(degree)]
    return sum(D[j] * Xs[j] for j in range(degree + 1))


# --------------------------------------------------------------------------------------------
# the MPC
# --------------------------------------------------------------------------------------------
def _shift_source(blocks: list[tuple[tuple[str, int], int, int]], n: int) -> np.ndarray:
    """Index map of a receding-horizon shift: entry ``i`` is where entry ``i`` takes its value.

    ``blocks`` lists ``((name, stage), start, stop)``; block ``(name, k)`` takes the values of
    ``(name, k + 1)`` when that block exists and has the same size, else it keeps its own.
    """
    src = np.arange(n)
    where = {kind: (a, b) for kind, a, b in blocks}
    for (name, k), a, b in blocks:
        nxt = where.get((name, k + 1))
        if nxt is not None and nxt[1] - nxt[0] == b - a:
            src[a:b] = np.arange(nxt[0], nxt[1])
    return src


def _active_multipliers(
    val: np.ndarray, lam: np.ndarray, lb: np.ndarray, ub: np.ndarray
) -> np.ndarray:
    """Multipliers cleaned for CasADi's active-set detection (which treats any ``lam != 0`` as active).

    An interior-point solution has ``lam_i * slack_i ~ mu`` for every inequality; the row is
    taken as active when its multiplier exceeds its distance to the bound, else its multiplier
    is set to 0. Equality rows (``lb == ub``) are always active; an exactly-zero multiplier
    there gets a tiny positive value so that it still counts as active.
    """
    lam = lam.copy()
    eq = lb == ub
    lam[eq] = np.where(lam[eq] == 0.0, 1e-300, lam[eq])
    with np.errstate(invalid="ignore"):
        dist = np.where(lam > 0, ub - val, val - lb)
    inactive = ~eq & (np.abs(lam) <= np.maximum(dist, 0.0))
    lam[inactive] = 0.0
    return lam


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
    nx, nu : int
        State and input dimensions.
    horizon : int
        Prediction horizon ``H >= 1``.
    dynamics : callable
        ``dynamics(x, u, p[, k])``: the next state (``integrator="discrete"``) or ``dx/dt``
        (``"rk4"``, ``"collocation"``), a CasADi expression of shape (nx, 1). ``x`` is an MX of
        shape (nx, 1), ``u`` of shape (nu, 1), ``p`` a dict name -> MX of the parameter's shape
        (vectors are columns, scalars 1x1), ``k`` the stage index (a Python int) if the
        callable accepts a 4th argument. The same conventions hold for every callable below.
    stage_cost : callable
        ``stage_cost(x, u, p[, k])`` -> scalar ``l``.
    terminal_cost : callable, optional
        ``terminal_cost(x, p)`` -> scalar ``V`` (any CasADi expression, e.g. a neural network).
        Default: no terminal cost.
    params : dict, optional
        Name -> shape of each learnable parameter: ``{"A": (4, 4), "B": (4, 1), "r": ()}``.
        Values are passed at solve time as ``phi={"A": ..., ...}`` (or as one flat vector in the
        order of :meth:`flatten_phi`: names in this dict's order, each raveled row-major).
    default_phi : dict, optional
        Values used when a call passes no ``phi``.
    eq_constraints, ineq_constraints, soft_constraints : callable, optional
        ``g(x, u, p[, k]) = 0``, ``h(x, u, p[, k]) <= 0`` (hard) and
        ``h_soft(x, u, p[, k]) <= 0`` (softened by slacks), for ``k = 0..H-1``. A hard row that,
        at ``k = 0``, involves only fixed data (``s``, ``a``, ``u_prev``, ``phi``) is checked
        before the solve instead of being handed to IPOPT (it has no degrees of freedom).
    terminal_eq_constraints, terminal_ineq_constraints, terminal_soft_constraints : callable, optional
        The same for ``x_H``: ``c(x, p)``.
    soft_linear, soft_quadratic : float or array_like
        Penalties ``w_1 >= 0`` and ``w_2 >= 0`` of the stage slacks (scalar, or one per soft row;
        the number of soft rows may change with ``k``, a vector penalty must then fit every stage).
    terminal_soft_linear, terminal_soft_quadratic : float or array_like, optional
        Penalties of the terminal slacks (default: the stage ones when these are scalars).
    u_lb, u_ub : array_like, shape (nu,), optional
        Input bounds (``-inf``/``inf`` allowed).
    x_lb, x_ub : array_like, shape (nx,), optional
        State bounds, imposed on ``x_1..x_H`` (``x_0 = s`` is data) as bounds of the decision
        variables (IPOPT keeps them without adding slack variables).
    terminal_state_bounds : bool
        Also bound ``x_H`` (default). With False, ``x_lb``/``x_ub`` hold on ``x_1..x_{H-1}``
        only (do-mpc's default, ``use_terminal_bounds=False``).
    dt : float, optional
        Sampling time, for continuous-time dynamics.
    integrator : {"discrete", "rk4", "collocation"}
        How ``dynamics`` is turned into the prediction model. ``"collocation"`` is orthogonal
        collocation on Radau points of degree ``degree``, one finite element per step (the
        collocation states become decision variables, as in do-mpc; the last Radau point is
        the end of the interval, so its state is ``x_{k+1}`` itself, not a copy).
    substeps : int
        RK4 sub-steps per sampling interval.
    degree : int
        Collocation degree (do-mpc's CSTR uses 2).
    discount : float
        ``gamma`` in (0, 1]: stage ``k`` costs are weighted by ``gamma^k``, the terminal cost
        by ``gamma^H``. Penalties of moves and slacks are not discounted.
    use_u_prev : bool
        Make the previously applied input an argument ``u_prev`` of every evaluation; stage
        callables then find the input of the previous stage in ``p["u_prev"]`` (``u_prev`` at
        ``k = 0``, ``u_{k-1}`` afterwards), so ``du_k = u - p["u_prev"]``.
    move_weight : array_like, shape (nu,) or (nu, nu), optional
        Input-move penalty ``W`` of ``sum_k (u_k - u_{k-1})^T W (u_k - u_{k-1})`` with
        ``u_{-1} = u_prev`` (implies ``use_u_prev=True``). A vector means ``diag(W)``.
    warm_start : bool
        Start each solve from the previous solution of the same kind (policy or Q).
    initial_guess : dict, optional
        Cold-start guess: ``{"u": (nu,) or (H, nu), "x": (nx,) or (H, nx)}``; default
        ``u = 0`` clipped to the bounds and ``x = s``.
    ipopt_options : dict, optional
        IPOPT options (merged over ``print_level=0, sb="yes"``).
    warm_ipopt_options : dict, optional
        IPOPT options merged over ``ipopt_options`` for the solves that start from a stored
        solution (``warm_start`` and a previous solve of the same kind), for instance
        ``{"warm_start_init_point": "yes", "mu_init": 1e-7}`` to start from the previous primal
        *and dual* solution at a small barrier parameter instead of IPOPT's cold interior start.
        Such solves use a second IPOPT instance, built on first use; cold solves keep
        ``ipopt_options``.
    solver_options : dict, optional
        Options of CasADi's ``nlpsol`` (merged over ``expand=True, print_time=False``).

    Raises
    ------
    ValueError
        Wrong dimensions, bounds, parameter shapes, or a callable returning the wrong shape.
    """

    def __init__(
        self,
        nx: int,
        nu: int,
        horizon: int,
        dynamics: Callable,
        stage_cost: Callable,
        terminal_cost: Callable | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        default_phi: Mapping[str, Any] | None = None,
        eq_constraints: Callable | None = None,
        ineq_constraints: Callable | None = None,
        soft_constraints: Callable | None = None,
        terminal_eq_constraints: Callable | None = None,
        terminal_ineq_constraints: Callable | None = None,
        terminal_soft_constraints: Callable | None = None,
        soft_linear: Any = 0.0,
        soft_quadratic: Any = 0.0,
        terminal_soft_linear: Any = None,
        terminal_soft_quadratic: Any = None,
        u_lb: Any = None,
        u_ub: Any = None,
        x_lb: Any = None,
        x_ub: Any = None,
        terminal_state_bounds: bool = True,
        dt: float | None = None,
        integrator: str = "discrete",
        substeps: int = 1,
        degree: int = 3,
        discount: float = 1.0,
        use_u_prev: bool = False,
        move_weight: Any = None,
        warm_start: bool = True,
        initial_guess: Mapping[str, Any] | None = None,
        ipopt_options: Mapping[str, Any] | None = None,
        warm_ipopt_options: Mapping[str, Any] | None = None,
        solver_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.nx = check_positive_int("nx", nx)
        self.nu = check_positive_int("nu", nu)
        self.horizon = check_positive_int("horizon", horizon)
        for name, fn in [("dynamics", dynamics), ("stage_cost", stage_cost)]:
            if not callable(fn):
                raise ValueError(f"{name} must be callable, got {type(fn).__name__}")
        for name, fn in [
            ("terminal_cost", terminal_cost),
            ("eq_constraints", eq_constraints),
            ("ineq_constraints", ineq_constraints),
            ("soft_constraints", soft_constraints),
            ("terminal_eq_constraints", terminal_eq_constraints),
            ("terminal_ineq_constraints", terminal_ineq_constraints),
            ("terminal_soft_constraints", terminal_soft_constraints),
        ]:
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be callable or None, got {type(fn).__name__}")
        if integrator not in _INTEGRATORS:
            raise ValueError(f"integrator must be one of {_INTEGRATORS}, got {integrator!r}")
        if integrator == "discrete":
            if dt is not None:
                dt = check_in_open_interval("dt", dt, 0.0, np.inf)
        else:
            if dt is None:
                raise ValueError(f"dt must be given for integrator={integrator!r}, got None")
            dt = check_in_open_interval("dt", dt, 0.0, np.inf)
        self.dt = dt
        self.integrator = integrator
        self.substeps = check_positive_int("substeps", substeps)
        self.degree = check_positive_int("degree", degree)
        self.discount = check_in_open_interval("discount", discount, 0.0, 1.0, closed_high=True)
        self.warm_start = bool(warm_start)

        # parameters ------------------------------------------------------------------------
        self.param_shapes: dict[str, tuple[int, ...]] = {}
        for name, shape in (params or {}).items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"params keys must be identifiers, got {name!r}")
            if isinstance(shape, (int, np.integer)):
                shape = (int(shape),)
            try:
                shape = tuple(operator.index(s) for s in shape)
            except TypeError:
                raise ValueError(
                    f"params[{name!r}] must be a shape such as (4, 4), (4,) or (), got {shape!r}"
                ) from None
            if len(shape) > 2 or any(s < 1 for s in shape):
                raise ValueError(
                    f"params[{name!r}] must be a shape of at most 2 positive sizes, got {shape}"
                )
            self.param_shapes[name] = shape
        self.use_u_prev = bool(use_u_prev) or move_weight is not None
        if self.use_u_prev and "u_prev" in self.param_shapes:
            raise ValueError(
                "params must not contain 'u_prev' when the MPC uses the previous input"
            )
        self.phi_slices: dict[str, tuple[slice, tuple[int, ...]]] = {}
        offset = 0
        for name, shape in self.param_shapes.items():
            size = int(np.prod(shape)) if shape else 1
            self.phi_slices[name] = (slice(offset, offset + size), shape)
            offset += size
        self.n_phi = offset
        self.default_phi = (
            None if default_phi is None else self.flatten_phi(default_phi, name="default_phi")
        )

        # bounds ------------------------------------------------------------------------------
        def bound(name: str, value: Any, n: int, fill: float) -> np.ndarray:
            if value is None:
                return np.full(n, fill)
            try:
                arr = np.atleast_1d(np.asarray(value, dtype=float))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} must be numeric, got {value!r}") from exc
            if arr.size == 1 and n > 1:
                arr = np.full(n, float(arr[0]))
            if arr.shape != (n,) or np.any(np.isnan(arr)):
                raise ValueError(f"{name} must have shape ({n},) without NaN, got {arr!r}")
            if np.any(arr == -fill):
                raise ValueError(
                    f"{name} must not contain {-fill} (no value satisfies it; use {fill} for "
                    f"'unbounded'), got {arr!r}"
                )
            return arr

        self.u_lb = bound("u_lb", u_lb, self.nu, -np.inf)
        self.u_ub = bound("u_ub", u_ub, self.nu, np.inf)
        self.x_lb = bound("x_lb", x_lb, self.nx, -np.inf)
        self.x_ub = bound("x_ub", x_ub, self.nx, np.inf)
        self.terminal_state_bounds = bool(terminal_state_bounds)
        for lo, hi, nm in [(self.u_lb, self.u_ub, "u"), (self.x_lb, self.x_ub, "x")]:
            if np.any(lo > hi):
                raise ValueError(f"{nm}_lb must be <= {nm}_ub elementwise, got {lo} and {hi}")

        if move_weight is not None:
            W = as_array("move_weight", move_weight)
            if W.shape == (self.nu,) or (W.ndim == 0 and self.nu == 1):
                W = np.diag(np.atleast_1d(W))
            if W.shape != (self.nu, self.nu):
                raise ValueError(
                    f"move_weight must have shape ({self.nu},) or ({self.nu}, {self.nu}), got {W.shape}"
                )
            if np.min(np.linalg.eigvalsh(0.5 * (W + W.T))) < -1e-12:
                raise ValueError("move_weight must be positive semidefinite")
            self.move_weight: np.ndarray | None = W
        else:
            self.move_weight = None

        self._fns = dict(
            dynamics=dynamics,
            stage_cost=stage_cost,
            terminal_cost=terminal_cost,
            eq=eq_constraints,
            ineq=ineq_constraints,
            soft=soft_constraints,
            t_eq=terminal_eq_constraints,
            t_ineq=terminal_ineq_constraints,
            t_soft=terminal_soft_constraints,
        )
        self._penalties = dict(
            soft_linear=soft_linear,
            soft_quadratic=soft_quadratic,
            terminal_soft_linear=terminal_soft_linear,
            terminal_soft_quadratic=terminal_soft_quadratic,
        )
        if initial_guess is not None and not isinstance(initial_guess, Mapping):
            raise ValueError(
                "initial_guess must be a dict with keys 'u' and/or 'x', got "
                f"{type(initial_guess).__name__}"
            )
        self._initial_guess = dict(initial_guess or {})
        unknown = set(self._initial_guess) - {"u", "x"}
        if unknown:
            raise ValueError(
                f"initial_guess keys must be 'u' and/or 'x', got unknown {sorted(unknown)}"
            )
        for key, n in (("u", self.nu), ("x", self.nx)):
            if key in self._initial_guess:
                arr = as_array(f"initial_guess[{key!r}]", self._initial_guess[key])
                if arr.shape not in ((n,), (self.horizon, n)):
                    raise ValueError(
                        f"initial_guess[{key!r}] must have shape ({n},) or ({self.horizon}, {n}), "
                        f"got {arr.shape}"
                    )
                self._initial_guess[key] = arr

        for name, value in (
            ("ipopt_options", ipopt_options),
            ("warm_ipopt_options", warm_ipopt_options),
            ("solver_options", solver_options),
        ):
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(
                    f"{name} must be a dict of option name -> value, got {type(value).__name__}"
                )
        ipopt = {"print_level": 0, "sb": "yes"}
        ipopt.update(dict(ipopt_options or {}))
        opts: dict[str, Any] = {
            "expand": True,
            "print_time": False,
            "clip_inactive_lam": True,
            "error_on_fail": False,
            # least-squares solve of the sensitivity KKT system: exact where it is regular;
            # where degenerate active constraints make it singular it returns the
            # least-squares solution (CasADi's default "qr" then returns zeros)
            "sens_linsol": "lsqr",
            # the gradient of the Lagrangian with respect to the parameters costs a sweep over
            # the whole NLP after every solve; it is computed only where it is used
            # (:meth:`_lagrangian_grad_p`, for the sensitivities)
            "calc_lam_p": False,
        }
        opts.update(dict(solver_options or {}))
        opts["ipopt"] = ipopt
        self._solver_opts = opts
        self._warm_solver_opts = (
            None
            if not warm_ipopt_options
            else {**opts, "ipopt": {**ipopt, **dict(warm_ipopt_options)}}
        )

        self._built: dict[Any, dict[str, Any]] = _Builds(self._build)
        self._warm: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # the policy problem now (it checks the callables); the Q problem on first use
        self._build("policy")
        self.last_result: MPCResult | None = None

    # ---------------------------------------------------------------------------------------
    # parameters
    # ---------------------------------------------------------------------------------------
    @property
    def param_names(self) -> list[str]:
        """Names of the learnable parameters, in flat order."""
        return list(self.param_shapes)

    def flatten_phi(self, phi: Any, name: str = "phi") -> np.ndarray:
        """The parameter values as one flat vector of shape ``(n_phi,)``.

        Parameters
        ----------
        phi : dict or array_like
            A dict name -> value (each of its declared shape) or a flat vector of length
            ``n_phi`` (names in declaration order, each raveled row-major).

        Raises
        ------
        ValueError
            Unknown or missing names, wrong shapes, wrong length or non-finite values; the
            message names them.
        """
        if isinstance(phi, Mapping):
            unknown = [k for k in phi if k not in self.param_shapes]
            if unknown:
                raise ValueError(
                    f"{name} has unknown parameter names {unknown}; this MPC's parameters are "
                    f"{self.param_names}"
                )
            missing = [k for k in self.param_shapes if k not in phi]
            if missing:
                raise ValueError(
                    f"{name} lacks the parameters {missing} (expected all of {self.param_names})"
                )
            out = np.empty(self.n_phi)
            for key, (sl, shape) in self.phi_slices.items():
                try:
                    val = np.asarray(phi[key], dtype=float)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{name}[{key!r}] must be numeric, got {phi[key]!r}") from exc
                if shape == () and val.size == 1:
                    val = val.reshape(())
                if val.shape != shape:
                    raise ValueError(
                        f"{name}[{key!r}] must have shape {shape}, got shape {val.shape}"
                    )
                if not np.all(np.isfinite(val)):
                    raise ValueError(f"{name}[{key!r}] must be finite, got {val!r}")
                out[sl] = val.ravel()
            return out
        vec = np.asarray(as_array(name, phi), dtype=float).ravel() if self.n_phi else np.zeros(0)
        if vec.shape != (self.n_phi,):
            raise ValueError(
                f"{name} must be a dict with keys {self.param_names} or a flat vector of length "
                f"{self.n_phi}, got shape {np.shape(phi)}"
            )
        return vec

    def unflatten_phi(self, vec: Any) -> dict[str, np.ndarray]:
        """Inverse of :meth:`flatten_phi`: a dict name -> array of the declared shape."""
        vec = as_vector("vec", vec, self.n_phi) if self.n_phi else np.zeros(0)
        return {k: vec[sl].reshape(shape).copy() for k, (sl, shape) in self.phi_slices.items()}

    def _phi_vec(self, phi: Any) -> np.ndarray:
        if phi is None:
            if self.n_phi == 0:
                return np.zeros(0)
            if self.default_phi is None:
                raise ValueError(f"phi is required: this MPC has parameters {self.param_names}")
            return self.default_phi
        return self.flatten_phi(phi)

    # ---------------------------------------------------------------------------------------
    # building
    # ---------------------------------------------------------------------------------------
    def _penalty(self, name: str, value: Any, n: int) -> np.ndarray:
        try:
            arr = np.atleast_1d(np.asarray(value, dtype=float))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be a non-negative scalar or have shape ({n},), got {value!r}"
            ) from exc
        if arr.size == 1:
            arr = np.full(n, float(arr[0]))
        if arr.shape != (n,) or np.any(~np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(
                f"{name} must be a non-negative scalar or have shape ({n},), got {value!r}"
            )
        return arr

    def _build(self, mode: str) -> None:
        nx, nu, H = self.nx, self.nu, self.horizon
        f = self._fns
        P_s = ca.MX.sym("s", nx)
        P_a = ca.MX.sym("a", nu) if mode == "q" else ca.MX(0, 1)
        P_up = ca.MX.sym("u_prev", nu) if self.use_u_prev else ca.MX(0, 1)
        P_phi = ca.MX.sym("phi", self.n_phi)
        P = ca.vertcat(P_s, P_a, P_up, P_phi)
        pdict: dict[str, ca.MX] = _Params()
        for name, (sl, shape) in self.phi_slices.items():
            seg = P_phi[sl.start : sl.stop]
            if len(shape) == 2:
                pdict[name] = ca.reshape(seg, shape[1], shape[0]).T  # row-major flat layout
            else:
                pdict[name] = seg
        with_k = {
            key: fn is not None
            and _accepts_stage(fn, 2 if key.startswith("t_") or key == "terminal_cost" else 3)
            for key, fn in f.items()
        }

        w: list[ca.MX] = []
        lbw: list[np.ndarray] = []
        ubw: list[np.ndarray] = []
        w0_kind: list[
            tuple[str, int]
        ] = []  # cold-start guess per block: ("u", k), ("x", k), ("c", k), ("s", n)
        idx_u: dict[int, np.ndarray] = {}
        idx_x: dict[int, np.ndarray] = {}
        idx_slack: list[np.ndarray] = []
        g_rows: list[ca.MX] = []
        lbg: list[np.ndarray] = []
        ubg: list[np.ndarray] = []
        g_k0: list[tuple[int, int]] = []  # (start, stop) rows of hard stage constraints at k = 0
        n_w = 0

        def add_var(
            sym: ca.MX, lo: np.ndarray, hi: np.ndarray, kind: tuple[str, int]
        ) -> np.ndarray:
            nonlocal n_w
            w.append(sym)
            lbw.append(lo)
            ubw.append(hi)
            w0_kind.append(kind)
            idx = np.arange(n_w, n_w + sym.numel())
            n_w += sym.numel()
            return idx

        n_g = 0
        g_blocks: list[tuple[tuple[str, int], int, int]] = []  # ((name, stage), start, stop)

        def add_con(
            expr: ca.MX, lo: np.ndarray, hi: np.ndarray, kind: tuple[str, int]
        ) -> tuple[int, int]:
            nonlocal n_g
            if expr.numel() == 0:
                return (n_g, n_g)
            g_rows.append(expr)
            lbg.append(lo)
            ubg.append(hi)
            start = n_g
            n_g += expr.numel()
            g_blocks.append((kind, start, n_g))
            return (start, n_g)

        if self.integrator == "collocation":
            _, Cc, _ = collocation_coefficients(self.degree)

        J = ca.MX(0)
        x_k = P_s
        u_prev_k = P_up
        for k in range(H):
            if mode == "q" and k == 0:
                u_k = P_a
            else:
                u_k = ca.MX.sym(f"u_{k}", nu)
                idx_u[k] = add_var(u_k, self.u_lb, self.u_ub, ("u", k))
            pk = _Params(pdict)
            if self.use_u_prev:
                pk["u_prev"] = u_prev_k
            # cost
            lk = _scalar(
                "stage_cost", _call(f["stage_cost"], (x_k, u_k, pk), k, with_k["stage_cost"])
            )
            J = J + (self.discount**k) * lk
            if self.move_weight is not None:
                du = u_k - u_prev_k
                J = J + ca.bilin(ca.DM(self.move_weight), du, du)
            # constraints
            if f["eq"] is not None:
                ge = _column("eq_constraints", _call(f["eq"], (x_k, u_k, pk), k, with_k["eq"]))
                rows = add_con(ge, np.zeros(ge.numel()), np.zeros(ge.numel()), ("eq", k))
                if k == 0:
                    g_k0.append(rows)
            if f["ineq"] is not None:
                hi_ = _column(
                    "ineq_constraints", _call(f["ineq"], (x_k, u_k, pk), k, with_k["ineq"])
                )
                rows = add_con(
                    hi_, np.full(hi_.numel(), -np.inf), np.zeros(hi_.numel()), ("ineq", k)
                )
                if k == 0:
                    g_k0.append(rows)
            if f["soft"] is not None:
                hs = _column(
                    "soft_constraints", _call(f["soft"], (x_k, u_k, pk), k, with_k["soft"])
                )
                n_soft = hs.numel()
            if f["soft"] is not None and n_soft:
                soft_lin = self._penalty("soft_linear", self._penalties["soft_linear"], n_soft)
                soft_quad = self._penalty(
                    "soft_quadratic", self._penalties["soft_quadratic"], n_soft
                )
                sig = ca.MX.sym(f"sigma_{k}", n_soft)
                idx_slack.append(add_var(sig, np.zeros(n_soft), np.full(n_soft, np.inf), ("s", k)))
                add_con(hs - sig, np.full(n_soft, -np.inf), np.zeros(n_soft), ("soft", k))
                J = J + ca.dot(ca.DM(soft_lin), sig) + ca.dot(ca.DM(soft_quad), sig**2)
            # dynamics
            x_next = ca.MX.sym(f"x_{k + 1}", nx)
            if self.integrator == "discrete":
                fx = _column(
                    "dynamics", _call(f["dynamics"], (x_k, u_k, pk), k, with_k["dynamics"]), nx
                )
                add_con(x_next - fx, np.zeros(nx), np.zeros(nx), ("dyn", k))
            elif self.integrator == "rk4":
                h = self.dt / self.substeps
                xi = x_k
                for _ in range(self.substeps):

                    def ode(xx, u_k=u_k, pk=pk, k=k):
                        return _column(
                            "dynamics",
                            _call(f["dynamics"], (xx, u_k, pk), k, with_k["dynamics"]),
                            nx,
                        )

                    k1 = ode(xi)
                    k2 = ode(xi + h / 2 * k1)
                    k3 = ode(xi + h / 2 * k2)
                    k4 = ode(xi + h * k3)
                    xi = xi + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
                add_con(x_next - xi, np.zeros(nx), np.zeros(nx), ("dyn", k))
            else:
                # Radau's last point is the end of the interval: x_{k+1} itself is the last
                # collocation state, so only the d - 1 interior points are extra variables
                d = self.degree
                n_c = nx * (d - 1)
                Xc = [x_k]
                if n_c:
                    Xc_sym = ca.MX.sym(f"xc_{k}", n_c)
                    add_var(Xc_sym, np.full(n_c, -np.inf), np.full(n_c, np.inf), ("c", k))
                    Xc += [Xc_sym[r * nx : (r + 1) * nx] for r in range(d - 1)]
                Xc.append(x_next)
                for r in range(d):
                    xp = sum(Cc[j, r] * Xc[j] for j in range(d + 1))
                    fr = _column(
                        "dynamics",
                        _call(f["dynamics"], (Xc[r + 1], u_k, pk), k, with_k["dynamics"]),
                        nx,
                    )
                    add_con(xp - self.dt * fr, np.zeros(nx), np.zeros(nx), (f"dyn{r}", k))
            bounded = k + 1 < H or self.terminal_state_bounds
            idx_x[k + 1] = add_var(
                x_next,
                self.x_lb if bounded else np.full(nx, -np.inf),
                self.x_ub if bounded else np.full(nx, np.inf),
                ("x", k + 1),
            )
            x_k = x_next
            u_prev_k = u_k

        # terminal part
        if f["terminal_cost"] is not None:
            VH = _scalar(
                "terminal_cost", _call(f["terminal_cost"], (x_k, pdict), H, with_k["terminal_cost"])
            )
            J = J + (self.discount**H) * VH
        if f["t_eq"] is not None:
            ge = _column(
                "terminal_eq_constraints", _call(f["t_eq"], (x_k, pdict), H, with_k["t_eq"])
            )
            add_con(ge, np.zeros(ge.numel()), np.zeros(ge.numel()), ("t_eq", H))
        if f["t_ineq"] is not None:
            hi_ = _column(
                "terminal_ineq_constraints", _call(f["t_ineq"], (x_k, pdict), H, with_k["t_ineq"])
            )
            add_con(hi_, np.full(hi_.numel(), -np.inf), np.zeros(hi_.numel()), ("t_ineq", H))
        if f["t_soft"] is not None:
            hs = _column(
                "terminal_soft_constraints", _call(f["t_soft"], (x_k, pdict), H, with_k["t_soft"])
            )
            m = hs.numel()
            tl = self._penalties["terminal_soft_linear"]
            tq = self._penalties["terminal_soft_quadratic"]
            tl = self._penalties["soft_linear"] if tl is None else tl
            tq = self._penalties["soft_quadratic"] if tq is None else tq
            tl = self._penalty("terminal_soft_linear", tl, m)
            tq = self._penalty("terminal_soft_quadratic", tq, m)
            sig = ca.MX.sym("sigma_H", m)
            idx_slack.append(add_var(sig, np.zeros(m), np.full(m, np.inf), ("t", H)))
            add_con(hs - sig, np.full(m, -np.inf), np.zeros(m), ("t_soft", H))
            J = J + ca.dot(ca.DM(tl), sig) + ca.dot(ca.DM(tq), sig**2)

        wv = ca.vertcat(*w)
        G = ca.vertcat(*g_rows) if g_rows else ca.MX(0, 1)
        lbg_a = np.concatenate(lbg) if lbg else np.zeros(0)
        ubg_a = np.concatenate(ubg) if ubg else np.zeros(0)

        # hard rows at k = 0 that involve only fixed data: checked numerically, not by IPOPT
        fixed_rows: list[int] = []
        for start, stop in g_k0:
            for i in range(start, stop):
                if not ca.depends_on(G[i], wv):
                    fixed_rows.append(i)
        keep = np.setdiff1d(np.arange(G.numel()), fixed_rows)
        pre = None
        if fixed_rows:
            rows = ca.vertcat(*[G[i] for i in fixed_rows])
            pre = (
                ca.Function(f"fixed_rows_{mode}", [P], [rows]),
                lbg_a[fixed_rows],
                ubg_a[fixed_rows],
            )
            G = ca.vertcat(*[G[i] for i in keep]) if len(keep) else ca.MX(0, 1)
            lbg_a, ubg_a = lbg_a[keep], ubg_a[keep]

        # receding-horizon shift: where each variable / row takes its value from
        w_starts = np.cumsum([0, *[v.numel() for v in w]])
        shift_w = _shift_source(
            [(kind, w_starts[i], w_starts[i + 1]) for i, kind in enumerate(w0_kind)], n_w
        )
        shift_g = _shift_source(g_blocks, n_g)
        new_row = np.full(n_g, -1)
        new_row[keep] = np.arange(keep.size)
        src = new_row[shift_g[keep]]
        shift_g = np.where(src >= 0, src, np.arange(keep.size))

        nlp = {"x": wv, "p": P, "f": J, "g": G}
        try:
            solver = ca.nlpsol(f"mpc_{mode}", "ipopt", nlp, self._solver_opts)
        except RuntimeError as exc:
            raise _options_error(exc, self._solver_opts) from exc
        self._built[mode] = dict(
            solver=solver,
            lbw=np.concatenate(lbw),
            ubw=np.concatenate(ubw),
            lbg=lbg_a,
            ubg=ubg_a,
            eq_rows=np.flatnonzero(lbg_a == ubg_a),
            kinds=w0_kind,
            sizes=[v.numel() for v in w],
            idx_u=idx_u,
            idx_x=idx_x,
            idx_slack=np.concatenate(idx_slack) if idx_slack else np.zeros(0, dtype=int),
            n_w=n_w,
            n_p=P.numel(),
            pre=pre,
            rev=None,
            maps={},
            fg=ca.Function(f"fg_{mode}", [wv, P], [J, G]),
            shift_w=shift_w,
            shift_g=shift_g,
            nlp=nlp,
            warm_solver=None,
        )

    # ---------------------------------------------------------------------------------------
    # solving
    # ---------------------------------------------------------------------------------------
    def _cold_guess(self, mode: str, s: np.ndarray) -> np.ndarray:
        b = self._built[mode]
        H = self.horizon
        ug = self._initial_guess.get("u")
        xg = self._initial_guess.get("x")
        if ug is None:
            u_traj = np.tile(np.clip(0.0, self.u_lb, self.u_ub), (H, 1))
        else:
            u_arr = np.asarray(ug, dtype=float)
            u_traj = (
                np.tile(u_arr.reshape(1, self.nu), (H, 1))
                if u_arr.size == self.nu
                else u_arr.reshape(H, self.nu)
            )
        if xg is None:
            x_traj = np.tile(s, (H + 1, 1))
        else:
            x_arr = np.asarray(xg, dtype=float)
            x_traj = (
                np.tile(x_arr.reshape(1, self.nx), (H + 1, 1))
                if x_arr.size == self.nx
                else np.vstack([s, x_arr.reshape(H, self.nx)])
            )
        parts = []
        for (kind, k), size in zip(b["kinds"], b["sizes"], strict=True):
            if kind == "u":
                parts.append(u_traj[k])
            elif kind == "x":
                parts.append(x_traj[k])
            elif kind == "c":
                parts.append(np.tile(x_traj[k], self.degree - 1))
            else:
                parts.append(np.zeros(size))
        return np.concatenate(parts)

    def _params(
        self,
        mode: str,
        s: np.ndarray,
        a: np.ndarray | None,
        u_prev: np.ndarray | None,
        phi: np.ndarray,
    ) -> np.ndarray:
        parts = [s]
        if mode == "q":
            parts.append(a)
        if self.use_u_prev:
            parts.append(u_prev)
        parts.append(phi)
        return np.concatenate(parts)

    def _check_inputs(self, s: Any, a: Any, u_prev: Any, phi: Any, mode: str):
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
        return s, a, u_prev, self._phi_vec(phi)

    def _fail(self, msg: str, status: str, s, a, phi, iterations=0, index=None) -> MPCSolveError:
        return MPCSolveError(
            msg,
            status=status,
            state=s,
            action=a,
            phi=self.unflatten_phi(phi),
            iterations=iterations,
            index=index,
        )

    def _check_fixed_data(
        self,
        mode: str,
        s: np.ndarray,
        a: np.ndarray | None,
        pv: np.ndarray,
        phi: np.ndarray,
        index: int | None,
    ) -> None:
        """Raise MPCSolveError ("infeasible_fixed_data") if the data alone violate a hard constraint."""
        b = self._built[mode]
        where = f" (batch index {index})" if index is not None else ""
        # data-only checks
        if mode == "q":
            tol = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(self.u_lb), self.u_lb, 0.0)))
            tol_u = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(self.u_ub), self.u_ub, 0.0)))
            if np.any(a < self.u_lb - tol) or np.any(a > self.u_ub + tol_u):
                raise self._fail(
                    f"action a={a} violates the input bounds [{self.u_lb}, {self.u_ub}]{where}: Q(s, a) = +inf",
                    "infeasible_fixed_data",
                    s,
                    a,
                    phi,
                    index=index,
                )
        if b["pre"] is not None:
            fn, lo, hi = b["pre"]
            vals = np.asarray(fn(pv), dtype=float).ravel()
            scale = 1e-6 * np.maximum(1.0, np.abs(vals))
            bad = (vals < lo - scale) | (vals > hi + scale) | ~np.isfinite(vals)
            if np.any(bad):
                raise self._fail(
                    f"a hard stage-0 constraint that involves only the fixed data (state s"
                    f"{', action a' if mode == 'q' else ''}) is violated: values {vals[bad]}, bounds "
                    f"[{lo[bad]}, {hi[bad]}]{where}",
                    "infeasible_fixed_data",
                    s,
                    a,
                    phi,
                    index=index,
                )

    def _solve(
        self,
        mode: str,
        s: np.ndarray,
        a: np.ndarray | None,
        u_prev: np.ndarray | None,
        phi: np.ndarray,
        warm_start: bool | None,
        index: int | None = None,
    ) -> tuple[MPCResult, dict]:
        b = self._built[mode]
        pv = self._params(mode, s, a, u_prev, phi)
        where = f" (batch index {index})" if index is not None else ""
        self._check_fixed_data(mode, s, a, pv, phi, index)
        use_warm = self.warm_start if warm_start is None else bool(warm_start)
        solver = b["solver"]
        if use_warm and mode in self._warm:
            w0, lam_x0, lam_g0 = self._warm[mode]
            solver = self._warm_solver(mode)
        else:
            w0, lam_x0, lam_g0 = (
                self._cold_guess(mode, s),
                np.zeros(b["n_w"]),
                np.zeros(b["lbg"].size),
            )
        t0 = time.perf_counter()
        try:
            sol = solver(
                x0=w0,
                p=pv,
                lbx=b["lbw"],
                ubx=b["ubw"],
                lbg=b["lbg"],
                ubg=b["ubg"],
                lam_x0=lam_x0,
                lam_g0=lam_g0,
            )
        except RuntimeError as exc:  # e.g. solver_options={"error_on_fail": True}
            stats = solver.stats()
            status = str(stats.get("return_status", "casadi_error"))
            raise self._fail(
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
            raise self._fail(
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
            raise self._fail(
                f"MPC {mode} solve returned non-finite numbers{where}; state s={s}",
                "non_finite",
                s,
                a,
                phi,
                iters,
                index,
            )
        self._warm[mode] = (
            wopt,
            np.asarray(sol["lam_x"], dtype=float).ravel(),
            np.asarray(sol["lam_g"], dtype=float).ravel(),
        )
        H = self.horizon
        u_pred = np.empty((H, self.nu))
        for k in range(H):
            u_pred[k] = a if (mode == "q" and k == 0) else wopt[b["idx_u"][k]]
        x_pred = np.empty((H + 1, self.nx))
        x_pred[0] = s
        for k in range(1, H + 1):
            x_pred[k] = wopt[b["idx_x"][k]]
        res = MPCResult(
            action=u_pred[0].copy(),
            value=fval,
            x_pred=x_pred,
            u_pred=u_pred,
            slack=wopt[b["idx_slack"]].copy(),
            status=status,
            iterations=iters,
            solve_time=elapsed,
            mode=mode,
        )
        self.last_result = res
        raw = dict(sol=sol, w0=w0, lam_x0=lam_x0, lam_g0=lam_g0, p=pv)
        return res, raw

    def reset_warm_start(self) -> None:
        """Forget the stored solutions: the next solves start cold."""
        self._warm.clear()

    def shift_warm_start(self) -> None:
        """Shift the stored policy solution one stage ahead (receding horizon).

        After the plant moved one step, the previous plan's stage ``k + 1`` is the best guess
        for stage ``k``: inputs, states, collocation states and slacks move one stage forward
        and the last stage is repeated. Their bound multipliers and the multipliers of each
        stage's constraints move with them. :func:`closed_loop` calls this after every step.
        """
        if "policy" not in self._warm:
            return
        b = self._built["policy"]
        w, lam_x, lam_g = self._warm["policy"]
        w_new = np.clip(w[b["shift_w"]], b["lbw"], b["ubw"])  # x_H may be unbounded
        self._warm["policy"] = (w_new, lam_x[b["shift_w"]], lam_g[b["shift_g"]])

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
            and no ``default_phi``.
        u_prev : array_like, shape (nu,), optional
            Previously applied input (required when the MPC uses it).
        warm_start : bool, optional
            Override the constructor's choice for this call.

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
        s, _, u_prev, phiv = self._check_inputs(s, None, u_prev, phi, "policy")
        return self._solve("policy", s, None, u_prev, phiv, warm_start)[0]

    def value(
        self, s: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
    ) -> MPCResult:
        """``V^MPC(s) = min_a Q^MPC(s, a)`` (``result.value``); the same solve as :meth:`policy`."""
        return self.policy(s, phi, u_prev=u_prev, warm_start=warm_start)

    def q_value(
        self, s: Any, a: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
    ) -> MPCResult:
        """``Q^MPC(s, a)`` of eq. (13): the optimal cost with ``u_0 = a`` fixed (``result.value``).

        Parameters
        ----------
        s : array_like, shape (nx,)
        a : array_like, shape (nu,)
            The first action. Outside the input bounds ``Q = +inf``: raises MPCSolveError with
            status ``"infeasible_fixed_data"``.
        phi, u_prev, warm_start
            As in :meth:`policy`.
        """
        s, a, u_prev, phiv = self._check_inputs(s, a, u_prev, phi, "q")
        return self._solve("q", s, a, u_prev, phiv, warm_start)[0]

    # ---------------------------------------------------------------------------------------
    # sensitivities
    # ---------------------------------------------------------------------------------------
    def _warm_solver(self, mode: str) -> ca.Function:
        """The IPOPT instance of warm-started solves (``warm_ipopt_options``), built on first use."""
        b = self._built[mode]
        if self._warm_solver_opts is None:
            return b["solver"]
        if b["warm_solver"] is None:
            try:
                b["warm_solver"] = ca.nlpsol(
                    f"mpc_{mode}_warm", "ipopt", b["nlp"], self._warm_solver_opts
                )
            except RuntimeError as exc:
                raise _options_error(exc, self._warm_solver_opts) from exc
        return b["warm_solver"]

    def _lagrangian_grad_p(self, mode: str, raw: dict) -> np.ndarray:
        """``grad_p (f + lam_g^T g)`` at a solution, shape (n_p,): ``dV/dp`` (or ``dQ/dp``) by
        the envelope theorem, and the negative of CasADi's ``lam_p`` output."""
        b = self._built[mode]
        if b.get("lagp") is None:
            w = ca.MX.sym("w", b["n_w"])
            p = ca.MX.sym("p", b["n_p"])
            lam = ca.MX.sym("lam_g", b["lbg"].size)
            J, G = b["fg"](w, p)
            fn = ca.Function(f"grad_p_{mode}", [w, p, lam], [ca.gradient(J + ca.dot(lam, G), p)])
            b["lagp"] = fn.expand() if self._solver_opts.get("expand", True) else fn
        sol = raw["sol"]
        out = b["lagp"](sol["x"], raw["p"], sol["lam_g"])
        return np.asarray(out, dtype=float).ravel()

    def _reverse(self, mode: str):
        b = self._built[mode]
        if b["rev"] is None:
            n_out = self.nu
            b["rev"] = b["solver"].reverse(n_out)
        return b["rev"]

    def _split_p(self, mode: str, vec: np.ndarray) -> dict[str, np.ndarray]:
        """Split a derivative along the parameter vector P = [s, (a), (u_prev), phi] (last axis)."""
        out = {}
        i = 0
        out["s"] = vec[..., i : i + self.nx]
        i += self.nx
        if mode == "q":
            out["a"] = vec[..., i : i + self.nu]
            i += self.nu
        if self.use_u_prev:
            out["u_prev"] = vec[..., i : i + self.nu]
            i += self.nu
        out["phi"] = vec[..., i:]
        return out

    def policy_sensitivity(
        self, s: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
    ) -> PolicySensitivity:
        """Solve eq. (14) and differentiate ``u_0*`` and ``V`` with respect to ``phi`` and ``s``.

        ``d u_0*/d(s, phi)`` comes from CasADi's reverse-mode derivative of the NLP solution
        (implicit differentiation of the KKT conditions at the solution, active set from the
        multipliers); ``d V/d(s, phi)`` is the gradient of the Lagrangian (envelope theorem).
        At degenerate points -- a weakly active constraint (zero multiplier) or active
        constraints whose gradients are linearly dependent -- ``u_0*`` need not be
        differentiable; the result is then the least-squares solution of the singular
        linearised KKT system, not a one-sided derivative. Check ``result`` for such points
        (e.g. several constraints pinning the same input) when exactness matters.

        Returns
        -------
        PolicySensitivity
        """
        s, _, u_prev, phiv = self._check_inputs(s, None, u_prev, phi, "policy")
        res, raw = self._solve("policy", s, None, u_prev, phiv, warm_start)
        b = self._built["policy"]
        sol = raw["sol"]
        lam_g = _active_multipliers(
            np.asarray(sol["g"], dtype=float).ravel(),
            np.asarray(sol["lam_g"], dtype=float).ravel(),
            b["lbg"],
            b["ubg"],
        )
        lam_x = _active_multipliers(
            np.asarray(sol["x"], dtype=float).ravel(),
            np.asarray(sol["lam_x"], dtype=float).ravel(),
            b["lbw"],
            b["ubw"],
        )
        grad = self._lagrangian_grad_p("policy", raw)
        seeds = np.zeros((b["n_w"], self.nu))
        seeds[b["idx_u"][0], np.arange(self.nu)] = 1.0
        rev = self._reverse("policy")
        out = rev(
            x0=raw["w0"],
            p=raw["p"],
            lbx=b["lbw"],
            ubx=b["ubw"],
            lbg=b["lbg"],
            ubg=b["ubg"],
            lam_x0=raw["lam_x0"],
            lam_g0=raw["lam_g0"],
            out_x=sol["x"],
            out_f=sol["f"],
            out_g=sol["g"],
            out_lam_x=lam_x,
            out_lam_g=lam_g,
            out_lam_p=-grad,
            adj_x=seeds,
            adj_f=np.zeros((1, self.nu)),
            adj_g=np.zeros((b["lbg"].size, self.nu)),
            adj_lam_x=np.zeros((b["n_w"], self.nu)),
            adj_lam_g=np.zeros((b["lbg"].size, self.nu)),
            adj_lam_p=np.zeros((b["n_p"], self.nu)),
        )
        jac = np.asarray(out["adj_p"], dtype=float).reshape(b["n_p"], self.nu).T  # (nu, n_p)
        if not (np.all(np.isfinite(jac)) and np.all(np.isfinite(grad))):
            raise self._fail(
                "MPC sensitivity is not finite", "non_finite", s, None, phiv, res.iterations
            )
        J = self._split_p("policy", jac)
        g = self._split_p("policy", grad)
        return PolicySensitivity(
            result=res,
            d_action_d_phi=J["phi"].copy(),
            d_action_d_state=J["s"].copy(),
            d_value_d_phi=g["phi"].copy(),
            d_value_d_state=g["s"].copy(),
            d_action_d_u_prev=J["u_prev"].copy() if self.use_u_prev else None,
            phi_slices=dict(self.phi_slices),
        )

    def q_sensitivity(
        self, s: Any, a: Any, phi: Any = None, *, u_prev: Any = None, warm_start: bool | None = None
    ) -> QSensitivity:
        """Solve eq. (13) with ``u_0 = a`` and return ``d Q / d(phi, s, a)``.

        The derivative is the gradient of the Lagrangian with respect to the parameters at the
        solution (paper ref. [58]; CasADi's ``lam_p`` output is its negative).
        """
        s, a, u_prev, phiv = self._check_inputs(s, a, u_prev, phi, "q")
        res, raw = self._solve("q", s, a, u_prev, phiv, warm_start)
        grad = self._lagrangian_grad_p("q", raw)
        if not np.all(np.isfinite(grad)):
            raise self._fail(
                "MPC sensitivity is not finite", "non_finite", s, a, phiv, res.iterations
            )
        g = self._split_p("q", grad)
        return QSensitivity(
            result=res,
            d_q_d_phi=g["phi"].copy(),
            d_q_d_state=g["s"].copy(),
            d_q_d_action=g["a"].copy(),
            d_q_d_u_prev=g["u_prev"].copy() if self.use_u_prev else None,
            phi_slices=dict(self.phi_slices),
        )

    # ---------------------------------------------------------------------------------------
    # batches
    # ---------------------------------------------------------------------------------------
    def _batch(
        self,
        mode: str,
        S: Any,
        A: Any,
        phi: Any,
        U_prev: Any,
        method: str,
        raise_on_failure: bool,
        warm_start: bool | None,
    ) -> BatchResult:
        S = as_array("S", S, (None, self.nx))
        N = S.shape[0]
        A = as_array("A", A, (N, self.nu)) if mode == "q" else None
        if self.use_u_prev:
            if U_prev is None:
                raise ValueError(
                    f"U_prev of shape ({N}, {self.nu}) is required because this MPC uses u_prev"
                )
            U_prev = as_array("U_prev", U_prev, (N, self.nu))
        elif U_prev is not None:
            raise ValueError(
                "U_prev was given but this MPC was built without use_u_prev/move_weight"
            )
        phiv = self._phi_vec(phi)
        if method not in ("loop", "map"):
            raise ValueError(f"method must be 'loop' or 'map', got {method!r}")
        H = self.horizon
        actions = np.full((N, self.nu), np.nan)
        values = np.full(N, np.nan)
        x_pred = np.full((N, H + 1, self.nx), np.nan)
        u_pred = np.full((N, H, self.nu), np.nan)
        success = np.zeros(N, dtype=bool)
        statuses = ["not_solved"] * N
        iters = np.full(N, -1, dtype=int)
        times = np.full(N, np.nan)
        if method == "loop":
            for i in range(N):
                try:
                    res, _ = self._solve(
                        mode,
                        S[i],
                        None if A is None else A[i],
                        None if U_prev is None else U_prev[i],
                        phiv,
                        warm_start,
                        index=i,
                    )
                except MPCSolveError as exc:
                    if raise_on_failure:
                        raise
                    statuses[i] = exc.status
                    iters[i] = exc.iterations
                    continue
                actions[i], values[i], x_pred[i], u_pred[i] = (
                    res.action,
                    res.value,
                    res.x_pred,
                    res.u_pred,
                )
                success[i], statuses[i], iters[i], times[i] = (
                    True,
                    res.status,
                    res.iterations,
                    res.solve_time,
                )
        else:
            b = self._built[mode]
            if N not in b["maps"]:
                b["maps"][N] = b["solver"].map(N, "serial")
            Pm = np.stack(
                [
                    self._params(
                        mode,
                        S[i],
                        None if A is None else A[i],
                        None if U_prev is None else U_prev[i],
                        phiv,
                    )
                    for i in range(N)
                ],
                axis=1,
            )
            W0 = np.stack([self._cold_guess(mode, S[i]) for i in range(N)], axis=1)
            fixed_fail: dict[int, MPCSolveError] = {}
            for i in range(N):
                try:
                    self._check_fixed_data(
                        mode, S[i], None if A is None else A[i], Pm[:, i], phiv, i
                    )
                except MPCSolveError as exc:
                    fixed_fail[i] = exc
            t0 = time.perf_counter()
            sol = b["maps"][N](
                x0=W0,
                p=Pm,
                lbx=np.tile(b["lbw"][:, None], (1, N)),
                ubx=np.tile(b["ubw"][:, None], (1, N)),
                lbg=np.tile(b["lbg"][:, None], (1, N)),
                ubg=np.tile(b["ubg"][:, None], (1, N)),
            )
            elapsed = time.perf_counter() - t0
            Wopt = np.asarray(sol["x"], dtype=float).reshape(b["n_w"], N)
            F = np.asarray(sol["f"], dtype=float).ravel()
            # a map reports no status: recompute the objective and the constraints at the
            # returned point (a solve aborted by IPOPT returns its starting point and f = 0)
            with np.errstate(invalid="ignore", over="ignore"):
                if ("fg", N) not in b["maps"]:
                    b["maps"][("fg", N)] = b["fg"].map(N, "serial")
                F_at, G_at = b["maps"][("fg", N)](np.nan_to_num(Wopt), Pm)
            F_at = np.asarray(F_at, dtype=float).ravel()
            Gv = np.asarray(G_at, dtype=float).reshape(-1, N) if b["lbg"].size else np.zeros((0, N))
            for i in range(N):
                if i in fixed_fail:
                    if raise_on_failure:
                        raise fixed_fail[i]
                    statuses[i] = fixed_fail[i].status
                    continue
                w = Wopt[:, i]
                viol = max(
                    0.0,
                    float(np.max(b["lbg"] - Gv[:, i], initial=0.0)),
                    float(np.max(Gv[:, i] - b["ubg"], initial=0.0)),
                    float(np.max(b["lbw"] - w, initial=0.0)),
                    float(np.max(w - b["ubw"], initial=0.0)),
                )
                ok = (
                    np.all(np.isfinite(w))
                    and np.isfinite(F[i])
                    and np.isfinite(F_at[i])
                    and abs(F_at[i] - F[i]) <= 1e-6 * max(1.0, abs(F_at[i]))
                    and np.all(np.isfinite(Gv[:, i]))
                    and viol < 1e-6
                )
                if not ok:
                    if raise_on_failure:
                        raise self._fail(
                            f"MPC {mode} batch solve (map) failed at index {i}: constraint violation "
                            f"{viol:.3g}, or a non-finite or inconsistent objective ({F[i]:.6g} "
                            f"returned, {F_at[i]:.6g} at the returned point)",
                            "map_failed",
                            S[i],
                            None if A is None else A[i],
                            phiv,
                            index=i,
                        )
                    statuses[i] = "map_failed"
                    continue
                for k in range(H):
                    u_pred[i, k] = A[i] if (mode == "q" and k == 0) else w[b["idx_u"][k]]
                x_pred[i, 0] = S[i]
                for k in range(1, H + 1):
                    x_pred[i, k] = w[b["idx_x"][k]]
                actions[i], values[i] = u_pred[i, 0], F[i]
                success[i], statuses[i], times[i] = True, "map_converged", elapsed / N
        return BatchResult(
            actions=actions,
            values=values,
            x_pred=x_pred,
            u_pred=u_pred,
            success=success,
            statuses=statuses,
            iterations=iters,
            solve_times=times,
        )

    def policy_batch(
        self,
        S: Any,
        phi: Any = None,
        *,
        U_prev: Any = None,
        method: str = "loop",
        raise_on_failure: bool = True,
        warm_start: bool | None = None,
    ) -> BatchResult:
        """:meth:`policy` (and :meth:`value`) at many states.

        Parameters
        ----------
        S : array_like, shape (N, nx)
            States, one per row.
        phi : dict or array_like, optional
            Shared parameter values.
        U_prev : array_like, shape (N, nu), optional
            Previous inputs (when the MPC uses them).
        method : {"loop", "map"}
            ``"loop"``: one solve after the other, each warm-started from the previous one
            (statuses and iterations are reported). ``"map"``: CasADi's ``map`` of the solver
            (cold starts; failures detected from the fixed data and from the objective and
            constraints recomputed at the returned point, not from a status; iterations reported
            as -1).
        raise_on_failure : bool
            Raise :class:`MPCSolveError` at the first failed solve (default), or mark it with
            ``success = False`` and NaN values and go on.
        warm_start : bool, optional
            Override the constructor's warm-start choice for the loop.
        """
        return self._batch("policy", S, None, phi, U_prev, method, raise_on_failure, warm_start)

    def value_batch(self, S: Any, phi: Any = None, **kwargs: Any) -> BatchResult:
        """:meth:`value` at many states (``result.values``); the same solves as :meth:`policy_batch`."""
        return self.policy_batch(S, phi, **kwargs)

    def q_value_batch(
        self,
        S: Any,
        A: Any,
        phi: Any = None,
        *,
        U_prev: Any = None,
        method: str = "loop",
        raise_on_failure: bool = True,
        warm_start: bool | None = None,
    ) -> BatchResult:
        """:meth:`q_value` at many state-action pairs (rows of ``S``, shape (N, nx), and ``A``,
        shape (N, nu)); options as in :meth:`policy_batch`."""
        return self._batch("q", S, A, phi, U_prev, method, raise_on_failure, warm_start)

    def policy_sensitivity_batch(
        self, S: Any, phi: Any = None, *, U_prev: Any = None, warm_start: bool | None = None
    ) -> dict[str, np.ndarray]:
        """:meth:`policy_sensitivity` at many states (a loop with warm starts).

        Returns
        -------
        dict
            ``"actions"`` (N, nu), ``"values"`` (N,), ``"d_action_d_phi"`` (N, nu, n_phi),
            ``"d_action_d_state"`` (N, nu, nx), ``"d_value_d_phi"`` (N, n_phi),
            ``"d_value_d_state"`` (N, nx), and ``"d_action_d_u_prev"`` (N, nu, nu) when used.
        """
        S = as_array("S", S, (None, self.nx))
        N = S.shape[0]
        if self.use_u_prev:
            if U_prev is None:
                raise ValueError(
                    f"U_prev of shape ({N}, {self.nu}) is required because this MPC uses u_prev"
                )
            U_prev = as_array("U_prev", U_prev, (N, self.nu))
        out: dict[str, list] = {
            k: []
            for k in [
                "actions",
                "values",
                "d_action_d_phi",
                "d_action_d_state",
                "d_value_d_phi",
                "d_value_d_state",
            ]
        }
        if self.use_u_prev:
            out["d_action_d_u_prev"] = []
        for i in range(N):
            try:
                sens = self.policy_sensitivity(
                    S[i], phi, u_prev=None if U_prev is None else U_prev[i], warm_start=warm_start
                )
            except MPCSolveError as exc:
                exc.index = i
                raise
            out["actions"].append(sens.result.action)
            out["values"].append(sens.result.value)
            out["d_action_d_phi"].append(sens.d_action_d_phi)
            out["d_action_d_state"].append(sens.d_action_d_state)
            out["d_value_d_phi"].append(sens.d_value_d_phi)
            out["d_value_d_state"].append(sens.d_value_d_state)
            if self.use_u_prev:
                out["d_action_d_u_prev"].append(sens.d_action_d_u_prev)
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}

    # ---------------------------------------------------------------------------------------
    # the prediction model
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
        phiv = self._phi_vec(phi)
        key = ("step", k)
        if key not in self._built:
            self._built[key] = {"fn": self._make_step(k)}
        return np.asarray(self._built[key]["fn"](x, u, phiv), dtype=float).ravel()

    def _param_dict(self, ps: ca.MX) -> _Params:
        """The callables' ``p``: name -> MX of the declared shape, sliced from the flat ``ps``."""
        pdict = _Params()
        for name, (sl, shape) in self.phi_slices.items():
            seg = ps[sl.start : sl.stop]
            pdict[name] = ca.reshape(seg, shape[1], shape[0]).T if len(shape) == 2 else seg
        return pdict

    def constraint_violation(
        self, x: Any, u: Any = None, phi: Any = None, *, u_prev: Any = None
    ) -> float:
        """The largest violation of the hard path constraints by a state (and input).

        Measures what the plant did, not what the MPC planned: the state bounds ``x_lb``,
        ``x_ub`` at ``x``; with ``u``, also the input bounds and ``ineq_constraints`` at stage 0
        (``h(x, u, p, 0) <= 0``). Used by :func:`closed_loop`.

        Parameters
        ----------
        x : array_like, shape (nx,)
        u : array_like, shape (nu,), optional
        phi : dict or array_like, optional
            Needed when ``ineq_constraints`` use parameters.
        u_prev : array_like, shape (nu,), optional
            Needed when the MPC uses the previous input and has ``ineq_constraints``.

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
        if self._fns["ineq"] is None:
            return viol
        phiv = self._phi_vec(phi)
        if self.use_u_prev:
            if u_prev is None:
                raise ValueError(
                    f"u_prev (shape ({self.nu},)) is required: this MPC uses the previous input"
                )
            up = as_vector("u_prev", u_prev, self.nu)
        else:
            up = np.zeros(0)
        if "path_ineq" not in self._built:
            xs, us, ps = (
                ca.MX.sym("x", self.nx),
                ca.MX.sym("u", self.nu),
                ca.MX.sym("phi", self.n_phi),
            )
            ups = ca.MX.sym("u_prev", up.size)
            pdict = self._param_dict(ps)
            if self.use_u_prev:
                pdict["u_prev"] = ups
            fn = self._fns["ineq"]
            h = _column("ineq_constraints", _call(fn, (xs, us, pdict), 0, _accepts_stage(fn, 3)))
            self._built["path_ineq"] = {"fn": ca.Function("path_ineq", [xs, us, ups, ps], [h])}
        h = np.asarray(self._built["path_ineq"]["fn"](x, u, up, phiv), dtype=float).ravel()
        return max(viol, float(np.max(h, initial=0.0)))

    def _make_step(self, k: int) -> ca.Function:
        nx, nu = self.nx, self.nu
        xs, us, ps = ca.MX.sym("x", nx), ca.MX.sym("u", nu), ca.MX.sym("phi", self.n_phi)
        pdict = self._param_dict(ps)
        fn = self._fns["dynamics"]
        wk = _accepts_stage(fn, 3)

        def ode(xx):
            return _column("dynamics", _call(fn, (xx, us, pdict), k, wk), nx)

        if self.integrator == "discrete":
            xn = ode(xs)
        else:
            xn = _integrate(
                ode, xs, ca.vertcat(us, ps), self.dt, self.integrator, self.substeps, self.degree
            )
        return ca.Function("model_step", [xs, us, ps], [xn])

    def __repr__(self) -> str:
        return (
            f"MPC(nx={self.nx}, nu={self.nu}, horizon={self.horizon}, integrator={self.integrator!r}, "
            f"params={self.param_shapes})"
        )


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


_ON_FAILURE = ("raise", "record")


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
    phiv = mpc._phi_vec(phi)
    H = mpc.horizon
    states = np.empty((T + 1, mpc.nx))
    actions = np.empty((T, mpc.nu))
    values = np.full(T, np.nan)
    plans = np.full((T, H + 1, mpc.nx), np.nan)
    times = np.full(T, np.nan)
    iters = np.zeros(T, dtype=int)
    success = np.zeros(T, dtype=bool)
    statuses: list[str] = []
    failures: list[MPCSolveError] = []
    violations = np.zeros(T + 1)
    states[0] = x
    mpc.reset_warm_start()
    plan_u = np.tile(np.clip(0.0, mpc.u_lb, mpc.u_ub), (1, 1))  # fallback before any success
    age = 0
    for t in range(T):
        try:
            res = mpc.policy(x, phiv, u_prev=up, warm_start=warm_start)
        except MPCSolveError as exc:
            exc.index = t
            if on_failure == "raise":
                raise
            failures.append(exc)
            statuses.append(exc.status)
            iters[t] = exc.iterations
            age += 1
            u = plan_u[min(age, len(plan_u) - 1)]
        else:
            success[t] = True
            statuses.append(res.status)
            values[t], plans[t] = res.value, res.x_pred
            times[t], iters[t] = res.solve_time, res.iterations
            plan_u, age = res.u_pred, 0
            u = res.action
        a = np.clip(u + E[t], mpc.u_lb, mpc.u_ub)
        actions[t] = a
        violations[t] = mpc.constraint_violation(x, a, phiv, u_prev=up)
        x = as_vector("plant(x, u)", plant(x, a), mpc.nx)
        states[t + 1] = x
        up = a if mpc.use_u_prev else None
        if shift:
            mpc.shift_warm_start()
    violations[T] = mpc.constraint_violation(x)
    return ClosedLoop(
        states,
        actions,
        values,
        plans,
        times,
        iters,
        success=success,
        statuses=tuple(statuses),
        failures=tuple(failures),
        violations=violations,
    )


def check_mpc_options(
    options: Mapping[str, Any], name: str = "mpc_options", exclude: tuple[str, ...] = ()
) -> None:
    """Raise ValueError if ``options`` holds a keyword that :class:`MPC` does not take.

    For helpers that pass ``**options`` on to :class:`MPC` (``exclude``: keywords the helper
    sets itself), so that a misspelt option is named instead of ending in a TypeError.
    """
    allowed = [
        p
        for p in inspect.signature(MPC.__init__).parameters
        if p not in ("self", "nx", "nu", "horizon", *exclude)
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name} has unknown MPC options {unknown}; the options are {allowed}")


def linear_quadratic_mpc(
    nx: int, nu: int, horizon: int, terminal_cost: bool = True, **kwargs: Any
) -> MPC:
    """The linear-quadratic MPC whose model, weights and terminal weight are all parameters.

    ``Q^MPC(s, a) = min sum_k gamma^k (x_k^T Q x_k + u_k^T R u_k) + gamma^H x_H^T P x_H``
    subject to ``x_{k+1} = A x_k + B u_k``: the parameters are ``phi = {"A": (nx, nx),
    "B": (nx, nu), "Q": (nx, nx), "R": (nu, nu), "P": (nx, nx)}`` (no ``"P"`` with
    ``terminal_cost=False``). With ``P`` from the Riccati equation and no active constraints,
    ``-Q^MPC`` is the optimal Q-function ``Q*`` for every horizon (the chapter
    "MPC as a function approximator" checks it).

    Parameters
    ----------
    nx, nu, horizon : int
    terminal_cost : bool
        Include the terminal weight ``P``.
    **kwargs
        Passed to :class:`MPC` (bounds, constraints, ``discount``, ``ipopt_options``, ...).
        Extra ``params`` are merged with the ones above and reach the callables as usual.
    """
    nx = check_positive_int("nx", nx)
    nu = check_positive_int("nu", nu)
    check_mpc_options(kwargs, "kwargs", exclude=("dynamics", "stage_cost", "terminal_cost"))
    params = {"A": (nx, nx), "B": (nx, nu), "Q": (nx, nx), "R": (nu, nu)}
    if terminal_cost:
        params["P"] = (nx, nx)
    extra = dict(kwargs.pop("params", None) or {})
    clash = sorted(set(extra) & set(params))
    if clash:
        raise ValueError(f"params must not redefine the linear-quadratic parameters {clash}")
    params.update(extra)
    return MPC(
        nx,
        nu,
        horizon,
        dynamics=lambda x, u, p: ca.mtimes(p["A"], x) + ca.mtimes(p["B"], u),
        stage_cost=lambda x, u, p: ca.bilin(p["Q"], x, x) + ca.bilin(p["R"], u, u),
        terminal_cost=(lambda x, p: ca.bilin(p["P"], x, x)) if terminal_cost else None,
        params=params,
        **kwargs,
    )
