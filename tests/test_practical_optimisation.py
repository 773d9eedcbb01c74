"""Tests of lgutils.practical_optimisation: the test problems against scipy's ODE solver and numpy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from lgutils.mpc import MPCSolveError
from lgutils.practical_optimisation import (
    WARM_STARTS,
    displaced_chain,
    mass_chain,
    mass_chain_mpc,
    random_mlp,
    time_batch,
    time_closed_loop,
)


def test_mass_chain_matches_the_ode():
    n, dt, u = 3, 0.5, 0.3
    A, B = mass_chain(n, dt)
    L = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)

    def ode(t, z):
        f = np.zeros(n)
        f[0] = u
        return np.concatenate([z[n:], -L @ z[:n] + f])

    z0 = np.array([1.0, -0.5, 0.2, 0.0, 0.3, -0.1])
    ref = solve_ivp(ode, (0, dt), z0, rtol=1e-12, atol=1e-12).y[:, -1]
    np.testing.assert_allclose(A @ z0 + B[:, 0] * u, ref, atol=1e-9)


def test_random_mlp_is_a_tanh_network():
    f = random_mlp(3, 5, depth=2, seed=1)
    x = np.array([0.3, -1.0, 2.0])
    y = float(f(x))
    assert np.isfinite(y)
    assert float(f(x)) == y and float(random_mlp(3, 5, depth=2, seed=2)(x)) != y
    # bounded hidden activations: |y| <= sum |W_out| + |b_out| (checked loosely via many inputs)
    ys = [float(f(v)) for v in np.random.default_rng(0).normal(size=(20, 3)) * 100]
    assert np.ptp(ys) < 10


def test_timing_helpers_return_consistent_numbers():
    mpc, A, B = mass_chain_mpc(2, 5, warm_start="primal-dual warm")
    out = time_closed_loop(mpc, lambda x, u: A @ x + B @ u, [1.0, -0.5, 0.0, 0.0], 4)
    assert out["times"].shape == (3,) and out["median_time"] > 0 and out["median_iterations"] >= 1
    b = time_batch(mpc, np.random.default_rng(0).uniform(-1, 1, (4, 4)), repeats=1)
    assert b["loop"] > 0 and b["map"] > 0 and b["max_action_gap"] < 1e-5
    assert set(WARM_STARTS) == {"cold", "primal warm", "primal-dual warm"}
    nn_mpc, _, _ = mass_chain_mpc(1, 3, nn_hidden=4)
    assert nn_mpc.policy([0.5, 0.0]).success


def test_displaced_chain_spreads_the_masses_at_rest():
    np.testing.assert_array_equal(displaced_chain(1), [1.5, 0.0])
    np.testing.assert_allclose(displaced_chain(3), [1.5, 0.25, -1.0, 0.0, 0.0, 0.0])


def test_mass_chain_mpc_passes_ipopt_options_to_every_solve():
    mpc, _, _ = mass_chain_mpc(1, 3, ipopt={"max_iter": 1})
    assert mpc.solver_options.ipopt == {"max_iter": 1}
    # one IPOPT iteration cannot solve the bounded problem from a displaced state
    with pytest.raises(MPCSolveError, match="Maximum_Iterations_Exceeded' after 1 iterations"):
        mpc.policy(displaced_chain(1))
    default, _, _ = mass_chain_mpc(1, 3)
    assert default.policy(displaced_chain(1)).success
