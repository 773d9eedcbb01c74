"""The gradient of the exact return that chapter 06 writes out, against finite differences.

The chapter's section "A wrong model, a right policy" ascends the true return of a linear
policy, ``J(K)``, with the closed-form gradient ``dJ/dK`` it writes in ``return_gradient``.
``lgutils.core.lqr.policy_return`` computes ``J(K)`` itself; central differences of it must
agree with the chapter's gradient on any stable, discounted system.
"""

from __future__ import annotations

import numpy as np
import pytest
from _chapter_code import chapter_functions

from lgutils.core import lqr

CHAPTER = chapter_functions("06_practical_optimisation", "return_gradient")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_return_gradient_equals_finite_differences_of_the_exact_return(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m, gamma = 3, 2, 0.9
    A, B = rng.normal(size=(n, n)) * 0.6, rng.normal(size=(n, m))
    Q, R = np.diag(rng.uniform(0.5, 2.0, n)), np.diag(rng.uniform(0.5, 2.0, m))
    M = rng.normal(size=(n, n))
    Sigma0 = M @ M.T + 0.1 * np.eye(n)
    _, K_star = lqr.dare(A, B, Q, R, gamma)
    K = K_star + 0.1 * rng.normal(size=(m, n))  # a stabilising gain that is not optimal
    assert lqr.closed_loop_radius(A, B, K, gamma) < 1

    def J(K):
        return lqr.policy_return(A, B, Q, R, K, np.zeros(n), Sigma0, None, gamma)

    h, fd = 1e-6, np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            E = np.zeros((m, n))
            E[i, j] = h
            fd[i, j] = (J(K + E) - J(K - E)) / (2 * h)
    G = CHAPTER["return_gradient"](A, B, Q, R, K, gamma, Sigma0)
    np.testing.assert_allclose(G, fd, rtol=1e-5, atol=1e-8)
    # and it vanishes at the optimum
    np.testing.assert_allclose(
        CHAPTER["return_gradient"](A, B, Q, R, K_star, gamma, Sigma0), 0, atol=1e-9
    )
