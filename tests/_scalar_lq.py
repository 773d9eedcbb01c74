"""The scalar linear-quadratic problem of chapters 01-02 in closed form, without lgutils.

``s' = a s + b u + w``, ``w ~ N(0, noise_std^2)``, reward ``-(q s^2 + r u^2)``: the claims tests
hold the chapters' numbers to these independent computations.
"""

from __future__ import annotations

import numpy as np


def riccati(a: float, b: float, q: float, r: float, gamma: float) -> tuple[float, float]:
    """``(P, K)`` of the discounted scalar Riccati equation, solved as the quadratic it is.

    ``P = q + g a^2 P - g^2 a^2 b^2 P^2 / (r + g b^2 P)`` becomes
    ``g b^2 P^2 + (r - g q b^2 - g a^2 r) P - q r = 0`` (its positive root);
    ``K = g a b P / (r + g b^2 P)``.
    """
    c1 = r - gamma * q * b**2 - gamma * a**2 * r
    P = (-c1 + np.sqrt(c1**2 + 4 * gamma * b**2 * q * r)) / (2 * gamma * b**2)
    return float(P), float(gamma * a * b * P / (r + gamma * b**2 * P))


def linear_policy_return(
    problem: dict, K: float, gamma: float, steps: int, x0_var: float | None = None
) -> float:
    """``E[sum_{t < steps} gamma^t r_t]`` of ``u = -K s``, by the recursion of ``E[s_t^2]``.

    ``problem`` holds ``a, b, q, r, noise_std`` and (unless ``x0_var`` is given) ``x0_std``.
    """
    a_K = problem["a"] - problem["b"] * K
    # the discounted moment gamma^t E[s_t^2] (E[s_t^2] alone may overflow where the sum converges)
    dm = problem["x0_std"] ** 2 if x0_var is None else x0_var
    total, discount = 0.0, 1.0
    for _ in range(steps):
        total -= (problem["q"] + problem["r"] * K**2) * dm
        discount *= gamma
        dm = gamma * a_K**2 * dm + discount * problem["noise_std"] ** 2
    return total
