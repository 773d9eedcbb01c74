"""Chapter 04 writes eq. (13) by hand; the library's linear-quadratic MPC must be the same MPC.

The chapter builds the MPC of eq. (13) for ``x' = A x + B u`` as a CasADi NLP of its own
(``mpc_q_nlp``: inputs and predicted states as decisions, the dynamics and ``u_0 = a`` as
equality rows, stage plus terminal cost) and reads ``Q(s, a)`` and, with the row ``u_0 = a``
released, ``V(s)`` and ``pi(s)`` from it (``mpc_q_value``, ``mpc_value_and_policy``). The
library's :func:`lgutils.mpc.linear_quadratic_mpc` is the same problem transcribed by other
code (``u_0`` substituted by ``a``, two NLPs). Both must give the same numbers on a few pairs
``(s, a)``, for the chapter's double integrator and for a random system, with the Riccati
terminal weight and with another one, so that a change on either side fails here. The closed
form ``Q*`` of the Riccati equation (:mod:`lgutils.core.lqr`) is the independent check of both.
"""

from __future__ import annotations

import numpy as np
import pytest
from _chapter_code import chapter_functions

from lgutils.core import lqr
from lgutils.mpc import SolverOptions, linear_quadratic_mpc

CHAPTER = "04_mpc_function_approximator"
TOL = 1e-8  # both sides solve an equality-constrained QP with IPOPT at tol 1e-10

DOUBLE_INTEGRATOR = (
    np.array([[1.0, 0.1], [0.0, 1.0]]),
    np.array([[0.005], [0.1]]),
    np.eye(2),
    np.array([[0.1]]),
)


def _random_system(seed: int) -> tuple[np.ndarray, ...]:
    """Three states, two inputs, positive definite weights."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, 3)) / np.sqrt(3)
    B = rng.normal(size=(3, 2))
    L = rng.normal(size=(3, 3))
    return A, B, L @ L.T + 0.1 * np.eye(3), np.diag([0.5, 2.0])


@pytest.fixture(scope="module")
def chapter() -> dict:
    return chapter_functions(CHAPTER, "mpc_q_nlp", "mpc_q_value", "mpc_value_and_policy")


def _pairs(nx: int, nu: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=nx), rng.normal(size=nu)) for _ in range(4)]


@pytest.mark.parametrize(
    ("system", "horizon"),
    [(DOUBLE_INTEGRATOR, 3), (_random_system(1), 2)],
    ids=["double-integrator-H3", "random-3x2-H2"],
)
@pytest.mark.parametrize("terminal", ["riccati", "other"])
def test_hand_built_q_value_and_policy_equal_the_library(chapter, system, horizon, terminal):
    A, B, Q, R = system
    nx, nu = B.shape
    P, K = lqr.dare(A, B, Q, R)
    if terminal == "other":  # not the Riccati weight: Q^MPC is then not -Q*
        P = 0.3 * P + np.eye(nx)
    solver = chapter["mpc_q_nlp"](A, B, Q, R, P, horizon)
    lib = linear_quadratic_mpc(nx, nu, horizon, solver=SolverOptions(ipopt={"tol": 1e-10}))
    phi = {"A": A, "B": B, "Q": Q, "R": R, "P": P}
    H_star, c_star = lqr.q_matrix(A, B, Q, R)
    for s, a in _pairs(nx, nu, seed=horizon):
        q_hand = chapter["mpc_q_value"](solver, s, a)
        q_lib = lib.q_value(s, a, phi=phi).value
        assert q_hand == pytest.approx(q_lib, rel=TOL, abs=TOL)
        q_star = -lqr.q_value(H_star, c_star, s[None], a[None])[0]
        if terminal == "riccati":  # the identity of the chapter: Q^MPC = -Q*
            assert q_hand == pytest.approx(q_star, rel=TOL, abs=TOL)
        else:
            assert abs(q_hand - q_star) > 1e-6 * abs(q_star)

        v_hand, pi_hand = chapter["mpc_value_and_policy"](solver, s, nu)
        assert v_hand == pytest.approx(lib.value(s, phi=phi).value, rel=TOL, abs=TOL)
        np.testing.assert_allclose(pi_hand, lib.policy(s, phi=phi).action, rtol=TOL, atol=TOL)
        if terminal == "riccati":  # V = s^T P s and the LQR action -K s
            assert v_hand == pytest.approx(s @ P @ s, rel=TOL, abs=TOL)
            np.testing.assert_allclose(pi_hand, -K @ s, rtol=TOL, atol=TOL)
        assert v_hand <= q_hand + TOL  # V is the minimum of Q over a


def test_hand_built_q_is_the_minimum_over_the_rest_of_the_plan(chapter):
    """``Q(s, a)`` is the smallest cost of any plan starting with ``a``: a random plan is worse."""
    A, B, Q, R = DOUBLE_INTEGRATOR
    P, _ = lqr.dare(A, B, Q, R)
    solver = chapter["mpc_q_nlp"](A, B, Q, R, P, 3)
    s, a = np.array([1.0, -0.5]), np.array([0.3])
    q = chapter["mpc_q_value"](solver, s, a)
    rng = np.random.default_rng(0)
    for _ in range(20):
        u, x, cost = np.r_[a, rng.normal(size=2)], s, 0.0
        for k in range(3):
            cost += x @ Q @ x + R[0, 0] * u[k] ** 2
            x = A @ x + B[:, 0] * u[k]
        assert q <= cost + x @ P @ x + TOL
