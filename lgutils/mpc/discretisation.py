"""From an ODE to a prediction model: Runge-Kutta 4 and Radau collocation (do-mpc's scheme)."""

from __future__ import annotations

from collections.abc import Callable

import casadi as ca
import numpy as np

from lgutils.core.validate import check_in_open_interval, check_positive_int
from lgutils.mpc.symbols import column

__all__ = ["collocation_coefficients", "discretize", "integrate"]


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
    xn = integrate(
        lambda xx: column("dynamics", dynamics(xx, us, ps), nx),
        xs,
        ca.vertcat(us, ps),
        dt,
        method,
        substeps,
        degree,
    )
    return ca.Function("F", [xs, us, ps], [xn], ["x", "u", "p"], ["x_next"])


def integrate(
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
