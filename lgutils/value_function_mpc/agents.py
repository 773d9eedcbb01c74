"""Value-function-augmented MPC on the CSTR (case study A, paper Sec. V.A, Fig. 3).

Three agents track a set-point ``g`` of ``c_B`` on :mod:`lgutils.value_function_mpc.cstr`'s reactor:

- **RL**: the deterministic actor of the SAC agent trained by ``python -m lgutils.value_function_mpc.train cstr``
  (:class:`RLAgent`);
- **MPC**: do-mpc's robust multi-stage CSTR controller (Fiedler et al., 2023, paper ref. [52]):
  horizon 20, Radau collocation of degree 2, 9 scenarios of ``(alpha, beta)``, cost
  ``(c_B - g)^2`` plus input-move penalties, hard bounds and a soft ``T_R <= 140``
  (:func:`baseline_mpc`);
- **RL+MPC**: the same robust structure with horizon 5, stage cost
  ``-exp(-0.5 ((g - c_B) / 0.1)^2)``, terminal cost ``-V(x_H, g)`` with
  ``V(x, g) = Q_1(s, mu(s))`` the learned critic at the actor's mean, soft state upper bounds
  (:func:`rlmpc`, its two cost terms from :func:`rlmpc_costs`) (Lawrence et al., 2025, paper
  ref. [13]).

:func:`value_casadi` is ``V`` as a CasADi function (matrix-level ``MX`` for the MPC, or scalar
``SX``), :func:`value_derivatives` its gradient and Hessian in closed form (which RL+MPC hands to
IPOPT), :func:`value_numpy` evaluates it on a batch (for the slices of the chapter). The
closed-loop runs and their scores are in :mod:`lgutils.value_function_mpc.evaluation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import casadi as ca
import numpy as np

from lgutils.core import nn, nn_hessian
from lgutils.core.validate import as_array, as_vector, check_positive_int
from lgutils.mpc import (
    Bounds,
    Cost,
    Model,
    MPCSolveError,
    Params,
    Scaling,
    ScenarioMPC,
    ScenarioTree,
    SoftBounds,
    SolverOptions,
    scenario_grid,
)
from lgutils.value_function_mpc import cstr

__all__ = [
    "X_SCALE",
    "IPOPT_OPTIONS",
    "WARM_IPOPT_OPTIONS",
    "U_SCALE",
    "RLMPC_SOFT_UB",
    "RLMPC_SOFT_PENALTY",
    "RLAgent",
    "MPCAgent",
    "baseline_mpc",
    "rlmpc",
    "rlmpc_costs",
    "value_numpy",
    "value_casadi",
    "value_derivatives",
]

#: do-mpc's variable scaling: states (c_A, c_B, T_R, T_K), inputs (F, Qdot).
X_SCALE = np.array([1.0, 1.0, 100.0, 100.0])
U_SCALE = np.array([100.0, 2000.0])
#: Soft upper bounds of RL+MPC and their linear penalties per unit violation (mol/l, deg C).
RLMPC_SOFT_UB = np.array([2.0, 2.0, 140.0, 140.0])
RLMPC_SOFT_PENALTY = np.array([1e3, 1e3, 1e1, 1e1])
#: IPOPT options of both CSTR MPC agents (``ipopt_options`` given to them are merged over
#: these). The variables are already scaled as in do-mpc, so IPOPT's gradient-based NLP scaling
#: and MUMPS' own scaling are off, and IPOPT refines a step only when its residual asks for it.
#:
#: ``max_resto_iter = 0`` applies to the cold solves only (:data:`WARM_IPOPT_OPTIONS` resets it
#: to IPOPT's default): a cold solve that needs IPOPT's feasibility-restoration phase stops there
#: and counts as failed. Cold solves are the first step of a run and every step after a failed
#: one; where the baseline's hard state bounds cannot be met, IPOPT used to spend 86 % of a
#: failed solve's iterations (median 58 of 75, up to 296) in the restoration phase before
#: reporting ``Infeasible_Problem_Detected``. The agent holds its previous input on any failure,
#: so a solve that fails either way changes nothing; a cold solve that *succeeds* is unchanged
#: unless it passes through restoration, which none did in chapter 07's runs (its closed loops,
#: on all 200 initial states and all plants, are the same with and without the option). It makes
#: a failed step about 8 times cheaper.
IPOPT_OPTIONS: dict[str, Any] = {
    "nlp_scaling_method": "none",
    "mumps_scaling": 0,
    "mumps_permuting_scaling": 0,
    "min_refinement_steps": 0,
    "max_resto_iter": 0,
}
#: IPOPT options of the agents' warm-started solves (every closed-loop step after the first):
#: start from the previous solution *and its multipliers*, at a barrier parameter of 1e-7
#: instead of IPOPT's cold ``mu_init = 0.1``, with the iterates pushed only 1e-5 inside their
#: bounds. IPOPT's tolerance stays at its default (``tol = 1e-8``), so the solutions are the same
#: to that tolerance; only the path to them is shorter. On steps 2-100 of Fig. 3's run of the
#: baseline MPC the warm-started solves take 8 IPOPT iterations (median) where cold solves with
#: IPOPT's defaults take 30. (A looser ``tol = 1e-6`` would halve that again, but it moves the
#: baseline's closed loops from random initial states by up to 13 % relative: its cost is
#: nearly flat in ``Qdot``.) Warm solves keep IPOPT's restoration phase (``max_resto_iter``
#: at its default): some successful ones pass through it.
WARM_IPOPT_OPTIONS: dict[str, Any] = {
    "warm_start_init_point": "yes",
    "mu_init": 1e-7,
    "warm_start_bound_push": 1e-5,
    "warm_start_bound_frac": 1e-5,
    "warm_start_mult_bound_push": 1e-5,
    "max_resto_iter": 3000000,
}


class RLAgent:
    """The deterministic SAC actor as a controller in do-mpc units (numpy, float64).

    Parameters
    ----------
    weights : dict
        From :func:`lgutils.core.nn.load_weights`.
    """

    name = "RL"

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        self._layers = nn.mlp_layers(weights, "actor")
        self._act = str(weights["activation"])
        self._low = np.asarray(weights["action_low"], float)
        self._high = np.asarray(weights["action_high"], float)

    def reset(self) -> None:
        """Nothing to reset (the actor has no memory)."""

    def act(self, x: np.ndarray, g: float) -> np.ndarray:
        """Input ``(F [1/h], Qdot [kJ/h])`` at state ``x`` (shape (4,)) for goal ``g``."""
        s = cstr.network_input(x, g)[None]
        a = np.tanh(nn.mlp_numpy(self._layers, self._act, s))[0]
        return cstr.action_to_input(self._low + 0.5 * (a + 1) * (self._high - self._low))


class MPCAgent:
    """A :class:`lgutils.mpc.scenario.ScenarioMPC` as a closed-loop controller.

    Keeps the previously applied input (for the move penalty) and warm-starts each solve from
    the previous one. ``last`` holds the last :class:`lgutils.mpc.scenario.ScenarioResult`.

    Parameters
    ----------
    mpc : ScenarioMPC
    name : str
    u_prev0 : array_like, shape (2,)
        The "previous input" of the first step (do-mpc's default: 0).
    shift : bool
        Shift the previous solution one stage before it warm-starts the next solve
        (:meth:`lgutils.mpc.scenario.ScenarioMPC.shift_warm_start`). Off by default: the
        unshifted previous solution is feasible except for the new initial state, while
        the shifted one breaks the non-anticipativity of the first input (the second inputs of
        the scenarios differ) and moves the unbounded ``x_H`` into bounded stages; with the
        multiplier warm start of :data:`WARM_IPOPT_OPTIONS` it takes 39 instead of 8 IPOPT
        iterations per step (medians over steps 2-100 of Fig. 3's run).
    on_failure : {"hold", "raise"}
        What to do when IPOPT fails (e.g. the hard state bounds cannot be met from the current
        state): ``"hold"`` applies the previous input again (clipped to the bounds) and counts
        the failure in ``failures``; ``"raise"`` re-raises :class:`lgutils.mpc.MPCSolveError`.
    """

    def __init__(
        self,
        mpc: ScenarioMPC,
        name: str,
        u_prev0: Any = (0.0, 0.0),
        on_failure: str = "hold",
        shift: bool = False,
    ) -> None:
        if not isinstance(mpc, ScenarioMPC):
            raise ValueError(f"mpc must be a ScenarioMPC, got {type(mpc).__name__}")
        if on_failure not in ("hold", "raise"):
            raise ValueError(f"on_failure must be 'hold' or 'raise', got {on_failure!r}")
        self.mpc = mpc
        self.name = name
        self.on_failure = on_failure
        self.shift = bool(shift)
        self.u_prev0 = as_vector("u_prev0", u_prev0, 2)
        self.reset()

    def reset(self) -> None:
        """Forget the previous input, the warm start and the failure count (before a new run)."""
        self._u_prev = self.u_prev0.copy()
        self.mpc.reset_warm_start()
        self.last = None
        self.failures = 0

    def act(self, x: np.ndarray, g: float) -> np.ndarray:
        """Solve at ``x`` for goal ``g`` and return the first input (do-mpc units)."""
        try:
            res = self.mpc.policy(
                x, {"g": float(g)}, u_prev=self._u_prev if self.mpc.uses_u_prev else None
            )
        except MPCSolveError:
            if self.on_failure == "raise":
                raise
            self.failures += 1
            self.last = None
            self.mpc.reset_warm_start()
            self._u_prev = np.clip(self._u_prev, cstr.U_LOW, cstr.U_HIGH)
            return self._u_prev.copy()
        self.last = res
        self._u_prev = res.action.copy()
        if self.shift:
            self.mpc.shift_warm_start()
        return res.action


def _scenarios() -> np.ndarray:
    return scenario_grid(cstr.ALPHA_SCENARIOS, cstr.BETA_SCENARIOS)


def _dynamics(x: Any, u: Any, theta: np.ndarray) -> Any:
    return cstr.rhs(x, u, theta[0], theta[1])


def _cstr_scenario_mpc(
    horizon: int,
    cost: Cost,
    bounds: Bounds,
    soft: SoftBounds,
    solver: SolverOptions,
    integrator: str = "collocation",
    substeps: int = 1,
) -> ScenarioMPC:
    """The 9-scenario CSTR MPC shared by both agents: goal parameter ``g``, ``t_step``,
    collocation of degree 2 and do-mpc's variable scaling."""
    return ScenarioMPC(
        Model(4, 2, _dynamics, integrator=integrator, dt=cstr.T_STEP, substeps=substeps, degree=2),
        cost,
        horizon,
        ScenarioTree(_scenarios()),
        params=Params({"g": ()}, default={"g": cstr.GOAL_FIG3}),
        bounds=bounds,
        soft=soft,
        scaling=Scaling(X_SCALE, U_SCALE),
        solver=solver,
    )


def _tracking_cost(x: Any, u: Any, p: Mapping[str, Any]) -> Any:  # noqa: ARG001
    """The baseline's stage cost ``(c_B - g)^2``."""
    return (x[1] - p["g"]) ** 2


def _tracking_terminal(x: Any, p: Mapping[str, Any]) -> Any:
    """The baseline's terminal cost ``(c_B - g)^2``."""
    return (x[1] - p["g"]) ** 2


def _hard_bounds() -> tuple[Bounds, SoftBounds]:
    """The baseline's state bounds: hard ``c_A, c_B in [0.1, 2]``, ``T_R >= 50``,
    ``T_K in [50, 140]`` on ``x_1..x_{H-1}`` and soft ``T_R <= 140`` (100 per deg C)."""
    return (
        Bounds(
            cstr.U_LOW,
            cstr.U_HIGH,
            [0.1, 0.1, 50.0, 50.0],
            [2.0, 2.0, np.inf, 140.0],
            terminal=False,
        ),
        SoftBounds([np.inf, np.inf, 140.0, np.inf], penalty=1e2),
    )


def baseline_mpc(
    horizon: int = 20,
    ipopt_options: Mapping[str, Any] | None = None,
    integrator: str = "collocation",
    substeps: int = 1,
) -> MPCAgent:
    """do-mpc's robust multi-stage CSTR MPC (the "MPC" agent of Fig. 3).

    Horizon ``horizon`` (20), ``t_step = 0.005 h``, Radau collocation of degree 2 on one finite
    element per step, 9 equally weighted scenarios ``alpha in {1, 1.05, 0.95}``,
    ``beta in {1, 1.1, 0.9}``, robust horizon 1. Cost: ``(c_B - g)^2`` at ``x_0..x_{H-1}``
    and at ``x_H``, plus ``0.1 dF^2 + 1e-3 dQdot^2`` on inputs scaled by (100, 2000). Hard
    input bounds ``F in [5, 100]``, ``Qdot in [-8500, 0]``; hard state bounds
    ``c_A, c_B in [0.1, 2]``, ``T_R >= 50``, ``T_K in [50, 140]`` on ``x_1..x_{H-1}`` (do-mpc's
    default leaves ``x_H`` free; do-mpc also bounds the collocation points, we do not);
    ``T_R <= 140`` soft with a linear penalty of 100 per deg C on ``x_1..x_{H-1}`` of every
    scenario. The first move is penalised against ``u_prev = 0``
    (do-mpc's default initial input).

    Returns
    -------
    MPCAgent
        ``act(x, g)`` returns ``u = (F, Qdot)``.
    """
    horizon = check_positive_int("horizon", horizon)
    mpc = _cstr_scenario_mpc(
        horizon,
        Cost(_tracking_cost, _tracking_terminal, move_weight=[0.1, 1e-3]),
        *_hard_bounds(),
        SolverOptions(
            ipopt={**IPOPT_OPTIONS, **dict(ipopt_options or {})}, warm_ipopt=WARM_IPOPT_OPTIONS
        ),
        integrator=integrator,
        substeps=substeps,
    )
    return MPCAgent(mpc, "MPC")


def value_casadi(weights: Mapping[str, np.ndarray], index: int = 0, sym: str = "SX") -> ca.Function:
    """``V(x, g) = Q_index(s, tanh(mu(s)))`` with ``s = network_input(x, g)``, as a CasADi function.

    ``sym="MX"`` builds a matrix-level graph (see :func:`lgutils.core.nn.mlp_function`).

    Returns
    -------
    casadi.Function
        ``v = V(x, g)``, ``x`` of shape (4, 1) in do-mpc units, ``g`` scalar [mol/l].
    """
    v = nn.value_function(weights, index, sym=sym)
    S = ca.SX if sym == "SX" else ca.MX
    x = S.sym("x", 4)
    g = S.sym("g")
    return ca.Function("V", [x, g], [v(cstr.network_input(x, g))], ["x", "g"], ["v"])


def value_derivatives(
    weights: Mapping[str, np.ndarray], index: int = 0
) -> Callable[[Any, Any], tuple[Any, Any]]:
    """``(dV/dx, d2V/dx2)`` of :func:`value_casadi`'s ``V(x, g)``, in closed form.

    From :func:`lgutils.core.nn_hessian.value_derivatives` through the network input, which is
    linear in ``x``. RL+MPC gives them to its MPC (``Cost.terminal_derivatives``): IPOPT's
    Hessian of the nine scenarios' ``V`` then costs a third of CasADi's automatic one.

    Returns
    -------
    callable
        ``(gradient, hessian) = f(x, g)``: ``x`` CasADi of shape (4, 1) in do-mpc units, ``g``
        the goal; shapes (4, 1) and (4, 4).
    """
    gradient, hessian = nn_hessian.value_derivatives(weights, index)
    xs = ca.SX.sym("x", 4)
    M = ca.DM(ca.evalf(ca.jacobian(cstr.network_input(xs, 0.0), xs)))  # ds/dx, constant

    def derivatives(x: Any, g: Any) -> tuple[Any, Any]:
        s = cstr.network_input(x, g)
        return M.T @ gradient(s), M.T @ hessian(s) @ M

    return derivatives


def value_numpy(weights: Mapping[str, np.ndarray], x: Any, g: Any, index: int = 0) -> np.ndarray:
    """The learned value ``V(x, g)`` on a batch, in numpy.

    Parameters
    ----------
    weights : dict
    x : array_like, shape (n, 4)
        States in do-mpc units.
    g : float or array_like, shape (n,)
        Goals [mol/l].

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    x = as_array("x", x)
    if x.ndim != 2 or x.shape[1] != 4:
        raise ValueError(f"x must have shape (n, 4), got shape {x.shape}")
    act = str(weights["activation"])
    s = cstr.network_input(x, g)
    a = np.tanh(nn.mlp_numpy(nn.mlp_layers(weights, "actor"), act, s))
    return nn.mlp_numpy(nn.mlp_layers(weights, f"critic{index}"), act, np.hstack([s, a]))[:, 0]


def rlmpc_costs(
    weights: Mapping[str, np.ndarray] | None,
    stage_width: float = 0.1,
    *,
    stage: str = "gauss",
    terminal_value: bool = True,
) -> tuple[
    Callable[[Any, Any, Mapping[str, Any]], Any], Callable[[Any, Mapping[str, Any]], Any] | None
]:
    """The objective of one scenario of RL+MPC: stage cost and terminal cost, as the MPC takes them.

    Parameters
    ----------
    weights : dict or None
        The SAC agent's weights (:func:`lgutils.core.nn.load_weights`); only read with
        ``terminal_value=True``.
    stage_width : float
        Width of the reward-shaped stage cost in c_B [mol/l] (default 0.1).
    stage : {"gauss", "quadratic"}
        ``"gauss"``: the RL reward's shape, negated (RL+MPC); ``"quadratic"``: the baseline's
        ``(c_B - g)^2`` (for the ablation of chapter 07; ``stage_width`` then plays no part).
    terminal_value : bool
        ``True``: the terminal cost ``-V(x_H, g)``; ``False``: no terminal cost (None).

    Returns
    -------
    stage_cost : callable
        ``stage_cost(x, u, p) = -exp(-0.5 ((p["g"] - c_B) / stage_width)^2)`` (or
        ``(c_B - p["g"])^2``), ``x`` of shape (4, 1) in do-mpc units, ``p["g"]`` the goal
        [mol/l]; CasADi in, CasADi out.
    terminal_cost : callable or None
        ``terminal_cost(x, p) = -V(x, p["g"])`` with ``V`` the learned value
        (:func:`value_casadi`, critic 0, matrix-level ``MX``); None without ``terminal_value``.
    """
    if not stage_width > 0:
        raise ValueError(f"stage_width must be positive, got {stage_width!r}")
    if stage not in ("gauss", "quadratic"):
        raise ValueError(f"stage must be 'gauss' or 'quadratic', got {stage!r}")

    def gauss_stage(x: Any, u: Any, p: Mapping[str, Any]) -> Any:  # noqa: ARG001
        return -ca.exp(-0.5 * ((p["g"] - x[1]) / stage_width) ** 2)

    stage_cost = gauss_stage if stage == "gauss" else _tracking_cost
    if not terminal_value:
        return stage_cost, None
    if weights is None:
        raise ValueError("weights are required with terminal_value=True, got None")
    V = value_casadi(weights, sym="MX")

    def terminal_cost(x: Any, p: Mapping[str, Any]) -> Any:
        return -V(x, p["g"])

    return stage_cost, terminal_cost


def rlmpc(
    weights: Mapping[str, np.ndarray] | None,
    horizon: int = 5,
    soft_penalty: Any = RLMPC_SOFT_PENALTY,
    stage_width: float = 0.1,
    ipopt_options: Mapping[str, Any] | None = None,
    *,
    terminal_value: bool = True,
    stage: str = "gauss",
    bounds: str = "soft",
) -> MPCAgent:
    """The value-function-augmented robust MPC ("RL+MPC" of Fig. 3), and its ablations.

    Same 9-scenario structure and collocation as :func:`baseline_mpc`, horizon ``horizon`` (5),
    no input-move penalty, stage cost ``-exp(-0.5 ((g - c_B) / stage_width)^2)`` at
    ``x_0..x_{H-1}``, terminal cost ``-V(x_H, g)`` (:func:`value_casadi`, critic 0; both from
    :func:`rlmpc_costs`), hard input
    bounds and soft upper bounds ``c_A, c_B <= 2``, ``T_R, T_K <= 140`` on ``x_1..x_H`` of
    every scenario with linear penalties ``soft_penalty`` per unit violation (default 1e3 per
    mol/l, 10 per deg C).

    The three keywords swap one piece each for the baseline's (chapter 07's ablation); the
    defaults give RL+MPC.

    Parameters
    ----------
    weights : dict or None
        The SAC agent's weights (None allowed with ``terminal_value=False``).
    terminal_value : bool
        ``False``: no terminal cost at all (the learned ``V`` removed).
    stage : {"gauss", "quadratic"}
        ``"quadratic"``: the baseline's stage cost ``(c_B - g)^2``, without its move penalty
        and without its terminal ``(c_B - g)^2``.
    bounds : {"soft", "hard"}
        ``"hard"``: the baseline's state bounds (:func:`baseline_mpc`: hard on
        ``x_1..x_{H-1}``, ``x_H`` free, ``T_R <= 140`` soft at 100 per deg C) in place of the
        soft upper bounds; ``soft_penalty`` then plays no part.

    Returns
    -------
    MPCAgent
        Named ``"RL+MPC"``, with the swapped pieces in parentheses for the variants (e.g.
        ``"RL+MPC (no V)"``).
    """
    horizon = check_positive_int("horizon", horizon)
    if bounds not in ("soft", "hard"):
        raise ValueError(f"bounds must be 'soft' or 'hard', got {bounds!r}")
    terminal_value = bool(terminal_value)
    cost, term = rlmpc_costs(weights, stage_width, stage=stage, terminal_value=terminal_value)
    term_derivatives = None
    if terminal_value:
        dV = value_derivatives(weights)

        def term_derivatives(x: Any, p: Mapping[str, Any]) -> tuple[Any, Any]:
            grad, hess = dV(x, p["g"])  # of -V, the terminal cost
            return -grad, -hess

    if bounds == "soft":
        state_bounds = (
            Bounds(cstr.U_LOW, cstr.U_HIGH),
            SoftBounds(RLMPC_SOFT_UB, penalty=soft_penalty, terminal=True),
        )
    else:
        state_bounds = _hard_bounds()
    mpc = _cstr_scenario_mpc(
        horizon,
        # V's derivatives in closed form; the rest of the NLP is expanded to SX
        Cost(cost, term, terminal_derivatives=term_derivatives),
        *state_bounds,
        SolverOptions(
            ipopt={**IPOPT_OPTIONS, **dict(ipopt_options or {})}, warm_ipopt=WARM_IPOPT_OPTIONS
        ),
    )
    swapped = [
        text
        for text, on in [
            ("no V", not terminal_value),
            ("quadratic stage cost", stage == "quadratic"),
            ("hard bounds", bounds == "hard"),
        ]
        if on
    ]
    return MPCAgent(mpc, "RL+MPC" + (f" ({', '.join(swapped)})" if swapped else ""))
