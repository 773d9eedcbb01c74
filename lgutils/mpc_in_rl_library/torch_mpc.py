"""MPC inside an RL library: a differentiable MPC layer for PyTorch and an SB3 policy (paper Sec. V.C).

Sec. V.C of the paper observes that established RL libraries do not accommodate MPC agents: they
neither batch them nor propagate their sensitivities. This module joins the book's MPC to
PyTorch and Stable-Baselines3 (SB3) without changing either:

- :class:`MPCFunction` -- a :class:`torch.autograd.Function` whose forward solves the MPC of
  eq. (14) for a batch of states and returns ``u_0*`` and ``V`` (the optimal cost), and whose
  backward returns exact vector-Jacobian products from the MPC's own sensitivities
  ``d u_0*/d(s, phi)`` and ``d V/d(s, phi)``; :func:`mpc_layer` is its functional form;
- :class:`MPCLayer` -- an :class:`torch.nn.Module` that holds ``phi`` as
  :class:`torch.nn.Parameter` s (one per named MPC parameter);
- two *solvers* the layer can call, with one method ``solve(S, phi, sensitivities)``:
  :class:`MPCSolver` wraps any :class:`lgutils.mpc.MPC` (CasADi + IPOPT, constraints allowed;
  batches through the MPC's batch methods), :class:`RiccatiSolver` is the closed form of case
  study B's unconstrained linear-quadratic MPC (:mod:`lgutils.mpc_reinforce.reinforce`), batched in numpy;
- :class:`MPCActorCriticPolicy` -- an SB3 ``ActorCriticPolicy`` whose Gaussian action mean is
  the MPC layer (learnable ``phi``) with a learnable state-independent log-std and a small
  value network: SB3's PPO trains it unchanged;
- :class:`SB3Agent` -- a ``predict``-compatible wrapper, so that any MPC agent of ``lgutils``
  (an :class:`~lgutils.mpc.MPC`, a scenario MPC, a layer, a solver or a batch policy) can be
  scored with ``stable_baselines3.common.evaluation.evaluate_policy``;
- :func:`train_ppo` -- SB3's PPO on case study B through the layer, recording the model after
  every rollout (:class:`PPORun`), and :class:`EpisodeEndIsTermination`, the wrapper that tells
  SB3 that the T-step episode is the whole task.

Conventions: states and parameters are float64; ``V`` is the MPC's optimal *cost* ``V^MPC``
(the reward-convention value is ``-V^MPC``, paper footnote 1); ``phi`` is flat in the order of
:meth:`lgutils.mpc.MPC.flatten_phi` (names in declaration order, each raveled row-major).
Shapes: ``N`` states in a batch, ``nx`` states, ``nu`` inputs, ``n_phi`` parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn
from torch.autograd.function import once_differentiable

from lgutils.core.validate import (
    as_array,
    as_vector,
    check_in_open_interval,
    check_pd,
    check_positive_int,
    check_psd,
)
from lgutils.mpc import MPC, MPCSolveError
from lgutils.mpc_reinforce import model, rollout

__all__ = [
    "PolicySolution",
    "MPCSolver",
    "RiccatiSolver",
    "MPCFunction",
    "mpc_layer",
    "MPCLayer",
    "gradcheck_layer",
    "active_set",
    "active_set_is_stable",
    "GRADCHECK_CATEGORIES",
    "gradcheck_states",
    "layer_throughput",
    "MPCActorCriticPolicy",
    "SB3Agent",
    "EpisodeEndIsTermination",
    "ACTION_LIMIT",
    "case_b_expected_returns",
    "case_b_mismatch",
    "PPORun",
    "PPOHistory",
    "train_ppo",
]


# ---------------------------------------------------------------------------------------------
# solvers: (S, phi) -> actions, values and their sensitivities, for a batch of states
# ---------------------------------------------------------------------------------------------
class PolicySolution(NamedTuple):
    """The MPC at a batch of states: ``u_0*``, ``V`` and (optionally) their derivatives.

    Attributes
    ----------
    actions : numpy.ndarray, shape (N, nu)
        ``u_0*(s_i; phi)`` (input units).
    values : numpy.ndarray, shape (N,)
        ``V^MPC(s_i; phi)``, the optimal cost (cost units).
    d_action_d_state : numpy.ndarray or None, shape (N, nu, nx)
    d_action_d_phi : numpy.ndarray or None, shape (N, nu, n_phi)
    d_value_d_state : numpy.ndarray or None, shape (N, nx)
    d_value_d_phi : numpy.ndarray or None, shape (N, n_phi)
        ``None`` when the solve was asked for no sensitivities.
    """

    actions: np.ndarray
    values: np.ndarray
    d_action_d_state: np.ndarray | None = None
    d_action_d_phi: np.ndarray | None = None
    d_value_d_state: np.ndarray | None = None
    d_value_d_phi: np.ndarray | None = None


class MPCSolver:
    """The layer's solver for any :class:`lgutils.mpc.MPC` (CasADi + IPOPT, constraints allowed).

    ``solve(S, phi, sensitivities=False)`` calls :meth:`~lgutils.mpc.MPC.policy_batch` (one
    call for the whole batch); ``sensitivities=True`` calls
    :meth:`~lgutils.mpc.MPC.policy_sensitivity_batch` (a solve and CasADi's implicit derivative
    of the NLP solution per state, warm-started from one state to the next). A failed solve
    raises the MPC's :class:`~lgutils.mpc.MPCSolveError` (with the batch index).

    Parameters
    ----------
    mpc : MPC
        The MPC; it must not use the previous input (``use_u_prev``), which a memoryless layer
        cannot supply.
    method : {"loop", "map"}
        How :meth:`~lgutils.mpc.MPC.policy_batch` solves a batch without sensitivities:
        ``"loop"`` (warm-started solves, IPOPT's status checked for each) or ``"map"`` (CasADi's
        ``map`` of the solver, cold starts; a failure is detected only through non-finite
        numbers or violated constraints). Sensitivities always use the loop.
    """

    def __init__(self, mpc: MPC, method: str = "loop") -> None:
        if not isinstance(mpc, MPC):
            raise ValueError(f"mpc must be an lgutils.mpc.MPC, got {type(mpc).__name__}")
        if mpc.use_u_prev:
            raise ValueError(
                "mpc must not use the previous input (use_u_prev/move_weight): the layer maps a "
                "state to an action and has no memory; got an MPC with use_u_prev=True"
            )
        if method not in ("loop", "map"):
            raise ValueError(f"method must be 'loop' or 'map', got {method!r}")
        self.mpc = mpc
        self.method = method
        self.nx, self.nu, self.n_phi = mpc.nx, mpc.nu, mpc.n_phi
        self.param_shapes: dict[str, tuple[int, ...]] = dict(mpc.param_shapes)

    def solve(self, S: Any, phi: Any, sensitivities: bool = False) -> PolicySolution:
        """Solve at the states ``S`` (shape (N, nx)) with parameters ``phi`` (shape (n_phi,)).

        Returns
        -------
        PolicySolution
            With the derivatives when ``sensitivities`` is true.

        Raises
        ------
        lgutils.mpc.MPCSolveError
            If any solve fails.
        """
        S = as_array("S", S, (None, self.nx))
        phi = as_vector("phi", phi, self.n_phi)
        if not sensitivities:
            res = self.mpc.policy_batch(S, phi, method=self.method)
            return PolicySolution(res.actions, res.values)
        out = self.mpc.policy_sensitivity_batch(S, phi)
        return PolicySolution(
            out["actions"],
            out["values"],
            out["d_action_d_state"],
            out["d_action_d_phi"],
            out["d_value_d_state"],
            out["d_value_d_phi"],
        )

    def __repr__(self) -> str:
        return f"MPCSolver({self.mpc!r}, method={self.method!r})"


class RiccatiSolver:
    """Closed form of the unconstrained linear-quadratic MPC with a learnable model (case study B).

    The MPC minimises ``sum_{k<H} x_k^T Q x_k + u_k^T R u_k`` subject to
    ``x_{k+1} = A_phi x_k + B_phi u_k``, ``x_0 = s``, with ``phi = [vec(A_phi); vec(B_phi)]``
    (row-major, :func:`lgutils.mpc_reinforce.model.join_phi`). Its plan is the time-varying feedback
    ``u_k = -K^{(H-k)} x_k`` where ``K^{(h)}`` is the gain of the ``h``-step problem
    (:func:`lgutils.mpc_reinforce.model.mpc_gain`), so ``u_0* = -K_0 s`` and
    ``d u_0*/d phi = -(d K_0/d phi) s`` (:func:`lgutils.mpc_reinforce.model.mpc_gain_jacobian`).
    ``V`` is the cost of the plan; its gradient follows from the Lagrangian with the costates
    ``lambda_H = 0``, ``lambda_k = 2 Q x_k + A_phi^T lambda_{k+1}`` (envelope theorem):
    ``dV/dA_phi = sum_k lambda_{k+1} x_k^T``, ``dV/dB_phi = sum_k lambda_{k+1} u_k^T``,
    ``dV/ds = 2 Q s + A_phi^T lambda_1``. No solver, no iterations: the whole batch is a few
    numpy operations, and the numbers equal the CasADi MPC's (:func:`lgutils.mpc_reinforce.model.case_b_mpc`)
    to solver precision.

    Parameters
    ----------
    Q : array_like, shape (n, n)
        State weight (symmetric PSD).
    R : array_like, shape (m, m)
        Input weight (symmetric PD).
    horizon : int
        Prediction horizon H.
    """

    method = "closed form"

    def __init__(self, Q: Any, R: Any, horizon: int = 5) -> None:
        self.Q = check_psd("Q", Q)
        n = self.Q.shape[0]
        R_arr = as_array("R", R)
        self.R = check_pd("R", R_arr.reshape(1, 1) if R_arr.ndim == 0 else R_arr)
        m = self.R.shape[0]
        self.horizon = check_positive_int("horizon", horizon)
        self.nx, self.nu, self.n_phi = n, m, n * n + n * m
        self.param_shapes: dict[str, tuple[int, ...]] = {"A": (n, n), "B": (n, m)}

    @classmethod
    def case_b(cls, horizon: int = 5) -> RiccatiSolver:
        """The MPC of case study B (:func:`lgutils.mpc_reinforce.model.case_b`'s ``Q`` and ``R``)."""
        env = model.case_b()
        return cls(env.Q, env.R, horizon)

    def solve(self, S: Any, phi: Any, sensitivities: bool = False) -> PolicySolution:
        """``u_0*``, ``V`` (and derivatives) at the states ``S`` (N, nx) for ``phi`` (n_phi,).

        Raises
        ------
        lgutils.mpc.MPCSolveError
            With status ``"non_finite"`` if the numbers overflow (a wildly unstable model).
        """
        S = as_array("S", S, (None, self.nx))
        phi = as_vector("phi", phi, self.n_phi)
        n, m, H = self.nx, self.nu, self.horizon
        A, B = model.split_phi(phi, n, m)
        N = S.shape[0]
        X = np.empty((N, H + 1, n))
        U = np.empty((N, H, m))
        X[:, 0] = S
        with np.errstate(over="ignore", invalid="ignore"):
            gains = _stage_gains(A, B, self.Q, self.R, H)
            for k in range(H):
                U[:, k] = -X[:, k] @ gains[k].T
                X[:, k + 1] = X[:, k] @ A.T + U[:, k] @ B.T
            V = np.einsum("nki,ij,nkj->n", X[:, :H], self.Q, X[:, :H]) + np.einsum(
                "nki,ij,nkj->n", U, self.R, U
            )
        self._check_finite(S, phi, U[:, 0], V)
        if not sensitivities:
            return PolicySolution(U[:, 0].copy(), V)
        K0, dK = model.mpc_gain_jacobian(A, B, self.Q, self.R, H)  # (m, n), (m, n, n_phi)
        du_ds = np.broadcast_to(-K0, (N, m, n)).copy()
        du_dphi = -np.einsum("ijp,nj->nip", dK, S)
        lam = np.zeros((N, n))  # lambda_H = 0
        dV_dA = np.zeros((N, n, n))
        dV_dB = np.zeros((N, n, m))
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(H - 1, -1, -1):  # lam holds lambda_{k+1}
                dV_dA += lam[:, :, None] * X[:, k, None, :]
                dV_dB += lam[:, :, None] * U[:, k, None, :]
                lam = 2.0 * X[:, k] @ self.Q + lam @ A  # lambda_k (row form of A^T lambda)
        dV_ds = lam
        dV_dphi = np.concatenate([dV_dA.reshape(N, -1), dV_dB.reshape(N, -1)], axis=1)
        self._check_finite(S, phi, du_dphi, dV_dphi)
        return PolicySolution(U[:, 0].copy(), V, du_ds, du_dphi, dV_ds, dV_dphi)

    def _check_finite(self, S: np.ndarray, phi: np.ndarray, *arrays: np.ndarray) -> None:
        for arr in arrays:
            bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                A, B = model.split_phi(phi, self.nx, self.nu)
                raise MPCSolveError(
                    f"closed-form MPC returned non-finite numbers at batch index {i}; state "
                    f"s={S[i]} (the model's plan overflows)",
                    status="non_finite",
                    state=S[i].copy(),
                    phi={"A": A.copy(), "B": B.copy()},
                    index=i,
                )

    def __repr__(self) -> str:
        return f"RiccatiSolver(nx={self.nx}, nu={self.nu}, horizon={self.horizon})"


def _stage_gains(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, H: int
) -> list[np.ndarray]:
    """Feedback gains of the H-step plan: ``u_k = -gains[k] x_k``, ``gains[k] = K^{(H-k)}``.

    The Riccati recursion with ``P = 0`` yields, at its j-th iteration, the first-stage gain of
    the j-step problem (:func:`lgutils.mpc_reinforce.model.mpc_gain` with ``horizon=j``), so one pass
    gives every stage's gain; ``gains[0]`` is ``K_0`` and ``gains[H-1] = 0``.
    """
    P = np.zeros_like(Q)
    out = []
    for _ in range(H):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        out.append(K)
        P = Q + A.T @ P @ (A - B @ K)
        P = 0.5 * (P + P.T)
    return out[::-1]


def _check_solver(solver: Any) -> None:
    needed = ("solve", "nx", "nu", "n_phi", "param_shapes")
    missing = [a for a in needed if not hasattr(solver, a)]
    if missing:
        raise ValueError(
            f"solver must be an MPCSolver or RiccatiSolver (or have {needed}), got "
            f"{type(solver).__name__} without {missing}"
        )


# ---------------------------------------------------------------------------------------------
# the autograd function and the layer
# ---------------------------------------------------------------------------------------------
class MPCFunction(torch.autograd.Function):
    """``(states, phi) -> (u_0*, V)`` with exact vector-Jacobian products from MPC sensitivities.

    Call through :func:`mpc_layer` (or ``MPCFunction.apply(states, phi, solver, True)``).

    Forward: one ``solver.solve`` call for the whole batch; the sensitivities are computed only
    when the last argument is true (:func:`mpc_layer` passes ``torch.is_grad_enabled()`` and
    whether an input requires a gradient, so that rollouts under ``torch.no_grad`` skip them).
    Backward, for output cotangents ``g_u``
    (N, nu) and ``g_V`` (N,)::

        grad_states[i] = g_u[i] @ du_ds[i] + g_V[i] * dV_ds[i]
        grad_phi       = sum_i g_u[i] @ du_dphi[i] + g_V[i] * dV_dphi[i]

    Not twice differentiable (the MPC's second derivatives are not available).
    """

    @staticmethod
    def forward(ctx, states, phi, solver, sensitivities):
        need = bool(sensitivities)
        ctx.has_sensitivities = need
        S = states.detach().cpu().numpy()
        p = phi.detach().cpu().numpy()
        sol = solver.solve(S, p, sensitivities=need)
        dev = states.device
        if need:
            ctx.save_for_backward(
                *(
                    torch.as_tensor(a, dtype=torch.float64, device=dev)
                    for a in (
                        sol.d_action_d_state,
                        sol.d_action_d_phi,
                        sol.d_value_d_state,
                        sol.d_value_d_phi,
                    )
                )
            )
        actions = torch.as_tensor(np.asarray(sol.actions), dtype=torch.float64, device=dev)
        values = torch.as_tensor(np.asarray(sol.values), dtype=torch.float64, device=dev)
        return actions, values

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_actions, grad_values):
        if not ctx.has_sensitivities:
            raise RuntimeError(
                "MPCFunction was applied with sensitivities=False, so it has no derivatives to "
                "propagate; call it through mpc_layer, which asks for them when a gradient is needed"
            )
        du_ds, du_dphi, dV_ds, dV_dphi = ctx.saved_tensors
        grad_states = grad_phi = None
        if ctx.needs_input_grad[0]:
            grad_states = torch.einsum("ni,nij->nj", grad_actions, du_ds)
            grad_states = grad_states + grad_values[:, None] * dV_ds
        if ctx.needs_input_grad[1]:
            grad_phi = torch.einsum("ni,nip->p", grad_actions, du_dphi) + grad_values @ dV_dphi
        return grad_states, grad_phi, None, None


def mpc_layer(
    states: torch.Tensor, phi: torch.Tensor, solver: Any, with_value: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The MPC policy as a differentiable function of the states and the parameters.

    Parameters
    ----------
    states : torch.Tensor, float64, shape (N, nx) or (nx,)
        States (state units).
    phi : torch.Tensor, float64, shape (n_phi,)
        Parameters in the solver's flat order.
    solver : MPCSolver or RiccatiSolver
    with_value : bool
        Also return ``V^MPC``.

    Returns
    -------
    actions : torch.Tensor, float64, shape (N, nu) (or (nu,) for one state)
    values : torch.Tensor, float64, shape (N,) (or a scalar), only with ``with_value``

    Raises
    ------
    lgutils.mpc.MPCSolveError
        If a solve fails (the error carries the state and the batch index).
    ValueError
        Wrong dtype, shape or non-finite inputs.
    """
    _check_solver(solver)
    for name, t in (("states", states), ("phi", phi)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != torch.float64:
            raise ValueError(f"{name} must be float64 (torch.double), got {t.dtype}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} must be finite, got {t!r}")
    single = states.dim() == 1
    S = states.unsqueeze(0) if single else states
    if S.dim() != 2 or S.shape[1] != solver.nx:
        raise ValueError(
            f"states must have shape (N, {solver.nx}) or ({solver.nx},), got {tuple(states.shape)}"
        )
    if phi.shape != (solver.n_phi,):
        raise ValueError(f"phi must have shape ({solver.n_phi},), got {tuple(phi.shape)}")
    need = torch.is_grad_enabled() and (S.requires_grad or phi.requires_grad)
    actions, values = MPCFunction.apply(S, phi, solver, need)
    if single:
        actions, values = actions[0], values[0]
    return (actions, values) if with_value else actions


class MPCLayer(nn.Module):
    """The MPC policy ``pi_phi(s) = u_0*`` as a module whose parameters are the MPC's ``phi``.

    Parameters
    ----------
    solver : MPCSolver or RiccatiSolver
    phi : dict or array_like
        Initial values: a dict name -> array of the declared shape, or a flat vector
        (shape (n_phi,)).
    with_value : bool
        ``forward`` also returns ``V^MPC``.

    Attributes
    ----------
    phi : torch.nn.ParameterDict
        One float64 parameter per MPC parameter name (e.g. ``"A"``, ``"B"``).

    Notes
    -----
    ``forward(states)`` accepts any floating dtype (SB3 passes float32 observations), solves
    in float64 and returns float64.
    """

    def __init__(self, solver: Any, phi: Any, with_value: bool = False) -> None:
        super().__init__()
        _check_solver(solver)
        self.solver = solver
        self.with_value = bool(with_value)
        flat = self._flatten(phi)
        params = {}
        offset = 0
        for name, shape in solver.param_shapes.items():
            size = int(np.prod(shape)) if shape else 1
            params[name] = nn.Parameter(
                torch.as_tensor(flat[offset : offset + size].reshape(shape), dtype=torch.float64)
            )
            offset += size
        self.phi = nn.ParameterDict(params)

    def _flatten(self, phi: Any) -> np.ndarray:
        shapes = self.solver.param_shapes
        if isinstance(phi, Mapping):
            if set(phi) != set(shapes):
                raise ValueError(
                    f"phi must have the keys {sorted(shapes)}, got {sorted(map(str, phi))}"
                )
            parts = []
            for name, shape in shapes.items():
                parts.append(as_array(f"phi[{name!r}]", phi[name], shape).ravel())
            return np.concatenate(parts) if parts else np.zeros(0)
        return as_vector("phi", phi, self.solver.n_phi)

    def flat_phi(self) -> torch.Tensor:
        """The parameters as one flat float64 tensor (shape (n_phi,)), differentiable."""
        return torch.cat([self.phi[name].reshape(-1) for name in self.solver.param_shapes])

    def phi_numpy(self) -> np.ndarray:
        """The current parameters as a flat numpy vector (shape (n_phi,))."""
        return self.flat_phi().detach().cpu().numpy().copy()

    def forward(self, states: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``u_0*`` (float64, shape (N, nu)) at ``states`` (shape (N, nx)); and ``V`` (N,)."""
        if not isinstance(states, torch.Tensor):
            raise ValueError(f"states must be a torch.Tensor, got {type(states).__name__}")
        return mpc_layer(
            states.to(torch.float64), self.flat_phi(), self.solver, with_value=self.with_value
        )

    def extra_repr(self) -> str:
        return f"solver={self.solver!r}, with_value={self.with_value}"


def gradcheck_layer(
    solver: Any,
    states: Any,
    phi: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """:func:`torch.autograd.gradcheck` of ``(states, phi) -> (u_0*, V)`` in float64.

    Compares the layer's backward (the MPC's sensitivities) with central finite differences
    of its forward, with respect to every state entry and every parameter.

    Parameters
    ----------
    solver : MPCSolver or RiccatiSolver
    states : array_like, shape (N, nx)
        States where the MPC is differentiable (no constraint weakly active).
    phi : array_like, shape (n_phi,)
    eps, atol, rtol : float
        gradcheck's perturbation and tolerances.

    Returns
    -------
    bool
        True if the analytical and numerical Jacobians agree.
    """
    _check_solver(solver)
    S = torch.tensor(as_array("states", states, (None, solver.nx)), requires_grad=True)
    p = torch.tensor(as_vector("phi", phi, solver.n_phi), requires_grad=True)
    return bool(
        torch.autograd.gradcheck(
            lambda s, q: mpc_layer(s, q, solver, with_value=True),
            (S, p),
            eps=check_in_open_interval("eps", eps, 0.0, np.inf),
            atol=check_in_open_interval("atol", atol, 0.0, np.inf),
            rtol=check_in_open_interval("rtol", rtol, -1e-300, np.inf),
            raise_exception=False,
        )
    )


def active_set(mpc: MPC, s: Any, phi: Any, tol: float = 1e-7) -> np.ndarray:
    """Which planned inputs sit on their bounds: ``+1`` upper, ``-1`` lower, ``0`` neither.

    Parameters
    ----------
    mpc : MPC
        An MPC with input bounds.
    s : array_like, shape (nx,)
    phi : dict or array_like
    tol : float
        Distance to a bound (input units) below which the input counts as on the bound.

    Returns
    -------
    numpy.ndarray of int, shape (H, nu)
    """
    if not isinstance(mpc, MPC):
        raise ValueError(f"mpc must be an lgutils.mpc.MPC, got {type(mpc).__name__}")
    tol = check_in_open_interval("tol", tol, 0.0, np.inf)
    u = mpc.policy(s, phi).u_pred
    return (u >= mpc.u_ub - tol).astype(int) - (u <= mpc.u_lb + tol).astype(int)


def active_set_is_stable(
    mpc: MPC, s: Any, phi: Any, radius: float = 1e-3, tol: float = 1e-7
) -> bool:
    """Whether the active set of the input bounds is the same at ``+-radius`` in every coordinate.

    A point where a bound is weakly active (the unconstrained optimum touches it, zero
    multiplier) is a kink of ``u_0*``; there the active set flips under some small
    perturbation of the state or of ``phi``. Gradient checks must avoid such points: this
    test accepts a point only if the active set does not change when any single entry of
    ``s`` or ``phi`` moves by ``+-radius`` (``2 (nx + n_phi)`` extra solves).

    Parameters
    ----------
    mpc : MPC
    s : array_like, shape (nx,)
    phi : array_like, shape (n_phi,)
        Flat parameters.
    radius : float
        Perturbation size (units of each entry); larger than a finite-difference step.
    tol : float
        As in :func:`active_set`.
    """
    s = as_vector("s", s, mpc.nx)
    phi = as_vector("phi", phi, mpc.n_phi)
    radius = check_in_open_interval("radius", radius, 0.0, np.inf)
    ref = active_set(mpc, s, phi, tol)
    z = np.concatenate([s, phi])
    for i in range(z.size):
        for sign in (1.0, -1.0):
            zz = z.copy()
            zz[i] += sign * radius
            if not np.array_equal(active_set(mpc, zz[: mpc.nx], zz[mpc.nx :], tol), ref):
                return False
    return True


#: Categories of :func:`gradcheck_states`, in the order they are returned.
GRADCHECK_CATEGORIES = (
    "u_0 on its upper bound",
    "u_0 on its lower bound",
    "u_0 free, a later input on a bound",
    "no input on a bound",
)


def gradcheck_states(
    mpc: MPC, phi: Any, candidates: Any, radius: float = 1e-3
) -> tuple[np.ndarray, list[str]]:
    """States for a gradient check: one per category of :data:`GRADCHECK_CATEGORIES`.

    Goes through ``candidates`` in order and keeps, for each category of the active set of the
    input bounds (:func:`active_set`), the first state whose active set is stable
    (:func:`active_set_is_stable`): bounds strictly active or strictly inactive, never at the
    kink where ``u_0*`` is not differentiable.

    Parameters
    ----------
    mpc : MPC
    phi : dict or array_like
    candidates : array_like, shape (M, nx)
        Candidate states, e.g. random draws.
    radius : float
        Stability radius of :func:`active_set_is_stable`.

    Returns
    -------
    states : numpy.ndarray, shape (k, nx)
        One state per category found (k <= 4; an MPC without bounds yields only the last).
    labels : list of str, length k
        Their categories.
    """
    if not isinstance(mpc, MPC):
        raise ValueError(f"mpc must be an lgutils.mpc.MPC, got {type(mpc).__name__}")
    phi = mpc.flatten_phi(phi)
    C = as_array("candidates", candidates, (None, mpc.nx))
    found: dict[str, np.ndarray] = {}
    for s in C:
        act = active_set(mpc, s, phi)
        if (act[0] == 1).any():
            label = GRADCHECK_CATEGORIES[0]
        elif (act[0] == -1).any():
            label = GRADCHECK_CATEGORIES[1]
        elif act.any():
            label = GRADCHECK_CATEGORIES[2]
        else:
            label = GRADCHECK_CATEGORIES[3]
        if label not in found and active_set_is_stable(mpc, s, phi, radius):
            found[label] = s.copy()
        if len(found) == len(GRADCHECK_CATEGORIES):
            break
    labels = [c for c in GRADCHECK_CATEGORIES if c in found]
    return np.array([found[c] for c in labels]).reshape(len(labels), mpc.nx), labels


def layer_throughput(
    solver: Any, states: Any, phi: Any, *, backward: bool = False, repeats: int = 5
) -> dict[str, float]:
    """States per second through :func:`mpc_layer`: one batched call against one call per state.

    Parameters
    ----------
    solver : MPCSolver or RiccatiSolver
    states : array_like, shape (N, nx)
    phi : array_like, shape (n_phi,)
    backward : bool
        Time the forward pass with sensitivities plus the backward pass of
        ``sum(u_0*) + sum(V)`` (a training step), instead of the forward pass alone (a rollout).
    repeats : int
        The best of ``repeats`` timings is kept (after one untimed warm-up of each kind of call,
        which builds CasADi's mapped solvers and derivative functions).

    Returns
    -------
    dict
        ``"batched"`` and ``"single"`` (states per second) and ``"ratio"`` (batched / single).
    """
    _check_solver(solver)
    S = torch.tensor(as_array("states", states, (None, solver.nx)))
    p = torch.tensor(as_vector("phi", phi, solver.n_phi), requires_grad=bool(backward))
    repeats = check_positive_int("repeats", repeats)

    def run(batch: torch.Tensor) -> None:
        with torch.set_grad_enabled(bool(backward)):
            u, V = mpc_layer(batch, p, solver, with_value=True)
            if backward:
                (u.sum() + V.sum()).backward()

    def best(fn: Callable[[], None]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    N = S.shape[0]
    run(S)  # warm-up: CasADi builds a map (per batch size) and derivative functions on first use
    run(S[:1])
    t_batch = best(lambda: run(S))
    t_single = best(lambda: [run(S[i : i + 1]) for i in range(N)])
    return {"batched": N / t_batch, "single": N / t_single, "ratio": t_single / t_batch}


# ---------------------------------------------------------------------------------------------
# Stable-Baselines3
# ---------------------------------------------------------------------------------------------
class MPCActorCriticPolicy(ActorCriticPolicy):
    """An SB3 actor-critic policy whose action mean is an MPC: ``a ~ N(u_0*(s; phi), diag(sigma^2))``.

    The actor is :class:`MPCLayer` (learnable ``phi``) fed with the raw observation, plus a
    learnable state-independent ``log sigma`` (SB3's ``log_std``); the critic is an MLP
    (``vf_arch`` hidden units, tanh). Everything else is SB3's ``ActorCriticPolicy``, so
    ``PPO(MPCActorCriticPolicy, env, policy_kwargs=dict(solver=..., phi_init=...))`` trains it
    with no change to SB3. All parameters share PPO's learning rate (SB3 overwrites the
    learning rate of every parameter group at each update).

    Parameters
    ----------
    observation_space : gymnasium.spaces.Box, shape (nx,)
    action_space : gymnasium.spaces.Box, shape (nu,)
    lr_schedule : callable
        Given by the algorithm.
    solver : MPCSolver or RiccatiSolver
        The MPC (its ``nx``/``nu`` must match the spaces).
    phi_init : dict or array_like
        Initial ``phi``.
    vf_arch : sequence of int
        Hidden units of the value network.
    log_std_init : float
        Initial ``log sigma`` (log of input units).
    **kwargs
        Passed to ``ActorCriticPolicy`` (``ortho_init``, ``optimizer_kwargs``, ...); ``net_arch``
        and ``use_sde`` are fixed by this class.

    Attributes
    ----------
    mpc_layer : MPCLayer
        The actor's mean (also ``action_net``).

    Notes
    -----
    The SB3 features are float32 observations; the layer solves in float64 and the mean is cast
    back to float32 for SB3's distribution. ``model.save`` cannot pickle a CasADi solver: store
    ``mpc_layer.phi_numpy()`` instead.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        lr_schedule: Callable[[float], float],
        solver: Any = None,
        phi_init: Any = None,
        vf_arch: tuple[int, ...] | list[int] = (64, 64),
        log_std_init: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if solver is None or phi_init is None:
            raise ValueError(
                "policy_kwargs must contain solver (MPCSolver or RiccatiSolver) and phi_init, "
                f"got solver={solver!r}, phi_init={'None' if phi_init is None else '...'}"
            )
        _check_solver(solver)
        if not isinstance(observation_space, gym.spaces.Box) or observation_space.shape != (
            solver.nx,
        ):
            raise ValueError(
                f"observation_space must be a Box of shape ({solver.nx},), got {observation_space}"
            )
        if not isinstance(action_space, gym.spaces.Box) or action_space.shape != (solver.nu,):
            raise ValueError(
                f"action_space must be a Box of shape ({solver.nu},), got {action_space}"
            )
        if "net_arch" in kwargs:
            raise ValueError(
                f"net_arch is fixed by MPCActorCriticPolicy, got {kwargs['net_arch']!r}"
            )
        if kwargs.get("use_sde", False):
            raise ValueError(
                "use_sde must be False: the policy's noise is state-independent, got True"
            )
        vf_arch = [check_positive_int("vf_arch[i]", int(h)) for h in vf_arch]
        self._solver = solver
        self._phi_init = phi_init
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch={"pi": [], "vf": vf_arch},
            log_std_init=float(log_std_init),
            **kwargs,
        )

    def _build(self, lr_schedule: Callable[[float], float]) -> None:
        self._build_mlp_extractor()
        if not isinstance(self.action_dist, DiagGaussianDistribution):
            raise ValueError(
                f"MPCActorCriticPolicy needs a Gaussian policy, got {self.action_dist}"
            )
        self.mpc_layer = MPCLayer(self._solver, self._phi_init)
        self.action_net = self.mpc_layer
        self.log_std = nn.Parameter(
            torch.full((self._solver.nu,), float(self.log_std_init)), requires_grad=True
        )
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            self.mlp_extractor.apply(lambda m: self.init_weights(m, gain=np.sqrt(2)))
            self.value_net.apply(lambda m: self.init_weights(m, gain=1.0))
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor):
        # latent_pi is the observation itself (the policy branch of the MLP extractor is empty)
        mean = self.mpc_layer(latent_pi).to(latent_pi.dtype)
        return self.action_dist.proba_distribution(mean, self.log_std)


class SB3Agent:
    """Any ``lgutils`` MPC agent behind SB3's ``predict`` interface (for ``evaluate_policy``).

    ``predict(observation, state, episode_start, deterministic)`` maps a batch of observations
    (one per environment of a ``VecEnv``) to actions. Agents:

    - :class:`lgutils.mpc.MPC`, solved with ``policy_batch`` at ``phi``; an MPC that uses the
      previous input keeps it per environment in SB3's recurrent ``state`` (reset to
      ``u_prev0`` at ``episode_start``);
    - :class:`MPCLayer` (no gradient), or a solver (:class:`MPCSolver`, :class:`RiccatiSolver`)
      at ``phi``;
    - an object with ``policy(x, phi, u_prev=...)`` returning a result with ``.action`` (e.g.
      :class:`lgutils.mpc.scenario.ScenarioMPC`), solved row by row;
    - a batch policy: a callable ``X (N, nx) -> U (N, nu)`` (e.g.
      :func:`lgutils.local_global.mpc_policy`).

    Parameters
    ----------
    agent : see above
    phi : dict or array_like, optional
        Parameters for an MPC or a solver (the MPC's default parameter values if omitted).
    u_prev0 : array_like, shape (nu,), optional
        Input assumed before each episode, for agents that use the previous input
        (default zeros).
    noise_std : float
        Standard deviation of Gaussian exploration added when ``deterministic=False``
        (input units; 0: the agent is deterministic either way).
    seed : int, optional
        Seed of that noise.

    Raises
    ------
    lgutils.mpc.MPCSolveError
        From ``predict`` when a solve fails.
    """

    def __init__(
        self,
        agent: Any,
        phi: Any = None,
        *,
        u_prev0: Any = None,
        noise_std: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.agent = agent
        self.noise_std = check_in_open_interval("noise_std", noise_std, -1e-300, np.inf)
        self._rng = np.random.default_rng(seed)
        self.uses_u_prev = False
        if isinstance(agent, MPC):
            self.kind, nu = "mpc", agent.nu
            self.phi = None if phi is None else agent.flatten_phi(phi)
            self.uses_u_prev = agent.use_u_prev
        elif isinstance(agent, MPCLayer):
            self.kind, nu, self.phi = "layer", agent.solver.nu, None
        elif hasattr(agent, "solve") and hasattr(agent, "n_phi"):
            if phi is None:
                raise ValueError(f"phi is required with a solver agent ({type(agent).__name__})")
            self.kind, nu = "solver", agent.nu
            self.phi = as_vector("phi", phi, agent.n_phi)
        elif hasattr(agent, "policy") and callable(agent.policy):
            self.kind, nu, self.phi = "rowwise", getattr(agent, "nu", None), phi
            self.uses_u_prev = bool(getattr(agent, "uses_u_prev", False))
        elif callable(agent):
            self.kind, nu, self.phi = "batch", None, None
        else:
            raise ValueError(
                "agent must be an MPC, MPCLayer, solver, object with .policy(x, phi) or a batch "
                f"policy callable, got {type(agent).__name__}"
            )
        if self.uses_u_prev:
            if nu is None:
                raise ValueError("agent uses the previous input but has no attribute nu")
            self.u_prev0 = np.zeros(nu) if u_prev0 is None else as_vector("u_prev0", u_prev0, nu)
        else:
            self.u_prev0 = None

    def _act(self, X: np.ndarray, U_prev: np.ndarray | None) -> np.ndarray:
        if self.kind == "mpc":
            return self.agent.policy_batch(X, self.phi, U_prev=U_prev).actions
        if self.kind == "layer":
            with torch.no_grad():
                return self.agent(torch.as_tensor(X, dtype=torch.float64)).cpu().numpy()
        if self.kind == "solver":
            return self.agent.solve(X, self.phi).actions
        if self.kind == "rowwise":
            rows = []
            for i, x in enumerate(X):
                kw = {"u_prev": U_prev[i]} if U_prev is not None else {}
                rows.append(np.asarray(self.agent.policy(x, self.phi, **kw).action, dtype=float))
            return np.asarray(rows)
        return np.asarray(self.agent(X), dtype=float)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Actions for a batch of observations, SB3 style.

        Parameters
        ----------
        observation : array_like, shape (n_envs, nx) or (nx,)
        state : numpy.ndarray, shape (n_envs, nu), optional
            The previous inputs (agents that use them); ``None`` at the start.
        episode_start : array_like of bool, shape (n_envs,), optional
            Environments whose episode just started (their previous input is reset).
        deterministic : bool
            Without it, Gaussian noise of ``noise_std`` is added.

        Returns
        -------
        actions : numpy.ndarray, float32, shape (n_envs, nu) (or (nu,) for one observation)
        state : numpy.ndarray or None
            The actions just taken, for agents that use the previous input.
        """
        X = as_array("observation", observation)
        single = X.ndim == 1
        X = X[None] if single else X
        if X.ndim != 2:
            raise ValueError(f"observation must have shape (n_envs, nx), got shape {X.shape}")
        U_prev = None
        if self.uses_u_prev:
            U_prev = (
                np.tile(self.u_prev0, (len(X), 1))
                if state is None
                else as_array("state", state, (len(X), self.u_prev0.size)).copy()
            )
            if episode_start is not None:
                U_prev[np.asarray(episode_start, dtype=bool).reshape(-1)] = self.u_prev0
        U = np.asarray(self._act(X, U_prev), dtype=float).reshape(len(X), -1)
        if not deterministic and self.noise_std > 0:
            U = U + self.noise_std * self._rng.standard_normal(U.shape)
        new_state = U.copy() if self.uses_u_prev else None
        U32 = U.astype(np.float32)
        return (U32[0] if single else U32), new_state


class EpisodeEndIsTermination(gym.Wrapper):
    """Report the end of a fixed-length episode as a termination, not a time-limit truncation.

    Case study B's objective is the undiscounted return of a T-step episode: nothing follows the
    T-th step. SB3 treats ``truncated=True`` as a time limit and bootstraps the return with the
    critic's value of the last state (``r_T + gamma V(s_T)``), which would add a fictitious
    tail to every episode. With this wrapper the episode *ends* after T steps.
    """

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, bool(terminated or truncated), False, info


# ---------------------------------------------------------------------------------------------
# PPO on case study B through the layer
# ---------------------------------------------------------------------------------------------
#: Input bound of case study B's environment for SB3 (input units), which requires a bounded
#: action space. The closed loops of Fig. 4 use inputs of order 1; only a blown-up model reaches it.
ACTION_LIMIT: float = 100.0


def case_b_expected_returns(phi: Any, action_std: float = 0.01) -> np.ndarray:
    """Exact expected return on case study B of the MPC policies with models ``phi``.

    The unconstrained MPC with model ``phi = [vec(A_phi); vec(B_phi)]`` is the gain
    ``K_0(phi)`` (:func:`lgutils.mpc_reinforce.model.mpc_gain`); its T-step expected return from
    ``x_0`` with Gaussian exploration ``sigma_a`` is
    :func:`lgutils.mpc_reinforce.rollout.expected_return` -- the measure of Fig. 4 in chapter 08.

    Parameters
    ----------
    phi : array_like, shape (..., 20)
        Models (any leading shape, e.g. (runs, checkpoints, 20)).
    action_std : float
        Exploration standard deviation ``sigma_a`` (input units); 0 for the deterministic policy.

    Returns
    -------
    numpy.ndarray, shape (...)
        Expected returns (reward units); ``-inf`` where the closed loop overflows.
    """
    env = model.case_b()
    n, m = env.B.shape
    phi = as_array("phi", phi)
    if phi.ndim < 1 or phi.shape[-1] != n * n + n * m:
        raise ValueError(f"phi must have shape (..., {n * n + n * m}), got shape {phi.shape}")
    lead = phi.shape[:-1]
    A, B = model.split_phi(phi.reshape(-1, phi.shape[-1]), n, m)
    K = model.mpc_gain(A, B, env.Q, env.R)
    J = rollout.expected_return(
        env.A, env.B, env.Q, env.R, K, env.x0, env.noise_std, action_std, env.horizon
    )
    return np.asarray(J, dtype=float).reshape(lead)


def case_b_mismatch(phi: Any) -> tuple[np.ndarray, np.ndarray]:
    """Model mismatch ``||A_phi - A||_F`` and ``||B_phi - B||_F`` of case study B (Fig. 4, bottom).

    Parameters
    ----------
    phi : array_like, shape (..., 20)

    Returns
    -------
    mismatch_A, mismatch_B : numpy.ndarray, shape (...)
    """
    env = model.case_b()
    n, m = env.B.shape
    phi = as_array("phi", phi)
    if phi.ndim < 1 or phi.shape[-1] != n * n + n * m:
        raise ValueError(f"phi must have shape (..., {n * n + n * m}), got shape {phi.shape}")
    A, B = model.split_phi(phi, n, m)
    return (
        np.sqrt(np.sum((A - env.A) ** 2, axis=(-2, -1))),
        np.sqrt(np.sum((B - env.B) ** 2, axis=(-2, -1))),
    )


class PPORun(NamedTuple):
    """One PPO training of the MPC policy; index ``k`` is the model after ``k`` rollouts.

    Attributes
    ----------
    phi : numpy.ndarray, shape (E + 1, n_phi)
        ``phi`` before each rollout and after the last update.
    log_std : numpy.ndarray, shape (E + 1, nu)
        The policy's ``log sigma`` at the same points.
    episodes : numpy.ndarray of int, shape (E + 1,)
        Episodes used before each point.
    sampled_returns : numpy.ndarray, shape (E,)
        Mean return of the episodes of each rollout (PPO's own exploration).
    wall_time : float
        Seconds of ``PPO.learn``.
    steps : int
        Environment steps of the training.
    """

    phi: np.ndarray
    log_std: np.ndarray
    episodes: np.ndarray
    sampled_returns: np.ndarray
    wall_time: float
    steps: int


class PPOHistory(BaseCallback):
    """SB3 callback: ``phi`` and ``log sigma`` before each rollout, the rollout's mean return.

    Parameters
    ----------
    episode_length : int
        Steps per episode (to turn a rollout's summed rewards into a mean episode return).
    n_rollouts : int, optional
        Length of the progress bar (none if omitted).
    """

    def __init__(self, episode_length: int, n_rollouts: int | None = None) -> None:
        super().__init__()
        self.episode_length = check_positive_int("episode_length", episode_length)
        self.n_rollouts = n_rollouts
        self.phi: list[np.ndarray] = []
        self.log_std: list[np.ndarray] = []
        self.steps: list[int] = []
        self.returns: list[float] = []
        self._bar = None

    def _snapshot(self) -> None:
        policy = self.model.policy
        self.phi.append(policy.mpc_layer.phi_numpy())
        self.log_std.append(policy.log_std.detach().cpu().numpy().copy())
        self.steps.append(int(self.num_timesteps))

    def _on_training_start(self) -> None:
        if self.n_rollouts is not None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.n_rollouts, desc="PPO rollouts", leave=False)

    def _on_rollout_start(self) -> None:
        self._snapshot()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buf = self.model.rollout_buffer
        n_episodes = buf.rewards.size / self.episode_length
        self.returns.append(float(buf.rewards.sum() / n_episodes))
        if self._bar is not None:
            self._bar.update(1)

    def _on_training_end(self) -> None:
        self._snapshot()
        if self._bar is not None:
            self._bar.close()


def train_ppo(
    solver: Any,
    phi_init: Any,
    n_rollouts: int,
    *,
    seed: int = 0,
    n_envs: int = 8,
    episodes_per_env: int = 8,
    n_epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    clip_range: float = 0.2,
    gae_lambda: float = 0.95,
    gamma: float = 1.0,
    max_grad_norm: float = 0.5,
    log_std_init: float = float(np.log(0.01)),
    vf_arch: tuple[int, ...] = (64, 64),
    make_env: Callable[[], gym.Env] | None = None,
    progress: bool = False,
) -> PPORun:
    """SB3's PPO on the MPC policy (:class:`MPCActorCriticPolicy`), one rollout = a batch of episodes.

    Each rollout collects ``episodes_per_env`` complete episodes from each of ``n_envs``
    environments (a ``DummyVecEnv``), i.e. ``n_envs * episodes_per_env`` episodes -- with the
    defaults, the 64 episodes of one REINFORCE update of case study B -- then PPO takes
    ``n_epochs`` passes of minibatches of ``batch_size`` steps over them (clipped surrogate,
    GAE advantages normalised per minibatch, value loss, global gradient-norm clipping).

    Parameters
    ----------
    solver : MPCSolver or RiccatiSolver
        The actor's MPC.
    phi_init : dict or array_like
        Initial ``phi``.
    n_rollouts : int
        Rollouts (= PPO updates) E.
    seed : int
        Seed of PPO (torch, action sampling) and of the environments (``seed + i`` for env i).
    n_envs, episodes_per_env : int
        Vectorised environments and complete episodes per environment per rollout.
    n_epochs, batch_size, learning_rate, clip_range, gae_lambda, gamma, max_grad_norm
        PPO's settings (``gamma = 1``: the undiscounted return of case study B).
    log_std_init : float
        Initial ``log sigma`` (default ``log 0.01``, the exploration of Fig. 4).
    vf_arch : tuple of int
        Hidden units of the critic.
    make_env : callable, optional
        Builds one environment, whose action space must be bounded (SB3 requires it) and which
        has an attribute ``horizon`` (steps per episode); it is wrapped in
        :class:`EpisodeEndIsTermination`. Default: case study B,
        ``LinearQuadraticEnv.case_study_b(action_low=-ACTION_LIMIT, action_high=ACTION_LIMIT)``.
    progress : bool
        Show a progress bar over the rollouts.

    Returns
    -------
    PPORun
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from lgutils.core.envs import LinearQuadraticEnv

    _check_solver(solver)
    E = check_positive_int("n_rollouts", n_rollouts)
    n_envs = check_positive_int("n_envs", n_envs)
    per_env = check_positive_int("episodes_per_env", episodes_per_env)
    seed = check_positive_int("seed", seed, minimum=0)
    builder = make_env or (
        lambda: LinearQuadraticEnv.case_study_b(action_low=-ACTION_LIMIT, action_high=ACTION_LIMIT)
    )
    if not callable(builder):
        raise ValueError(f"make_env must be callable, got {type(builder).__name__}")
    T = check_positive_int("make_env().horizon", getattr(builder().unwrapped, "horizon", None))
    n_steps = per_env * T
    venv = make_vec_env(lambda: EpisodeEndIsTermination(builder()), n_envs=n_envs, seed=seed)
    model = PPO(
        MPCActorCriticPolicy,
        venv,
        learning_rate=check_in_open_interval("learning_rate", learning_rate, 0.0, np.inf),
        n_steps=n_steps,
        batch_size=check_positive_int("batch_size", batch_size, minimum=2),
        n_epochs=check_positive_int("n_epochs", n_epochs),
        gamma=check_in_open_interval("gamma", gamma, 0.0, 1.0, closed_high=True),
        gae_lambda=check_in_open_interval("gae_lambda", gae_lambda, -1e-300, 1.0, closed_high=True),
        clip_range=check_in_open_interval("clip_range", clip_range, 0.0, np.inf),
        max_grad_norm=check_in_open_interval("max_grad_norm", max_grad_norm, 0.0, np.inf),
        ent_coef=0.0,
        policy_kwargs={
            "solver": solver,
            "phi_init": phi_init,
            "log_std_init": float(log_std_init),
            "vf_arch": tuple(vf_arch),
        },
        seed=seed,
        device="cpu",
        verbose=0,
    )
    history = PPOHistory(T, E if progress else None)
    t0 = time.perf_counter()
    model.learn(total_timesteps=E * n_steps * n_envs, callback=history)
    wall = time.perf_counter() - t0
    venv.close()
    steps = np.asarray(history.steps)
    return PPORun(
        phi=np.asarray(history.phi),
        log_std=np.asarray(history.log_std),
        episodes=(steps // T).astype(int),
        sampled_returns=np.asarray(history.returns),
        wall_time=wall,
        steps=int(model.num_timesteps),
    )
