"""The MPC as a differentiable PyTorch layer (paper Sec. V.C: sensitivity propagation).

- :class:`MPCFunction` -- a :class:`torch.autograd.Function` whose forward solves the MPC of
  eq. (14) for a batch of states and returns ``u_0*`` and ``V`` (the optimal cost), and whose
  backward returns exact vector-Jacobian products from the MPC's own sensitivities
  ``d u_0*/d(s, phi)`` and ``d V/d(s, phi)``; :func:`mpc_layer` is its functional form;
- :class:`MPCLayer` -- a :class:`torch.nn.Module` that holds ``phi`` as
  :class:`torch.nn.Parameter` s (one per named MPC parameter);
- checks of the gradients: :func:`gradcheck_layer` (finite differences), and the states where
  an input-constrained MPC is differentiable (:func:`active_set`,
  :func:`active_set_is_stable`, :func:`gradcheck_states`);
- :func:`layer_throughput` -- states per second, one batched call against one call per state.

The layer calls a solver of :mod:`lgutils.mpc_in_rl_library.solvers` (``MPCSolver`` for any
:class:`lgutils.mpc.MPC`, ``RiccatiSolver`` for case study B's closed form). Conventions: states
and parameters are float64; ``V`` is the MPC's optimal *cost* ``V^MPC``; ``phi`` is flat in the
order of :meth:`lgutils.mpc.MPC.flatten_phi`. Shapes: ``N`` states in a batch, ``nx`` states,
``nu`` inputs, ``n_phi`` parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from lgutils.core.validate import (
    as_array,
    as_vector,
    check_in_open_interval,
    check_positive_int,
)
from lgutils.mpc import MPC
from lgutils.mpc_in_rl_library.solvers import check_solver

__all__ = [
    "MPCFunction",
    "mpc_layer",
    "MPCLayer",
    "gradcheck_layer",
    "active_set",
    "active_set_is_stable",
    "GRADCHECK_CATEGORIES",
    "gradcheck_states",
    "layer_throughput",
]


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
    check_solver(solver)
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
        check_solver(solver)
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
    check_solver(solver)
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
    check_solver(solver)
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
