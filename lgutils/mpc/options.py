"""What an MPC is made of, as a few small dataclasses: model, cost, constraints, bounds, solver.

:class:`lgutils.mpc.MPC` takes one of each (``MPC(model, cost, horizon, ...)``), and
:class:`lgutils.mpc.ScenarioMPC` reuses the same ones. The callables receive CasADi symbols:
``x`` of shape (nx, 1), ``u`` of shape (nu, 1), ``p`` a dict name -> symbol of each declared
parameter (vectors are columns, scalars 1x1) and, when the callable accepts one more
positional argument, the stage index ``k`` (a Python int).

Every dataclass checks its own fields when it is made, so a misspelt or misshapen option is
named where it is written; checks that need the dimensions (bound lengths, penalty lengths)
happen when the MPC is built.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lgutils.core.validate import as_array, as_vector, check_in_open_interval, check_positive_int

__all__ = [
    "Model",
    "Cost",
    "Constraints",
    "Bounds",
    "SolverOptions",
    "Params",
    "INTEGRATORS",
    "METHODS",
    "QPSOL_DEFAULTS",
    "PRIMAL_DUAL_WARM_START",
]

#: How ``Model.dynamics`` becomes the prediction model.
INTEGRATORS = ("discrete", "rk4", "collocation")

#: How the problem is solved (``SolverOptions.method``): IPOPT, or a QP solver for QPs.
METHODS = ("nlp", "qp")

#: Default options of CasADi's conic plugins for ``SolverOptions(method="qp")``. DAQP needs a
#: strictly convex problem unless its proximal-point iterations are on (``eps_prox > 0``); the
#: multiple-shooting QP is only convex (no cost on ``x_H``, slacks with linear penalties), so a
#: proximal weight with a tight fixed-point tolerance and a tight primal tolerance make its
#: solution exact to about 1e-12 on case study B (``eps_prox=1e-8`` was too small: solutions of
#: soft-constrained problems stopped short of optimal). The others are silenced.
QPSOL_DEFAULTS: dict[str, dict[str, Any]] = {
    "daqp": {"daqp": {"eps_prox": 1e-5, "eta_prox": 1e-14, "primal_tol": 1e-10}},
    "qrqp": {"print_iter": False, "print_header": False, "print_info": False},
    "qpoases": {"printLevel": "none"},
    "osqp": {"osqp": {"verbose": False, "eps_abs": 1e-10, "eps_rel": 1e-10, "polishing": True}},
    "ipqp": {"print_iter": False, "print_header": False, "print_info": False},
}

#: IPOPT options for a primal-dual warm start (pass as ``SolverOptions(warm_ipopt=...)``, so
#: that they apply to the solves that start from a stored solution): start from the stored
#: primal-dual solution with a small barrier parameter instead of IPOPT's ``mu_init=0.1``.
PRIMAL_DUAL_WARM_START: dict[str, Any] = {
    "warm_start_init_point": "yes",
    "mu_init": 1e-5,
    "warm_start_bound_push": 1e-9,
    "warm_start_bound_frac": 1e-9,
    "warm_start_slack_bound_push": 1e-9,
    "warm_start_slack_bound_frac": 1e-9,
    "warm_start_mult_bound_push": 1e-9,
}


def _callable(name: str, fn: Any, required: bool = False) -> None:
    if fn is None and not required:
        return
    if not callable(fn):
        kind = "callable" if required else "callable or None"
        raise ValueError(f"{name} must be {kind}, got {type(fn).__name__}")


def _options(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{name} must be a dict of option name -> value, got {type(value).__name__}"
        )
    return dict(value)


@dataclass(frozen=True)
class Model:
    """The prediction model ``x_{k+1} = f(x_k, u_k, p[, k])`` (or ``dx/dt = f(...)``).

    Parameters
    ----------
    nx, nu : int
        State and input dimensions.
    dynamics : callable
        ``dynamics(x, u, p[, k])``: the next state (``integrator="discrete"``) or ``dx/dt``
        (``"rk4"``, ``"collocation"``), a CasADi expression of shape (nx, 1).
    integrator : {"discrete", "rk4", "collocation"}
        ``"collocation"`` is orthogonal collocation on Radau points of degree ``degree``, one
        finite element per step (the collocation states become decision variables, as in
        do-mpc; the last Radau point is the end of the interval, so its state is ``x_{k+1}``
        itself, not a copy).
    dt : float, optional
        Sampling time, required for continuous-time dynamics.
    substeps : int
        RK4 sub-steps per sampling interval.
    degree : int
        Collocation degree (do-mpc's CSTR uses 2).
    """

    nx: int
    nu: int
    dynamics: Callable
    integrator: str = "discrete"
    dt: float | None = None
    substeps: int = 1
    degree: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "nx", check_positive_int("nx", self.nx))
        object.__setattr__(self, "nu", check_positive_int("nu", self.nu))
        _callable("dynamics", self.dynamics, required=True)
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {INTEGRATORS}, got {self.integrator!r}")
        if self.dt is None and self.integrator != "discrete":
            raise ValueError(f"dt must be given for integrator={self.integrator!r}, got None")
        if self.dt is not None:
            object.__setattr__(self, "dt", check_in_open_interval("dt", self.dt, 0.0, np.inf))
        object.__setattr__(self, "substeps", check_positive_int("substeps", self.substeps))
        object.__setattr__(self, "degree", check_positive_int("degree", self.degree))


@dataclass(frozen=True)
class Cost:
    r"""The objective ``sum_k gamma^k l(x_k, u_k) + gamma^H V(x_H) + sum_k ||u_k - u_{k-1}||^2_W``.

    Parameters
    ----------
    stage : callable
        ``stage(x, u, p[, k])`` -> scalar ``l``.
    terminal : callable, optional
        ``terminal(x, p)`` -> scalar ``V`` (any CasADi expression, e.g. a neural network).
    discount : float
        ``gamma`` in (0, 1]: stage ``k`` costs are weighted by ``gamma^k``, the terminal cost by
        ``gamma^H``. Penalties of moves and slacks are not discounted.
    move_weight : array_like, shape (nu,) or (nu, nu), optional
        Input-move penalty ``W`` with ``u_{-1} = u_prev`` (implies ``use_u_prev``). A vector
        means ``diag(W)``.
    use_u_prev : bool
        Make the previously applied input an argument ``u_prev`` of every evaluation; stage
        callables find the input of the previous stage in ``p["u_prev"]`` (``u_prev`` at
        ``k = 0``, ``u_{k-1}`` afterwards).
    terminal_derivatives : callable, optional
        ``terminal_derivatives(x, p)`` -> ``(gradient, hessian)`` of ``terminal`` with respect to
        ``x``, shapes (nx, 1) and (nx, nx), in closed form. A speed device for a terminal cost
        whose automatic second derivatives are expensive (a neural network in ``MX``): IPOPT's
        derivative functions then take the terminal cost's from it and the rest of the NLP
        expanded to ``SX``; the value, and every other use of the NLP (sensitivities), still
        come from ``terminal``. The two must agree; test it (``tests/test_vfmpc.py`` does for
        case study A).
    """

    stage: Callable
    terminal: Callable | None = None
    discount: float = 1.0
    move_weight: Any = None
    use_u_prev: bool = False
    terminal_derivatives: Callable | None = None

    def __post_init__(self) -> None:
        _callable("stage", self.stage, required=True)
        _callable("terminal", self.terminal)
        _callable("terminal_derivatives", self.terminal_derivatives)
        if self.terminal_derivatives is not None and self.terminal is None:
            raise ValueError("terminal_derivatives needs a terminal cost, got terminal=None")
        gamma = check_in_open_interval("discount", self.discount, 0.0, 1.0, closed_high=True)
        object.__setattr__(self, "discount", gamma)
        if self.move_weight is not None:
            object.__setattr__(self, "use_u_prev", True)
        else:
            object.__setattr__(self, "use_u_prev", bool(self.use_u_prev))

    def move_matrix(self, nu: int) -> np.ndarray | None:
        """The move penalty as a PSD matrix of shape (nu, nu), or None."""
        if self.move_weight is None:
            return None
        W = as_array("move_weight", self.move_weight)
        if W.shape == (nu,) or (W.ndim == 0 and nu == 1):
            W = np.diag(np.atleast_1d(W))
        if W.shape != (nu, nu):
            raise ValueError(f"move_weight must have shape ({nu},) or ({nu}, {nu}), got {W.shape}")
        if np.min(np.linalg.eigvalsh(0.5 * (W + W.T))) < -1e-12:
            raise ValueError("move_weight must be positive semidefinite")
        return W


@dataclass(frozen=True)
class Constraints:
    """Path and terminal constraints, hard and soft, and the penalties of the soft ones.

    Parameters
    ----------
    eq, ineq, soft : callable, optional
        ``g(x, u, p[, k]) = 0``, ``h(x, u, p[, k]) <= 0`` (hard) and ``h_soft(x, u, p[, k]) <=
        sigma_k`` (softened by slacks ``sigma_k >= 0``), for ``k = 0..H-1``. A hard row that, at
        ``k = 0``, involves only fixed data (``s``, ``a``, ``u_prev``, ``phi``) is checked before
        the solve instead of being handed to IPOPT (it has no degrees of freedom).
    terminal_eq, terminal_ineq, terminal_soft : callable, optional
        The same for ``x_H``: ``c(x, p)``.
    soft_linear, soft_quadratic : float or array_like
        Penalties ``w_1, w_2 >= 0`` of ``w_1^T sigma_k + sigma_k^T diag(w_2) sigma_k`` (scalar,
        or one per soft row; a vector must fit every stage).
    terminal_soft_linear, terminal_soft_quadratic : float or array_like, optional
        Penalties of the terminal slacks (default: the stage ones).
    """

    eq: Callable | None = None
    ineq: Callable | None = None
    soft: Callable | None = None
    terminal_eq: Callable | None = None
    terminal_ineq: Callable | None = None
    terminal_soft: Callable | None = None
    soft_linear: Any = 0.0
    soft_quadratic: Any = 0.0
    terminal_soft_linear: Any = None
    terminal_soft_quadratic: Any = None

    def __post_init__(self) -> None:
        for name in ("eq", "ineq", "soft", "terminal_eq", "terminal_ineq", "terminal_soft"):
            _callable(name, getattr(self, name))

    def penalty(self, name: str, n: int) -> np.ndarray:
        """Penalty ``name`` (e.g. ``"soft_linear"``) for ``n`` soft rows, shape (n,).

        The terminal penalties default to the stage ones.
        """
        value = getattr(self, name)
        if value is None:  # terminal_* not given
            value = getattr(self, name.removeprefix("terminal_"))
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


@dataclass(frozen=True)
class Bounds:
    """Box bounds, as bounds of the decision variables (IPOPT keeps them without slacks).

    Parameters
    ----------
    u_lb, u_ub : array_like, shape (nu,), optional
        Input bounds on ``u_0..u_{H-1}`` (``-inf``/``inf`` allowed; a scalar applies to all).
    x_lb, x_ub : array_like, shape (nx,), optional
        State bounds on ``x_1..x_H`` (``x_0 = s`` is data).
    terminal : bool
        Also bound ``x_H`` (default). With False the state bounds hold on ``x_1..x_{H-1}`` only
        (do-mpc's default, ``use_terminal_bounds=False``).
    """

    u_lb: Any = None
    u_ub: Any = None
    x_lb: Any = None
    x_ub: Any = None
    terminal: bool = True

    def arrays(self, nx: int, nu: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(u_lb, u_ub, x_lb, x_ub)`` as arrays of the right length, checked."""
        u_lb = _bound("u_lb", self.u_lb, nu, -np.inf)
        u_ub = _bound("u_ub", self.u_ub, nu, np.inf)
        x_lb = _bound("x_lb", self.x_lb, nx, -np.inf)
        x_ub = _bound("x_ub", self.x_ub, nx, np.inf)
        for lo, hi, nm in [(u_lb, u_ub, "u"), (x_lb, x_ub, "x")]:
            if np.any(lo > hi):
                raise ValueError(f"{nm}_lb must be <= {nm}_ub elementwise, got {lo} and {hi}")
        return u_lb, u_ub, x_lb, x_ub


def _bound(name: str, value: Any, n: int, fill: float) -> np.ndarray:
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


@dataclass(frozen=True)
class SolverOptions:
    """How the problem is solved: IPOPT or a QP solver, warm starts and the cold-start guess.

    Parameters
    ----------
    ipopt : dict, optional
        IPOPT options (merged over ``print_level=0, sb="yes"``).
    warm_ipopt : dict, optional
        IPOPT options merged over ``ipopt`` for the solves that start from a stored solution,
        e.g. :data:`PRIMAL_DUAL_WARM_START`. Such solves use a second IPOPT instance, built on
        first use; cold solves keep ``ipopt``.
    nlpsol : dict, optional
        Options of CasADi's ``nlpsol`` (merged over ``expand=True, print_time=False``).
    warm_start : bool
        Start each solve from the previous solution of the same kind (policy or Q).
    initial_guess : dict, optional
        Cold-start guess ``{"u": (nu,) or (H, nu), "x": (nx,) or (H, nx)}``; default ``u = 0``
        clipped to the bounds and ``x = s``.
    method : {"nlp", "qp"}
        ``"nlp"`` (default): IPOPT through CasADi's ``nlpsol``, for any problem. ``"qp"``: a QP
        solver through CasADi's ``conic`` (:mod:`lgutils.mpc.qp`), for problems whose cost is
        quadratic and whose dynamics and constraints are linear in the decision variables
        (checked when the MPC is built; a ValueError names what is not). IPOPT's options, warm
        starts and the initial guess do not apply to it (``nlpsol={"expand": False}`` still
        keeps its CasADi functions unexpanded).
    qpsol : str
        CasADi's conic plugin for ``method="qp"``: ``"daqp"`` (default, a dual active-set
        solver), ``"qrqp"`` (CasADi's own active-set solver), ``"qpoases"``, ``"osqp"``,
        ``"proxqp"``, ...
    qpsol_options : dict, optional
        Options of the conic plugin, merged over :data:`QPSOL_DEFAULTS` (one level deep, so
        ``{"daqp": {"iter_limit": 100}}`` keeps the other defaults of ``"daqp"``).
    """

    ipopt: Mapping[str, Any] | None = None
    warm_ipopt: Mapping[str, Any] | None = None
    nlpsol: Mapping[str, Any] | None = None
    warm_start: bool = True
    initial_guess: Mapping[str, Any] | None = None
    method: str = "nlp"
    qpsol: str = "daqp"
    qpsol_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("ipopt", "warm_ipopt", "nlpsol", "qpsol_options"):
            object.__setattr__(self, name, _options(name, getattr(self, name)))
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not isinstance(self.qpsol, str) or not self.qpsol:
            raise ValueError(f"qpsol must be the name of a CasADi conic plugin, got {self.qpsol!r}")
        object.__setattr__(self, "warm_start", bool(self.warm_start))
        guess = self.initial_guess
        if guess is not None and not isinstance(guess, Mapping):
            raise ValueError(
                f"initial_guess must be a dict with keys 'u' and/or 'x', got {type(guess).__name__}"
            )
        unknown = set(guess or {}) - {"u", "x"}
        if unknown:
            raise ValueError(
                f"initial_guess keys must be 'u' and/or 'x', got unknown {sorted(unknown)}"
            )

    def nlpsol_options(self, warm: bool = False) -> dict[str, Any] | None:
        """The options handed to ``casadi.nlpsol`` (None for the warm instance when not set)."""
        if warm and not self.warm_ipopt:
            return None
        ipopt = {"print_level": 0, "sb": "yes", **self.ipopt}
        if warm:
            ipopt.update(self.warm_ipopt)
        opts: dict[str, Any] = {
            "expand": True,
            "print_time": False,
            "clip_inactive_lam": True,
            "error_on_fail": False,
            # least-squares solve of the sensitivity KKT system: exact where it is regular;
            # where degenerate active constraints make it singular it returns the least-squares
            # solution (CasADi's default "qr" then returns zeros)
            "sens_linsol": "lsqr",
            # the parameter gradient of the Lagrangian costs a sweep over the whole NLP after
            # every solve; it is computed only where the sensitivities use it
            "calc_lam_p": False,
        }
        opts.update(self.nlpsol)
        opts["ipopt"] = ipopt
        return opts

    def conic_options(self) -> dict[str, Any]:
        """The options handed to ``casadi.conic`` for ``method="qp"``.

        ``error_on_fail=False`` (a failed solve is reported by :mod:`lgutils.mpc.qp`), the
        plugin's :data:`QPSOL_DEFAULTS`, then ``qpsol_options`` (dict values merged one level
        deep).
        """
        opts: dict[str, Any] = {"error_on_fail": False}
        for extra in (QPSOL_DEFAULTS.get(self.qpsol, {}), self.qpsol_options):
            for key, value in extra.items():
                if isinstance(value, Mapping) and isinstance(opts.get(key), Mapping):
                    opts[key] = {**opts[key], **value}
                else:
                    opts[key] = dict(value) if isinstance(value, Mapping) else value
        return opts


@dataclass(frozen=True)
class Params:
    """The learnable parameters ``phi``: name -> shape, and optional default values.

    ``Params({"A": (4, 4), "B": (4, 1), "r": ()})``; values are passed at solve time as
    ``phi={"A": ..., ...}`` or as one flat vector (names in this order, each raveled row-major).
    A plain dict of shapes may be given to the MPC instead of a ``Params``.
    """

    shapes: Mapping[str, Any] = field(default_factory=dict)
    default: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.shapes, Mapping):
            raise ValueError(
                f"params must map names to shapes, e.g. {{'A': (2, 2)}}, got {type(self.shapes).__name__}"
            )
        shapes = {}
        for name, shape in self.shapes.items():
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
            shapes[name] = shape
        object.__setattr__(self, "shapes", shapes)
        # the layout, computed once: flatten() runs at every solve
        out, offset = {}, 0
        for name, shape in shapes.items():
            size = int(np.prod(shape)) if shape else 1
            out[name] = (slice(offset, offset + size), shape)
            offset += size
        object.__setattr__(self, "_layout", (out, offset))

    @property
    def names(self) -> list[str]:
        """The parameter names, in flat order."""
        return list(self.shapes)

    @property
    def size(self) -> int:
        """Length of the flat vector."""
        return self._layout[1]

    def slices(self) -> dict[str, tuple[slice, tuple[int, ...]]]:
        """Name -> (slice of the flat vector, shape)."""
        return dict(self._layout[0])

    def flatten(self, phi: Any, name: str = "phi") -> np.ndarray:
        """The values as one flat vector of shape ``(size,)``.

        Parameters
        ----------
        phi : dict or array_like
            A dict name -> value (each of its declared shape) or a flat vector of length
            ``size`` (names in declaration order, each raveled row-major).
        name : str
            What to call ``phi`` in error messages.

        Raises
        ------
        ValueError
            Unknown or missing names, wrong shapes, wrong length or non-finite values; the
            message names them.
        """
        n = self.size
        if not isinstance(phi, Mapping):
            vec = np.asarray(as_array(name, phi), dtype=float).ravel() if n else np.zeros(0)
            if vec.shape != (n,):
                raise ValueError(
                    f"{name} must be a dict with keys {self.names} or a flat vector of length {n}, "
                    f"got shape {np.shape(phi)}"
                )
            return vec
        unknown = [k for k in phi if k not in self.shapes]
        if unknown:
            raise ValueError(
                f"{name} has unknown parameter names {unknown}; this MPC's parameters are {self.names}"
            )
        missing = [k for k in self.shapes if k not in phi]
        if missing:
            raise ValueError(
                f"{name} lacks the parameters {missing} (expected all of {self.names})"
            )
        out = np.empty(n)
        for key, (sl, shape) in self.slices().items():
            try:
                val = np.asarray(phi[key], dtype=float)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}[{key!r}] must be numeric, got {phi[key]!r}") from exc
            if shape == () and val.size == 1:
                val = val.reshape(())
            if val.shape != shape:
                raise ValueError(f"{name}[{key!r}] must have shape {shape}, got shape {val.shape}")
            if not np.all(np.isfinite(val)):
                raise ValueError(f"{name}[{key!r}] must be finite, got {val!r}")
            out[sl] = val.ravel()
        return out

    def unflatten(self, vec: Any) -> dict[str, np.ndarray]:
        """Inverse of :meth:`flatten`: a dict name -> array of the declared shape."""
        vec = as_vector("vec", vec, self.size) if self.size else np.zeros(0)
        return {k: vec[sl].reshape(shape).copy() for k, (sl, shape) in self.slices().items()}
