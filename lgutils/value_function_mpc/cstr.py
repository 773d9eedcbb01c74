"""The Klatt-Engell continuous stirred tank reactor (CSTR) of case study A (paper Sec. V.A).

The model is do-mpc's CSTR example (Fiedler et al., 2023, paper ref. [52]), in do-mpc's units:

- states ``x = (c_A, c_B, T_R, T_K)``: concentrations of A and B [mol/l], reactor and jacket
  temperatures [deg C];
- inputs ``u = (F, Qdot)``: feed flow per reactor volume [1/h] and jacket heat flow [kJ/h];
- uncertain parameters ``alpha`` (scales the activation energy of A -> D) and ``beta``
  (scales the pre-exponential factor of A -> B), nominal 1.

The RL agent works in scaled *agent units* ``a = (F / 10, Qdot / 1000)``, so ``F`` in
``[0.5, 10]`` and ``Qdot`` in ``[-8.5, 0]``.

Plant integration
-----------------
:func:`plant_step` integrates one sampling interval ``t_step = 0.005 h`` with zero-order-hold
inputs, either with CasADi's CVODES at ``abstol = reltol = 1e-10`` (the reference plant, as in
do-mpc) or with classical RK4 on ``substeps`` equal sub-intervals (the fast default of the
environment). Measured error of RK4 against CVODES (2,000 random states in the box
``[0.1, 0.1, 50, 50]``--``[2, 2, 140, 140]``, random inputs within the bounds, alpha and beta
from the training sets and 1, one step): largest absolute error ``2.0e-5`` mol/l in the
concentrations and ``3.9e-4`` deg C in the temperatures with ``substeps=4``, and ``4.6e-7``
mol/l and ``8.9e-6`` deg C with ``substeps=10`` (the default, 0.14 ms per step in pure Python
against 0.43 ms for CVODES). CVODES at 1e-10 itself differs from CVODES at 1e-12 by up to
``7e-9`` mol/l and ``4e-7`` deg C. Both are far below anything the figures can show. The
test ``tests/test_cstr.py`` re-measures it against CVODES and against scipy's Radau solver.

Agent units and the networks' input
-----------------------------------
The environment :class:`lgutils.value_function_mpc.env.CSTREnv` and the agents of
:mod:`lgutils.value_function_mpc.agents` share the conversions defined here:
:func:`action_to_input`, :func:`network_input` (the networks see
``s = (c_B, g, c_A, T_R/100, T_K/100)``), :func:`error_input` (the reference's
``z = (c_A, c_B, T_R, T_K, g - c_B)``), the reward shape :func:`goal_reward` and the box
excess :func:`violation`. :func:`simulate` and :func:`closed_loop` run a policy on the plant
(on :func:`lgutils.core.rollout.rollout`, the book's one closed loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import casadi as ca
import numpy as np

from lgutils.core.rollout import Rollout, rollout
from lgutils.core.validate import as_array, as_vector, check_positive_int

__all__ = [
    "PARAMS",
    "T_STEP",
    "X_LOW",
    "X_HIGH",
    "U_LOW",
    "U_HIGH",
    "A_LOW",
    "A_HIGH",
    "GOALS",
    "ALPHA_TRAIN",
    "BETA_TRAIN",
    "ALPHA_SCENARIOS",
    "BETA_SCENARIOS",
    "X0_FIG3",
    "GOAL_FIG3",
    "REWARD_WIDTH",
    "A_SCALE",
    "T_SCALE",
    "rhs",
    "plant_step",
    "cvodes_step",
    "rk4_step",
    "rk4_floats",
    "closed_loop",
    "simulate",
    "action_to_input",
    "input_to_action",
    "network_input",
    "error_input",
    "goal_reward",
    "violation",
]

#: Model constants of do-mpc's CSTR example (Klatt & Engell), in do-mpc's units.
PARAMS: dict[str, float] = {
    "k0_AB": 1.287e12,  # 1/h
    "k0_BC": 1.287e12,  # 1/h
    "k0_AD": 9.043e9,  # l/(mol h)
    "E_AB": 9758.3,  # K (activation energy / R)
    "E_BC": 9758.3,  # K
    "E_AD": 8560.0,  # K
    "dH_AB": 4.2,  # kJ/mol
    "dH_BC": -11.0,  # kJ/mol
    "dH_AD": -41.85,  # kJ/mol
    "rho": 0.9342,  # kg/l
    "c_p": 3.01,  # kJ/(kg K)
    "c_pK": 2.0,  # kJ/(kg K)
    "A_R": 0.215,  # m^2
    "V_R": 10.01,  # l
    "m_K": 5.0,  # kg
    "T_in": 130.0,  # deg C
    "K_w": 4032.0,  # kJ/(h m^2 K)
    "c_A0": (5.7 + 4.5) / 2.0,  # mol/l
}

#: Sampling time [h].
T_STEP: float = 0.005
#: The constraint box of the states (c_A, c_B [mol/l], T_R, T_K [deg C]), also the x0 box.
X_LOW = np.array([0.1, 0.1, 50.0, 50.0])
X_HIGH = np.array([2.0, 2.0, 140.0, 140.0])
#: Input bounds in do-mpc units (F [1/h], Qdot [kJ/h]).
U_LOW = np.array([5.0, -8500.0])
U_HIGH = np.array([100.0, 0.0])
#: Scale from agent units to do-mpc units: u = a * A_SCALE.
A_SCALE = np.array([10.0, 1000.0])
#: Input bounds in agent units (F / 10, Qdot / 1000).
A_LOW = U_LOW / A_SCALE
A_HIGH = U_HIGH / A_SCALE
#: Training goals for c_B [mol/l].
GOALS = np.array([0.6, 0.7, 0.8])
#: "Missing truth" training sets: 10 values evenly spaced, nominal 1 not among them.
ALPHA_TRAIN = np.linspace(0.95, 1.05, 10)
BETA_TRAIN = np.linspace(0.9, 1.1, 10)
#: Scenario values of the robust multi-stage MPC (3 x 3 = 9 scenarios).
ALPHA_SCENARIOS = np.array([1.0, 1.05, 0.95])
BETA_SCENARIOS = np.array([1.0, 1.1, 0.9])
#: Initial state and target of Fig. 3.
X0_FIG3 = np.array([0.8, 0.3, 100.14, 100.0])
GOAL_FIG3: float = 0.65
#: Width of the Gaussian reward in c_B [mol/l].
REWARD_WIDTH: float = 0.01
#: Observation scaling of the temperatures (do-mpc's scaling): the networks see T / T_SCALE.
T_SCALE: float = 100.0

_P = PARAMS
_KELVIN = 273.15
# Derived constants of the energy balances.
_RHO_CP = _P["rho"] * _P["c_p"]  # kJ/(l K)
_KA = _P["K_w"] * _P["A_R"]  # kJ/(h K)
_MK_CPK = _P["m_K"] * _P["c_pK"]  # kJ/K
# The constants of the right-hand side as names (a dict lookup per use costs more than the
# arithmetic in RK4's inner loop); the same floats, so the results are the same to the bit.
_K0_AB, _K0_BC, _K0_AD = _P["k0_AB"], _P["k0_BC"], _P["k0_AD"]
_NEG_E_AB, _NEG_E_BC, _E_AD = -_P["E_AB"], -_P["E_BC"], _P["E_AD"]
_DH_AB, _DH_BC, _DH_AD = _P["dH_AB"], _P["dH_BC"], _P["dH_AD"]
_C_A0, _T_IN = _P["c_A0"], _P["T_in"]
_NEG_RHO_CP = -_RHO_CP  # kJ/(l K)
_RHO_CP_V = _RHO_CP * _P["V_R"]  # kJ/K


def _is_casadi(v: Any) -> bool:
    return isinstance(v, (ca.SX, ca.MX, ca.DM))


def rhs(x: Any, u: Any, alpha: Any = 1.0, beta: Any = 1.0) -> Any:
    """Continuous-time right-hand side ``dx/dt = f(x, u; alpha, beta)`` of the CSTR.

    Parameters
    ----------
    x : array_like, shape (4,) or (n, 4), or CasADi SX/MX/DM of shape (4, 1)
        States ``(c_A [mol/l], c_B [mol/l], T_R [deg C], T_K [deg C])``; a numpy batch has
        one state per row.
    u : array_like, shape (2,) or (n, 2), or CasADi of shape (2, 1)
        Inputs ``(F [1/h], Qdot [kJ/h])`` in do-mpc units.
    alpha, beta : float, array of shape (n,), or CasADi scalar
        Uncertain parameters (nominal 1).

    Returns
    -------
    numpy.ndarray of the shape of ``x``, or CasADi expression of shape (4, 1)
        ``(dc_A/dt, dc_B/dt [mol/(l h)], dT_R/dt, dT_K/dt [K/h])``. Numpy in, numpy out;
        CasADi in (any argument), CasADi out.
    """
    if any(_is_casadi(v) for v in (x, u, alpha, beta)):
        x = (
            ca.vec(x)
            if not isinstance(x, (list, tuple, np.ndarray))
            else ca.DM(np.asarray(x, float))
        )
        u = (
            ca.vec(u)
            if not isinstance(u, (list, tuple, np.ndarray))
            else ca.DM(np.asarray(u, float))
        )
        if x.shape != (4, 1):
            raise ValueError(f"x must have 4 entries, got shape {x.shape}")
        if u.shape != (2, 1):
            raise ValueError(f"u must have 2 entries, got shape {u.shape}")
        c_a, c_b, t_r, t_k = x[0], x[1], x[2], x[3]
        f, q = u[0], u[1]
        exp = ca.exp
        out = _rhs_terms(c_a, c_b, t_r, t_k, f, q, alpha, beta, exp)
        return ca.vertcat(*out)
    xa = as_array("x", x)
    ua = as_array("u", u)
    if xa.shape[-1:] != (4,) or xa.ndim > 2:
        raise ValueError(f"x must have shape (4,) or (n, 4), got shape {xa.shape}")
    if ua.shape[-1:] != (2,) or ua.ndim > 2:
        raise ValueError(f"u must have shape (2,) or (n, 2), got shape {ua.shape}")
    al = as_array("alpha", alpha)
    be = as_array("beta", beta)
    out = _rhs_terms(
        xa[..., 0], xa[..., 1], xa[..., 2], xa[..., 3], ua[..., 0], ua[..., 1], al, be, np.exp
    )
    return np.stack(np.broadcast_arrays(*out), axis=-1)


def _rhs_terms(c_a, c_b, t_r, t_k, f, q, alpha, beta, exp):
    """The four derivatives; works on floats, numpy arrays and CasADi expressions.

    Common subexpressions (``t_r + 273.15``, ``c_a**2``) are written out where they occur:
    sharing them would not change a value, but it would change the CasADi graphs and with
    them the order in which algorithmic differentiation sums derivatives.
    """
    k1 = beta * _K0_AB * exp(_NEG_E_AB / (t_r + _KELVIN))
    k2 = _K0_BC * exp(_NEG_E_BC / (t_r + _KELVIN))
    k3 = _K0_AD * exp(-alpha * _E_AD / (t_r + _KELVIN))
    dc_a = f * (_C_A0 - c_a) - k1 * c_a - k3 * c_a**2
    dc_b = -f * c_b + k1 * c_a - k2 * c_b
    dt_r = (
        (k1 * c_a * _DH_AB + k2 * c_b * _DH_BC + k3 * c_a**2 * _DH_AD) / _NEG_RHO_CP
        + f * (_T_IN - t_r)
        + _KA * (t_k - t_r) / _RHO_CP_V
    )
    dt_k = (q + _KA * (t_r - t_k)) / _MK_CPK
    return dc_a, dc_b, dt_r, dt_k


def rk4_step(
    x: np.ndarray,
    u: np.ndarray,
    alpha: float = 1.0,
    beta: float = 1.0,
    dt: float = T_STEP,
    substeps: int = 10,
) -> np.ndarray:
    """One zero-order-hold step of classical RK4 on ``substeps`` equal sub-intervals.

    Parameters
    ----------
    x : array_like, shape (4,)
        State (c_A, c_B [mol/l], T_R, T_K [deg C]).
    u : array_like, shape (2,)
        Input (F [1/h], Qdot [kJ/h]), held constant over the step.
    alpha, beta : float
        Uncertain parameters.
    dt : float
        Step length [h] (default 0.005).
    substeps : int
        Number of RK4 sub-intervals (default 10; see the module docstring for its error).

    Returns
    -------
    numpy.ndarray, shape (4,)
        The state after ``dt``.
    """
    x = as_vector("x", x, 4)
    u = as_vector("u", u, 2)
    substeps = check_positive_int("substeps", substeps)
    # x.tolist(): Python floats run the same IEEE operations as numpy scalars, 3x faster
    return np.array(
        rk4_floats(
            x.tolist(), float(u[0]), float(u[1]), float(alpha), float(beta), float(dt), substeps
        )
    )


def rk4_floats(
    x: Sequence[float],
    f: float,
    q: float,
    alpha: float,
    beta: float,
    dt: float,
    substeps: int,
) -> tuple[float, float, float, float]:
    """:func:`rk4_step` on plain floats, without checks (the environment's inner loop).

    Parameters
    ----------
    x : sequence of 4 floats
        State (c_A, c_B [mol/l], T_R, T_K [deg C]); Python floats (numpy scalars give the same
        result about three times slower).
    f, q : float
        Inputs F [1/h] and Qdot [kJ/h], held over the step.
    alpha, beta : float
        Uncertain parameters.
    dt : float
        Step length [h].
    substeps : int
        Number of RK4 sub-intervals.

    Returns
    -------
    tuple of 4 floats
        The state after ``dt``.
    """
    h = dt / substeps
    c_a, c_b, t_r, t_k = x
    rhs_, exp = _rhs_terms, math.exp
    for _ in range(substeps):
        a1, b1, r1, s1 = rhs_(c_a, c_b, t_r, t_k, f, q, alpha, beta, exp)
        a2, b2, r2, s2 = rhs_(
            c_a + 0.5 * h * a1,
            c_b + 0.5 * h * b1,
            t_r + 0.5 * h * r1,
            t_k + 0.5 * h * s1,
            f,
            q,
            alpha,
            beta,
            exp,
        )
        a3, b3, r3, s3 = rhs_(
            c_a + 0.5 * h * a2,
            c_b + 0.5 * h * b2,
            t_r + 0.5 * h * r2,
            t_k + 0.5 * h * s2,
            f,
            q,
            alpha,
            beta,
            exp,
        )
        a4, b4, r4, s4 = rhs_(
            c_a + h * a3, c_b + h * b3, t_r + h * r3, t_k + h * s3, f, q, alpha, beta, exp
        )
        c_a += h / 6.0 * (a1 + 2 * a2 + 2 * a3 + a4)
        c_b += h / 6.0 * (b1 + 2 * b2 + 2 * b3 + b4)
        t_r += h / 6.0 * (r1 + 2 * r2 + 2 * r3 + r4)
        t_k += h / 6.0 * (s1 + 2 * s2 + 2 * s3 + s4)
    return c_a, c_b, t_r, t_k


_CVODES_CACHE: dict[tuple[float, float], ca.Function] = {}


def _cvodes(dt: float, tol: float) -> ca.Function:
    key = (float(dt), float(tol))
    if key not in _CVODES_CACHE:
        x = ca.SX.sym("x", 4)
        p = ca.SX.sym("p", 4)  # F, Qdot, alpha, beta
        dae = {"x": x, "p": p, "ode": rhs(x, p[:2], p[2], p[3])}
        opts = {"abstol": tol, "reltol": tol, "max_num_steps": 100000}
        _CVODES_CACHE[key] = ca.integrator("cstr_cvodes", "cvodes", dae, 0.0, float(dt), opts)
    return _CVODES_CACHE[key]


def cvodes_step(
    x: np.ndarray,
    u: np.ndarray,
    alpha: float = 1.0,
    beta: float = 1.0,
    dt: float = T_STEP,
    tol: float = 1e-10,
) -> np.ndarray:
    """One zero-order-hold step with CasADi's CVODES (the reference plant, as in do-mpc).

    Parameters
    ----------
    x : array_like, shape (4,)
        State (c_A, c_B [mol/l], T_R, T_K [deg C]).
    u : array_like, shape (2,)
        Input (F [1/h], Qdot [kJ/h]).
    alpha, beta : float
        Uncertain parameters.
    dt : float
        Step length [h].
    tol : float
        CVODES absolute and relative tolerance (do-mpc uses 1e-10).

    Returns
    -------
    numpy.ndarray, shape (4,)
    """
    x = as_vector("x", x, 4)
    u = as_vector("u", u, 2)
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt!r}")
    if not 0 < tol < 1:
        raise ValueError(f"tol must lie in (0, 1), got {tol!r}")
    res = _cvodes(dt, tol)(x0=x, p=np.r_[u, float(alpha), float(beta)])
    return np.asarray(res["xf"]).ravel()


def plant_step(
    x: np.ndarray,
    u: np.ndarray,
    alpha: float = 1.0,
    beta: float = 1.0,
    method: str = "rk4",
    substeps: int = 10,
) -> np.ndarray:
    """Advance the plant by one sampling interval ``T_STEP`` (inputs held constant).

    Parameters
    ----------
    x : array_like, shape (4,)
        State in do-mpc units.
    u : array_like, shape (2,)
        Input (F [1/h], Qdot [kJ/h]); clipped to the input bounds :data:`U_LOW`, :data:`U_HIGH`.
    alpha, beta : float
        Uncertain parameters of the plant.
    method : {"rk4", "cvodes"}
        RK4 with ``substeps`` sub-intervals (fast) or CVODES at tolerance 1e-10 (reference).
    substeps : int
        RK4 sub-intervals.

    Returns
    -------
    numpy.ndarray, shape (4,)
    """
    u = np.clip(as_vector("u", u, 2), U_LOW, U_HIGH)
    if method == "rk4":
        return rk4_step(x, u, alpha, beta, T_STEP, substeps)
    if method == "cvodes":
        return cvodes_step(x, u, alpha, beta, T_STEP)
    raise ValueError(f"method must be 'rk4' or 'cvodes', got {method!r}")


def closed_loop(
    policy: Any,
    x0: Any,
    n_steps: int,
    alpha: float | np.ndarray = 1.0,
    beta: float | np.ndarray = 1.0,
    method: str = "rk4",
    progress: bool = False,
) -> Rollout:
    """Closed loop ``x_{t+1} = plant_step(x_t, clip(policy(x_t, t)))`` on the book's one rollout.

    Parameters
    ----------
    policy : callable
        ``policy(x, t) -> u`` with ``u`` of shape (2,) in do-mpc units.
    x0 : array_like, shape (4,)
        Initial state.
    n_steps : int
        Number of steps.
    alpha, beta : float or array of shape (n_steps,)
        Plant parameters, constant or one value per step.
    method : {"rk4", "cvodes"}
        Plant integrator (see :func:`plant_step`).
    progress : bool
        Show a progress bar.

    Returns
    -------
    lgutils.core.rollout.Rollout
        ``states`` (n_steps + 1, 4), ``actions`` (n_steps, 2) clipped to the input bounds,
        ``raw_actions`` (what the policy returned) and ``policy_times`` [s] of each call.
    """
    x = as_vector("x0", x0, 4)
    n_steps = check_positive_int("n_steps", n_steps)
    alphas = np.broadcast_to(as_array("alpha", alpha), (n_steps,))
    betas = np.broadcast_to(as_array("beta", beta), (n_steps,))
    if method not in ("rk4", "cvodes"):
        raise ValueError(f"method must be 'rk4' or 'cvodes', got {method!r}")

    def plant(x: np.ndarray, u: np.ndarray, t: int) -> np.ndarray:
        return plant_step(x, u, alphas[t], betas[t], method=method)

    def clip(u: np.ndarray) -> np.ndarray:
        return np.clip(u, U_LOW, U_HIGH)

    return rollout(
        policy,
        plant,
        x,
        n_steps,
        action_shape=(2,),
        clip=clip,
        progress="closed loop" if progress else False,
    )


def simulate(
    x0: np.ndarray,
    policy: Any,
    n_steps: int,
    alpha: float | np.ndarray = 1.0,
    beta: float | np.ndarray = 1.0,
    method: str = "rk4",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-loop simulation ``x_{t+1} = plant_step(x_t, policy(x_t, t))``.

    The states and inputs of :func:`closed_loop` (same arguments, ``x0`` first).

    Returns
    -------
    xs : numpy.ndarray, shape (n_steps + 1, 4)
        States, ``xs[0] = x0``.
    us : numpy.ndarray, shape (n_steps, 2)
        Applied inputs (after clipping to the bounds).
    """
    run = closed_loop(policy, x0, n_steps, alpha, beta, method, progress)
    return run.states, run.actions


def action_to_input(a: np.ndarray) -> np.ndarray:
    """Agent units ``(F/10, Qdot/1000)`` -> do-mpc units ``(F [1/h], Qdot [kJ/h])``; shape (..., 2)."""
    a = as_array("a", a)
    if a.shape[-1:] != (2,):
        raise ValueError(f"a must have shape (..., 2), got shape {a.shape}")
    return a * A_SCALE


def input_to_action(u: np.ndarray) -> np.ndarray:
    """do-mpc units ``(F, Qdot)`` -> agent units ``(F/10, Qdot/1000)``; shape (..., 2)."""
    u = as_array("u", u)
    if u.shape[-1:] != (2,):
        raise ValueError(f"u must have shape (..., 2), got shape {u.shape}")
    return u / A_SCALE


def network_input(x: Any, g: Any) -> Any:
    """The networks' input ``s = (c_B, g, c_A, T_R/100, T_K/100)`` from a state and a goal.

    This is SB3's sorted-key concatenation ``(achieved_goal, desired_goal, observation)`` of
    :class:`CSTREnv`'s observation.

    Parameters
    ----------
    x : array_like of shape (4,) or (n, 4), or CasADi of shape (4, 1)
        State in do-mpc units.
    g : float, array of shape (n,), or CasADi scalar
        Goal c_B [mol/l].

    Returns
    -------
    numpy.ndarray of shape (5,) or (n, 5), or CasADi of shape (5, 1)
    """
    if _is_casadi(x) or _is_casadi(g):
        x = ca.vec(x) if _is_casadi(x) else ca.DM(np.asarray(x, float))
        return ca.vertcat(x[1], g, x[0], x[2] / T_SCALE, x[3] / T_SCALE)
    xa = as_array("x", x)
    if xa.shape[-1:] != (4,) or xa.ndim > 2:
        raise ValueError(f"x must have shape (4,) or (n, 4), got shape {xa.shape}")
    ga = np.broadcast_to(as_array("g", g), xa.shape[:-1])
    return np.stack(
        [xa[..., 1], ga, xa[..., 0], xa[..., 2] / T_SCALE, xa[..., 3] / T_SCALE], axis=-1
    )


def error_input(s: np.ndarray) -> np.ndarray:
    """The reference's error input ``z = (c_A, c_B, T_R, T_K, g - c_B)`` from ``s``, shape (..., 5).

    Inverse direction of the fixed linear map of :func:`network_input`.
    """
    s = as_array("s", s)
    if s.shape[-1:] != (5,):
        raise ValueError(f"s must have shape (..., 5), got shape {s.shape}")
    return np.stack(
        [s[..., 2], s[..., 0], s[..., 3] * T_SCALE, s[..., 4] * T_SCALE, s[..., 1] - s[..., 0]],
        axis=-1,
    )


def goal_reward(c_b: Any, g: Any, width: float = REWARD_WIDTH) -> Any:
    """Reward ``exp(-0.5 ((g - c_B) / width)^2)``; numpy (broadcast) or CasADi."""
    if _is_casadi(c_b) or _is_casadi(g):
        return ca.exp(-0.5 * ((g - c_b) / width) ** 2)
    c_b = as_array("c_b", c_b)
    g = as_array("g", g)
    return np.exp(-0.5 * ((g - c_b) / width) ** 2)


def violation(xs: np.ndarray) -> np.ndarray:
    """Excess of each state over the box ``[X_LOW, X_HIGH]`` in its own units (0 inside).

    Parameters
    ----------
    xs : array_like, shape (..., 4)

    Returns
    -------
    numpy.ndarray, shape (..., 4)
        ``max(x - X_HIGH, X_LOW - x, 0)`` per state.
    """
    xs = as_array("xs", xs)
    if xs.shape[-1:] != (4,):
        raise ValueError(f"xs must have shape (..., 4), got shape {xs.shape}")
    return np.maximum(np.maximum(xs - X_HIGH, X_LOW - xs), 0.0)
