"""The layer's solvers: ``(S, phi) -> u_0*, V`` and their sensitivities for a batch of states.

A solver has one method, ``solve(S, phi, sensitivities)``, and the attributes ``nx``, ``nu``,
``n_phi`` and ``param_shapes``; the PyTorch layer (:mod:`lgutils.mpc_in_rl_library.layer`)
calls nothing else. Two solvers of the same MPC:

- :class:`MPCSolver` wraps any :class:`lgutils.mpc.MPC` (CasADi + IPOPT, constraints allowed;
  or, for a linear-quadratic MPC built with ``SolverOptions(method="qp")``, CasADi's QP
  interface, :mod:`lgutils.mpc.qp`) and batches through the MPC's batch methods;
- :class:`RiccatiSolver` is the closed form of case study B's unconstrained linear-quadratic
  MPC (:mod:`lgutils.mpc_reinforce.model`), batched in numpy.

Both return a :class:`PolicySolution`. Conventions: states and parameters are float64; ``V``
is the MPC's optimal *cost* ``V^MPC`` (the reward-convention value is ``-V^MPC``, paper
footnote 1); ``phi`` is flat in the order of :meth:`lgutils.mpc.MPC.flatten_phi` (names in
declaration order, each raveled row-major). Shapes: ``N`` states in a batch, ``nx`` states,
``nu`` inputs, ``n_phi`` parameters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from lgutils.core.validate import as_array, as_vector, check_pd, check_positive_int, check_psd
from lgutils.mpc import MPC, MPCSolveError
from lgutils.mpc_reinforce import model

__all__ = ["PolicySolution", "MPCSolver", "RiccatiSolver", "stage_gains", "check_solver"]


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
    of the NLP solution per state, warm-started from one state to the next). An MPC built with
    ``SolverOptions(method="qp")`` (a linear-quadratic MPC, e.g. with input bounds) is solved
    by a QP solver instead, and its sensitivities come from the KKT system of the QP, for the
    whole batch in one call (:mod:`lgutils.mpc.qp`). A failed solve raises the MPC's
    :class:`~lgutils.mpc.MPCSolveError` (with the batch index).

    Parameters
    ----------
    mpc : MPC
        The MPC; it must not use the previous input (``use_u_prev``), which a memoryless layer
        cannot supply.
    method : {"loop", "map"}
        How :meth:`~lgutils.mpc.MPC.policy_batch` solves a batch without sensitivities:
        ``"loop"`` (warm-started solves, IPOPT's status checked for each) or ``"map"`` (CasADi's
        ``map`` of the solver, cold starts; a failure is detected only through non-finite
        numbers or violated constraints). Sensitivities always use the loop. With
        ``SolverOptions(method="qp")``, ``"map"`` is one mapped call of the QP whose solutions
        are checked as in a single solve, and sensitivities are batched either way.
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
            gains = stage_gains(A, B, self.Q, self.R, H)
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


def stage_gains(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, H: int
) -> list[np.ndarray]:
    """Feedback gains of the H-step plan: ``u_k = -gains[k] x_k``, ``gains[k] = K^{(H-k)}``.

    The Riccati recursion with ``P = 0`` yields, at its j-th iteration, the first-stage gain of
    the j-step problem (:func:`lgutils.mpc_reinforce.model.mpc_gain` with ``horizon=j``), so
    one pass gives every stage's gain; ``gains[0]`` is ``K_0`` and ``gains[H-1] = 0``.

    Parameters
    ----------
    A : numpy.ndarray, shape (n, n)
    B : numpy.ndarray, shape (n, m)
        The prediction model ``x_{k+1} = A x_k + B u_k``.
    Q : numpy.ndarray, shape (n, n)
    R : numpy.ndarray, shape (m, m)
        Stage weights (no terminal weight).
    H : int
        Horizon.

    Returns
    -------
    list of H numpy.ndarray, each shape (m, n)
    """
    P = np.zeros_like(Q)
    out = []
    for _ in range(check_positive_int("H", H)):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        out.append(K)
        P = Q + A.T @ P @ (A - B @ K)
        P = 0.5 * (P + P.T)
    return out[::-1]


def check_solver(solver: Any) -> None:
    """Raise ValueError unless ``solver`` has what the layer calls (``solve`` and the sizes)."""
    needed = ("solve", "nx", "nu", "n_phi", "param_shapes")
    missing = [a for a in needed if not hasattr(solver, a)]
    if missing:
        raise ValueError(
            f"solver must be an MPCSolver or RiccatiSolver (or have {needed}), got "
            f"{type(solver).__name__} without {missing}"
        )
