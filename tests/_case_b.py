"""Case study B's reference returns computed from its constants alone (scipy and numpy, no lgutils
arithmetic): the optimum J(theta*) and the return of the MPC that uses the true model.

The environment (paper Sec. V.B, ref. [42]): ``x+ = A x + B a + w``, ``w ~ N(0, 0.01^2 I)``, reward
``-(x'Qx + R a^2)`` over ``T = 10`` steps from a fixed ``x0``, undiscounted; the policies act with
Gaussian exploration noise of standard deviation 0.01 on the action.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from lgutils.core.envs import CASE_STUDY_B


def system() -> tuple[np.ndarray, ...]:
    """``A, B, Q, R, x0`` as arrays."""
    cs = CASE_STUDY_B
    return tuple(np.array(cs[k], dtype=float) for k in ("A", "B", "Q", "R", "x0"))


def expected_return(K: np.ndarray, action_std: float = 0.01) -> float:
    """``E[sum_{t<T} r_t]`` of ``a = -K x + e`` by propagating the state's mean and covariance."""
    A, B, Q, R, x0 = system()
    W = CASE_STUDY_B["noise_std"] ** 2 * np.eye(A.shape[0])
    E = action_std**2 * np.eye(B.shape[1])
    mean, cov, total = x0, np.zeros_like(A), 0.0
    for _ in range(CASE_STUDY_B["horizon"]):
        M = Q + K.T @ R @ K  # E[x'Qx + a'Ra] = tr(M (cov + mean mean')) + tr(R E)
        total -= mean @ M @ mean + np.trace(M @ cov) + np.trace(R @ E)
        A_K = A - B @ K
        mean, cov = A_K @ mean, A_K @ cov @ A_K.T + B @ E @ B.T + W
    return float(total)


def optimal_gain() -> np.ndarray:
    """The infinite-horizon LQR gain of the true system (scipy's DARE, undiscounted)."""
    A, B, Q, R, _ = system()
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    return np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)


def true_model_mpc_gain(horizon: int = 5) -> np.ndarray:
    """The first gain of the MPC on the true model: ``horizon`` stages, no terminal cost."""
    A, B, Q, R, _ = system()
    P = np.zeros_like(A)  # the cost after the last stage
    for _ in range(horizon):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
    return K
