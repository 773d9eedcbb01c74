"""What an MPC solve returns: results, batches, sensitivities, and the error of a failed solve."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SUCCESS_STATUSES",
    "UnknownParameterError",
    "MPCSolveError",
    "MPCResult",
    "BatchResult",
    "PolicySensitivity",
    "QSensitivity",
]

#: IPOPT return statuses accepted as a converged solve.
SUCCESS_STATUSES = ("Solve_Succeeded", "Solved_To_Acceptable_Level")

#: IPOPT options for a primal-dual warm start (pass as ``warm_ipopt_options``, so that they apply
#: to the solves that start from a stored solution): start from the stored primal-dual solution
#: with a small barrier parameter instead of IPOPT's default ``mu_init=0.1``.


class UnknownParameterError(ValueError, KeyError):
    """A callable of the MPC asked for a parameter name that ``params`` does not declare."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MPCSolveError(RuntimeError):
    """An MPC solve failed: infeasible, iteration limit, non-finite result or infeasible data.

    Attributes
    ----------
    status : str
        IPOPT's return status (e.g. ``"Infeasible_Problem_Detected"``,
        ``"Maximum_Iterations_Exceeded"``), or the QP solver's prefixed by its name with
        ``SolverOptions(method="qp")`` (e.g. ``"daqp: infeasible"``), or
        ``"infeasible_fixed_data"`` when a hard constraint that involves only fixed data (the
        state ``s``, the action ``a``) is violated, or ``"non_finite"``.
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
        IPOPT's return status (``"Solve_Succeeded"`` for a checked solution of the QP path,
        ``SolverOptions(method="qp")``).
    iterations : int
        IPOPT iterations (-1 on the QP path, which does not report them).
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
