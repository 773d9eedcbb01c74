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

The environment
---------------
:class:`CSTREnv` (``gymnasium.make("lgutils/CSTR-v0")``) is the goal-conditioned training
environment of the RL agent: Dict observations for hindsight experience replay,
``compute_reward`` vectorised over batches, 50-step episodes, ``alpha, beta`` redrawn at every
step from the "missing truth" sets :data:`ALPHA_TRAIN`, :data:`BETA_TRAIN`.

Observation design. Stable-Baselines3 flattens a Dict observation by concatenating its entries
in sorted key order, ``(achieved_goal, desired_goal, observation)``. Here

- ``achieved_goal = (c_B,)``, ``desired_goal = (g,)`` [mol/l];
- ``observation = (c_A, T_R / 100, T_K / 100)`` (``c_B`` is not repeated),

so the network input is ``s = (c_B, g, c_A, T_R/100, T_K/100)``. It is an invertible linear
map of the reference's error input ``z = (c_A, c_B, T_R, T_K, g - c_B)``:
``c_B = z_2``, ``g = z_2 + z_5``, ``c_A = z_1``, ``T_R/100 = z_3/100``, ``T_K/100 = z_4/100``
(see :func:`network_input` and :func:`error_input`). Because the first layer of every network
is affine, a network on ``s`` and a network on ``z`` represent exactly the same set of
functions (the first-layer weights differ by that fixed matrix); only the initialisation and
the optimiser's geometry differ. The temperature scaling by 100 is do-mpc's.
"""

from __future__ import annotations

import math
from typing import Any

import casadi as ca
import gymnasium as gym
import numpy as np

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
    "rhs",
    "plant_step",
    "cvodes_step",
    "rk4_step",
    "simulate",
    "action_to_input",
    "input_to_action",
    "network_input",
    "error_input",
    "goal_reward",
    "violation",
    "CSTREnv",
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
#: Scale from agent units to do-mpc units: u = a * _A_SCALE.
_A_SCALE = np.array([10.0, 1000.0])
#: Input bounds in agent units (F / 10, Qdot / 1000).
A_LOW = U_LOW / _A_SCALE
A_HIGH = U_HIGH / _A_SCALE
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
#: Observation scaling of the temperatures (do-mpc's scaling).
_T_SCALE: float = 100.0

_P = PARAMS
_KELVIN = 273.15
# Derived constants of the energy balances.
_RHO_CP = _P["rho"] * _P["c_p"]  # kJ/(l K)
_KA = _P["K_w"] * _P["A_R"]  # kJ/(h K)
_MK_CPK = _P["m_K"] * _P["c_pK"]  # kJ/K


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
    """The four derivatives; works on floats, numpy arrays and CasADi expressions."""
    k1 = beta * _P["k0_AB"] * exp(-_P["E_AB"] / (t_r + _KELVIN))
    k2 = _P["k0_BC"] * exp(-_P["E_BC"] / (t_r + _KELVIN))
    k3 = _P["k0_AD"] * exp(-alpha * _P["E_AD"] / (t_r + _KELVIN))
    dc_a = f * (_P["c_A0"] - c_a) - k1 * c_a - k3 * c_a**2
    dc_b = -f * c_b + k1 * c_a - k2 * c_b
    dt_r = (
        (k1 * c_a * _P["dH_AB"] + k2 * c_b * _P["dH_BC"] + k3 * c_a**2 * _P["dH_AD"]) / (-_RHO_CP)
        + f * (_P["T_in"] - t_r)
        + _KA * (t_k - t_r) / (_RHO_CP * _P["V_R"])
    )
    dt_k = (q + _KA * (t_r - t_k)) / _MK_CPK
    return dc_a, dc_b, dt_r, dt_k


def _rhs_floats(c_a, c_b, t_r, t_k, f, q, alpha, beta):
    """Scalar float version of :func:`rhs` (about 2 us per call, used by the env's RK4)."""
    return _rhs_terms(c_a, c_b, t_r, t_k, f, q, alpha, beta, math.exp)


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
    return np.array(
        _rk4_floats(
            tuple(x), float(u[0]), float(u[1]), float(alpha), float(beta), float(dt), substeps
        )
    )


def _rk4_floats(x, f, q, alpha, beta, dt, substeps):
    h = dt / substeps
    c_a, c_b, t_r, t_k = x
    for _ in range(substeps):
        k1 = _rhs_floats(c_a, c_b, t_r, t_k, f, q, alpha, beta)
        k2 = _rhs_floats(
            c_a + 0.5 * h * k1[0],
            c_b + 0.5 * h * k1[1],
            t_r + 0.5 * h * k1[2],
            t_k + 0.5 * h * k1[3],
            f,
            q,
            alpha,
            beta,
        )
        k3 = _rhs_floats(
            c_a + 0.5 * h * k2[0],
            c_b + 0.5 * h * k2[1],
            t_r + 0.5 * h * k2[2],
            t_k + 0.5 * h * k2[3],
            f,
            q,
            alpha,
            beta,
        )
        k4 = _rhs_floats(
            c_a + h * k3[0], c_b + h * k3[1], t_r + h * k3[2], t_k + h * k3[3], f, q, alpha, beta
        )
        c_a += h / 6.0 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        c_b += h / 6.0 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        t_r += h / 6.0 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2])
        t_k += h / 6.0 * (k1[3] + 2 * k2[3] + 2 * k3[3] + k4[3])
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

    Parameters
    ----------
    x0 : array_like, shape (4,)
        Initial state.
    policy : callable
        ``policy(x, t) -> u`` with ``u`` of shape (2,) in do-mpc units.
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
    xs : numpy.ndarray, shape (n_steps + 1, 4)
        States, ``xs[0] = x0``.
    us : numpy.ndarray, shape (n_steps, 2)
        Applied inputs (after clipping to the bounds).
    """
    x = as_vector("x0", x0, 4)
    n_steps = check_positive_int("n_steps", n_steps)
    alphas = np.broadcast_to(as_array("alpha", alpha), (n_steps,))
    betas = np.broadcast_to(as_array("beta", beta), (n_steps,))
    if not callable(policy):
        raise ValueError(f"policy must be callable policy(x, t) -> u, got {type(policy).__name__}")
    xs = np.empty((n_steps + 1, 4))
    us = np.empty((n_steps, 2))
    xs[0] = x
    steps = range(n_steps)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="closed loop", leave=False)
    for t in steps:
        u = np.clip(as_vector("policy output", policy(xs[t], t), 2), U_LOW, U_HIGH)
        us[t] = u
        xs[t + 1] = plant_step(xs[t], u, alphas[t], betas[t], method=method)
    return xs, us


def action_to_input(a: np.ndarray) -> np.ndarray:
    """Agent units ``(F/10, Qdot/1000)`` -> do-mpc units ``(F [1/h], Qdot [kJ/h])``; shape (..., 2)."""
    a = as_array("a", a)
    if a.shape[-1:] != (2,):
        raise ValueError(f"a must have shape (..., 2), got shape {a.shape}")
    return a * _A_SCALE


def input_to_action(u: np.ndarray) -> np.ndarray:
    """do-mpc units ``(F, Qdot)`` -> agent units ``(F/10, Qdot/1000)``; shape (..., 2)."""
    u = as_array("u", u)
    if u.shape[-1:] != (2,):
        raise ValueError(f"u must have shape (..., 2), got shape {u.shape}")
    return u / _A_SCALE


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
        return ca.vertcat(x[1], g, x[0], x[2] / _T_SCALE, x[3] / _T_SCALE)
    xa = as_array("x", x)
    if xa.shape[-1:] != (4,) or xa.ndim > 2:
        raise ValueError(f"x must have shape (4,) or (n, 4), got shape {xa.shape}")
    ga = np.broadcast_to(as_array("g", g), xa.shape[:-1])
    return np.stack(
        [xa[..., 1], ga, xa[..., 0], xa[..., 2] / _T_SCALE, xa[..., 3] / _T_SCALE], axis=-1
    )


def error_input(s: np.ndarray) -> np.ndarray:
    """The reference's error input ``z = (c_A, c_B, T_R, T_K, g - c_B)`` from ``s``, shape (..., 5).

    Inverse direction of the fixed linear map of :func:`network_input`.
    """
    s = as_array("s", s)
    if s.shape[-1:] != (5,):
        raise ValueError(f"s must have shape (..., 5), got shape {s.shape}")
    return np.stack(
        [s[..., 2], s[..., 0], s[..., 3] * _T_SCALE, s[..., 4] * _T_SCALE, s[..., 1] - s[..., 0]],
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


class CSTREnv(gym.Env):
    """Goal-conditioned CSTR environment of the RL agent (case study A).

    Parameters
    ----------
    nominal : bool
        If True, the plant has ``alpha = beta = 1`` at every step; otherwise both are redrawn
        at every step, uniformly and independently, from ``alpha_values`` and ``beta_values``.
    alpha_values, beta_values : array_like, optional
        The finite sets to draw from (default the "missing truth" sets :data:`ALPHA_TRAIN`,
        :data:`BETA_TRAIN`: 10 values evenly spaced in [0.95, 1.05] and [0.9, 1.1]).
    max_episode_steps : int
        Episode length; the episode is truncated (never terminated) after it (default 50).
    integrator : {"rk4", "cvodes"}
        Plant integrator (see :func:`plant_step`).
    substeps : int
        RK4 sub-intervals per step.

    Notes
    -----
    - Action: agent units ``(F/10, Qdot/1000)`` in ``[0.5, 10] x [-8.5, 0]`` (clipped).
    - Observation: ``{"observation": (c_A, T_R/100, T_K/100), "achieved_goal": (c_B,),
      "desired_goal": (g,)}``, float32 (see the module docstring for the relation with the
      reference's error input).
    - Reward: ``exp(-0.5 ((g - c_B') / 0.01)^2)`` with ``c_B'`` the concentration after the step,
      computed by :meth:`compute_reward` from the float32 goals of the observation, so that
      hindsight relabelling reproduces it bit for bit.
    - ``reset(options={"x0": ..., "goal": ...})`` fixes the initial state (do-mpc units) and the
      goal; by default ``x0`` is uniform in the box and ``g`` uniform in {0.6, 0.7, 0.8}.
    - ``info`` holds the full state ``"x"`` (do-mpc units), the applied input ``"u"``, and the
      plant parameters ``"alpha"``, ``"beta"`` of the step.
    - Speed (measured on one core of the development machine): 2,000-4,000 steps/s with RK4,
      about 1,000 with CVODES; SAC's gradient steps (about 100 per second) dominate training.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        nominal: bool = False,
        alpha_values: np.ndarray | None = None,
        beta_values: np.ndarray | None = None,
        max_episode_steps: int = 50,
        integrator: str = "rk4",
        substeps: int = 10,
    ) -> None:
        super().__init__()
        self.nominal = bool(nominal)
        self.alpha_values = as_vector(
            "alpha_values", ALPHA_TRAIN if alpha_values is None else alpha_values
        )
        self.beta_values = as_vector(
            "beta_values", BETA_TRAIN if beta_values is None else beta_values
        )
        self.max_episode_steps = check_positive_int("max_episode_steps", max_episode_steps)
        if integrator not in ("rk4", "cvodes"):
            raise ValueError(f"integrator must be 'rk4' or 'cvodes', got {integrator!r}")
        self.integrator = integrator
        self.substeps = check_positive_int("substeps", substeps)
        self.action_space = gym.spaces.Box(
            A_LOW.astype(np.float32), A_HIGH.astype(np.float32), dtype=np.float32
        )
        inf = np.float32(np.inf)
        self.observation_space = gym.spaces.Dict(
            {
                "observation": gym.spaces.Box(-inf, inf, shape=(3,), dtype=np.float32),
                "achieved_goal": gym.spaces.Box(-inf, inf, shape=(1,), dtype=np.float32),
                "desired_goal": gym.spaces.Box(-inf, inf, shape=(1,), dtype=np.float32),
            }
        )
        self._x = X0_FIG3.copy()
        self._goal = GOAL_FIG3
        self._t = 0

    # -- helpers -------------------------------------------------------------------------------
    def _obs(self) -> dict[str, np.ndarray]:
        c_a, c_b, t_r, t_k = self._x
        return {
            "observation": np.array([c_a, t_r / _T_SCALE, t_k / _T_SCALE], dtype=np.float32),
            "achieved_goal": np.array([c_b], dtype=np.float32),
            "desired_goal": np.array([self._goal], dtype=np.float32),
        }

    @property
    def state(self) -> np.ndarray:
        """The current state (c_A, c_B, T_R, T_K) in do-mpc units, shape (4,)."""
        return self._x.copy()

    @property
    def goal(self) -> float:
        """The current goal c_B [mol/l]."""
        return self._goal

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if options.get("x0") is not None:
            self._x = as_vector("options['x0']", options["x0"], 4).copy()
        else:
            self._x = self.np_random.uniform(X_LOW, X_HIGH)
        if options.get("goal") is not None:
            self._goal = float(as_vector("options['goal']", options["goal"], 1)[0])
        else:
            self._goal = float(self.np_random.choice(GOALS))
        self._t = 0
        return self._obs(), {"x": self._x.copy()}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=float).reshape(2), A_LOW, A_HIGH)
        f, q = float(a[0] * _A_SCALE[0]), float(a[1] * _A_SCALE[1])
        if self.nominal:
            alpha = beta = 1.0
        else:
            alpha = float(self.alpha_values[self.np_random.integers(len(self.alpha_values))])
            beta = float(self.beta_values[self.np_random.integers(len(self.beta_values))])
        if self.integrator == "rk4":
            x = _rk4_floats(tuple(self._x), f, q, alpha, beta, T_STEP, self.substeps)
            self._x = np.array(x)
        else:
            self._x = cvodes_step(self._x, np.array([f, q]), alpha, beta)
        self._t += 1
        obs = self._obs()
        # computed from the float32 goals, exactly as hindsight relabelling recomputes it
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], None))
        truncated = self._t >= self.max_episode_steps
        info = {"x": self._x.copy(), "u": np.array([f, q]), "alpha": alpha, "beta": beta}
        return obs, reward, False, truncated, info

    def compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:  # noqa: ARG002
        """Vectorised reward for hindsight relabelling.

        Parameters
        ----------
        achieved_goal, desired_goal : array_like, shape (1,) or (batch, 1)
            c_B after the step and the goal [mol/l].
        info : dict, list of dicts or None
            Unused.

        Returns
        -------
        numpy.ndarray, shape () or (batch,)
            ``exp(-0.5 ((g - c_B) / 0.01)^2)`` computed in float64, bit-identical whether
            evaluated on a batch or one sample at a time.
        """
        ag = np.asarray(achieved_goal, dtype=float)
        dg = np.asarray(desired_goal, dtype=float)
        if ag.shape != dg.shape or ag.shape[-1:] != (1,):
            raise ValueError(
                f"achieved_goal and desired_goal must have equal shapes (..., 1), got {ag.shape} and {dg.shape}"
            )
        e = np.atleast_1d((dg[..., 0] - ag[..., 0]) / REWARD_WIDTH)
        # e * e and math.exp element by element: numpy's vectorised exp and its scalar power
        # may differ from the batched ones in the last bit, and SB3's checker demands that
        # batch and single rewards be equal
        arg = -0.5 * (e * e)
        out = np.array([math.exp(v) for v in arg])
        return out.reshape(ag.shape[:-1])
