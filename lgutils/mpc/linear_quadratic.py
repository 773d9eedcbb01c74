"""The linear-quadratic MPC whose model, weights and terminal weight are all parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import casadi as ca

from lgutils.core.validate import check_positive_int
from lgutils.mpc.controller import MPC
from lgutils.mpc.options import Bounds, Constraints, Cost, Model, Params, SolverOptions

__all__ = ["linear_quadratic_mpc"]


def linear_quadratic_mpc(
    nx: int,
    nu: int,
    horizon: int,
    *,
    terminal_cost: bool = True,
    discount: float = 1.0,
    move_weight: Any = None,
    params: Params | Mapping[str, Any] | None = None,
    constraints: Constraints | None = None,
    bounds: Bounds | None = None,
    solver: SolverOptions | None = None,
) -> MPC:
    """``Q^MPC(s, a) = min sum_k gamma^k (x_k^T Q x_k + u_k^T R u_k) + gamma^H x_H^T P x_H``.

    Subject to ``x_{k+1} = A x_k + B u_k``: the parameters are ``phi = {"A": (nx, nx),
    "B": (nx, nu), "Q": (nx, nx), "R": (nu, nu), "P": (nx, nx)}`` (no ``"P"`` with
    ``terminal_cost=False``). With ``P`` from the Riccati equation and no active constraints,
    ``-Q^MPC`` is the optimal Q-function ``Q*`` for every horizon (the chapter "MPC as a
    function approximator" checks it).

    Parameters
    ----------
    nx, nu, horizon : int
    terminal_cost : bool
        Include the terminal weight ``P``.
    discount : float
        ``gamma`` in (0, 1].
    move_weight : array_like, optional
        Input-move penalty, as in :class:`lgutils.mpc.Cost` (the MPC then takes ``u_prev``).
    params : Params or dict, optional
        Extra parameters (for the constraints), merged after the linear-quadratic ones.
    constraints, bounds, solver
        As in :class:`lgutils.mpc.MPC`.
    """
    nx = check_positive_int("nx", nx)
    nu = check_positive_int("nu", nu)
    shapes = {"A": (nx, nx), "B": (nx, nu), "Q": (nx, nx), "R": (nu, nu)}
    if terminal_cost:
        shapes["P"] = (nx, nx)
    extra = params if isinstance(params, Params) else Params(params or {})
    clash = sorted(set(extra.shapes) & set(shapes))
    if clash:
        raise ValueError(f"params must not redefine the linear-quadratic parameters {clash}")
    return MPC(
        Model(nx, nu, dynamics=lambda x, u, p: ca.mtimes(p["A"], x) + ca.mtimes(p["B"], u)),
        Cost(
            stage=lambda x, u, p: ca.bilin(p["Q"], x, x) + ca.bilin(p["R"], u, u),
            terminal=(lambda x, p: ca.bilin(p["P"], x, x)) if terminal_cost else None,
            discount=discount,
            move_weight=move_weight,
        ),
        horizon,
        params=Params({**shapes, **extra.shapes}, default=extra.default),
        constraints=constraints,
        bounds=bounds,
        solver=solver,
    )
