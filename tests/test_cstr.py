"""Tests of the CSTR model, its integrators, its closed loop and the goal-conditioned environment."""

from __future__ import annotations

import math
import warnings

import casadi as ca
import gymnasium as gym
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import root

import lgutils  # noqa: F401  (registers the environments)
from lgutils.value_function_mpc import cstr
from lgutils.value_function_mpc.env import CSTREnv

P = cstr.PARAMS


def _rates(t_r, alpha=1.0, beta=1.0):
    tk = t_r + 273.15
    k1 = beta * P["k0_AB"] * math.exp(-P["E_AB"] / tk)
    k2 = P["k0_BC"] * math.exp(-P["E_BC"] / tk)
    k3 = P["k0_AD"] * math.exp(-alpha * P["E_AD"] / tk)
    return k1, k2, k3


def _analytic_steady_state(f, t_r, alpha=1.0, beta=1.0):
    """Steady state (and the Qdot that holds it) for a given feed F and reactor temperature T_R.

    Mass balances: k3 c_A^2 + (F + k1) c_A - F c_A0 = 0, c_B = k1 c_A / (F + k2).
    Reactor energy balance gives T_K, the jacket balance gives Qdot.
    """
    k1, k2, k3 = _rates(t_r, alpha, beta)
    c_a = (-(f + k1) + math.sqrt((f + k1) ** 2 + 4 * k3 * f * P["c_A0"])) / (2 * k3)
    c_b = k1 * c_a / (f + k2)
    rho_cp = P["rho"] * P["c_p"]
    heat = (k1 * c_a * P["dH_AB"] + k2 * c_b * P["dH_BC"] + k3 * c_a**2 * P["dH_AD"]) / (-rho_cp)
    ka = P["K_w"] * P["A_R"]
    t_k = t_r - (heat + f * (P["T_in"] - t_r)) * rho_cp * P["V_R"] / ka
    q = -ka * (t_r - t_k)
    return np.array([c_a, c_b, t_r, t_k]), np.array([f, q])


@pytest.mark.parametrize(
    ("f", "t_r", "alpha", "beta"), [(18.83, 128.0, 1.0, 1.0), (10.0, 110.0, 1.05, 0.9)]
)
def test_rhs_vanishes_at_the_analytic_steady_state_and_scipy_finds_it(f, t_r, alpha, beta):
    xs, us = _analytic_steady_state(f, t_r, alpha, beta)
    scale = np.array([1.0, 1.0, 100.0, 100.0])
    np.testing.assert_allclose(cstr.rhs(xs, us, alpha, beta) / scale, 0.0, atol=1e-9)
    sol = root(
        lambda x: cstr.rhs(x, us, alpha, beta) / scale,
        xs + np.array([0.05, -0.05, 1.0, -1.0]),
        tol=1e-12,
    )
    assert sol.success
    np.testing.assert_allclose(sol.x, xs, rtol=1e-8, atol=1e-8)


def test_rhs_numpy_casadi_and_batch_agree():
    rng = np.random.default_rng(1)
    xs = rng.uniform(cstr.X_LOW, cstr.X_HIGH, (5, 4))
    us = rng.uniform(cstr.U_LOW, cstr.U_HIGH, (5, 2))
    al, be = rng.uniform(0.95, 1.05, 5), rng.uniform(0.9, 1.1, 5)
    batch = cstr.rhs(xs, us, al, be)
    assert batch.shape == (5, 4)
    x = ca.SX.sym("x", 4)
    u = ca.SX.sym("u", 2)
    a = ca.SX.sym("a")
    b = ca.SX.sym("b")
    expr = cstr.rhs(x, u, a, b)
    assert isinstance(expr, ca.SX) and expr.shape == (4, 1)
    fun = ca.Function("f", [x, u, a, b], [expr])
    for i in range(5):
        single = cstr.rhs(xs[i], us[i], al[i], be[i])
        assert isinstance(single, np.ndarray) and single.shape == (4,)
        np.testing.assert_allclose(single, batch[i], rtol=1e-14)
        np.testing.assert_allclose(
            np.asarray(fun(xs[i], us[i], al[i], be[i])).ravel(), single, rtol=1e-12
        )


def test_rhs_jacobian_matches_finite_differences():
    x = ca.SX.sym("x", 4)
    jac = ca.Function("j", [x], [ca.jacobian(cstr.rhs(x, [20.0, -2000.0]), x)])
    x0 = np.array([1.0, 0.5, 120.0, 115.0])
    fd = np.empty((4, 4))
    for j in range(4):
        h = 1e-6 * max(1.0, abs(x0[j]))
        e = np.zeros(4)
        e[j] = h
        fd[:, j] = (cstr.rhs(x0 + e, [20.0, -2000.0]) - cstr.rhs(x0 - e, [20.0, -2000.0])) / (2 * h)
    np.testing.assert_allclose(np.asarray(jac(x0)), fd, rtol=1e-6, atol=1e-6)


def test_rhs_rejects_bad_shapes():
    with pytest.raises(ValueError, match="x must have shape"):
        cstr.rhs(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="u must have shape"):
        cstr.rhs(np.ones(4), np.zeros(3))
    with pytest.raises(ValueError, match="x must be finite"):
        cstr.rhs([np.nan, 0, 0, 0], np.zeros(2))


def test_cvodes_agrees_with_scipy_radau_and_rk4_with_cvodes():
    rng = np.random.default_rng(2)
    for _ in range(8):
        x0 = rng.uniform(cstr.X_LOW, cstr.X_HIGH)
        u = rng.uniform(cstr.U_LOW, cstr.U_HIGH)
        al, be = rng.choice(cstr.ALPHA_TRAIN), rng.choice(cstr.BETA_TRAIN)
        ref = solve_ivp(
            lambda t, x, u=u, al=al, be=be: cstr.rhs(x, u, al, be),
            (0, cstr.T_STEP),
            x0,
            method="Radau",
            rtol=1e-12,
            atol=1e-12,
        ).y[:, -1]
        cv = cstr.cvodes_step(x0, u, al, be)
        rk = cstr.rk4_step(x0, u, al, be, substeps=10)
        np.testing.assert_allclose(cv, ref, atol=1e-6, rtol=0)
        err = np.abs(rk - cv)
        assert err[:2].max() < 1e-6  # mol/l, the docstring states 4.6e-7 over 2000 samples
        assert err[2:].max() < 2e-5  # deg C, the docstring states 8.9e-6


def test_plant_stays_at_a_steady_state():
    xs, us = _analytic_steady_state(18.83, 128.0)
    for method in ("rk4", "cvodes"):
        np.testing.assert_allclose(cstr.plant_step(xs, us, method=method), xs, rtol=1e-8)


def test_simulate_shapes_and_input_clipping():
    xs, us = cstr.simulate(cstr.X0_FIG3, lambda x, t: np.array([500.0, 10.0]), 3)
    assert xs.shape == (4, 4) and us.shape == (3, 2)
    np.testing.assert_allclose(us, [[100.0, 0.0]] * 3)


def test_closed_loop_is_the_plain_loop_of_clipped_inputs_and_plant_steps():
    def policy(x, t):
        return np.array([20.0 + 10.0 * t, -1000.0 - 900.0 * t])  # leaves the bounds from t = 9

    alphas = np.linspace(0.95, 1.05, 12)
    run = cstr.closed_loop(policy, cstr.X0_FIG3, 12, alpha=alphas, beta=1.1, method="cvodes")
    x = cstr.X0_FIG3
    for t in range(12):
        u = np.minimum(np.maximum(policy(x, t), cstr.U_LOW), cstr.U_HIGH)
        x = cstr.cvodes_step(x, u, alphas[t], 1.1)
        np.testing.assert_array_equal(run.actions[t], u)
        np.testing.assert_array_equal(run.states[t + 1], x)
    np.testing.assert_array_equal(run.raw_actions[11], policy(None, 11))
    assert run.policy_times.shape == (12,) and np.all(run.policy_times >= 0)
    xs, us = cstr.simulate(cstr.X0_FIG3, policy, 12, alphas, 1.1, method="cvodes")
    np.testing.assert_array_equal(xs, run.states)
    np.testing.assert_array_equal(us, run.actions)


def test_closed_loop_names_a_bad_policy_or_argument():
    with pytest.raises(ValueError, match=r"policy must return shape \(2,\), got shape \(3,\)"):
        cstr.closed_loop(lambda x, t: np.zeros(3), cstr.X0_FIG3, 2)
    with pytest.raises(ValueError, match="policy must return finite values"):
        cstr.closed_loop(lambda x, t: np.array([np.nan, 0.0]), cstr.X0_FIG3, 2)
    with pytest.raises(ValueError, match="method must be 'rk4' or 'cvodes', got 'euler'"):
        cstr.closed_loop(lambda x, t: np.zeros(2), cstr.X0_FIG3, 2, method="euler")
    with pytest.raises(ValueError, match="x0 must be a vector of shape"):
        cstr.closed_loop(lambda x, t: np.zeros(2), [1.0, 2.0], 2)


def test_env_refuses_a_non_finite_action():
    env = gym.make("lgutils/CSTR-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be finite, got array\(\[nan,  0\.\]\)"):
        env.step([np.nan, 0.0])
    with pytest.raises(ValueError, match="action must be finite"):
        env.unwrapped.step(np.array([1.0, -np.inf], dtype=np.float32))
    with pytest.raises(ValueError, match="action must be numeric, got str"):
        env.unwrapped.step("up")


def test_env_refuses_a_wrongly_shaped_action():
    env = gym.make("lgutils/CSTR-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(2,\), got shape \(1,\)"):
        env.step([1.0])
    with pytest.raises(ValueError, match=r"action must have shape \(2,\), got shape \(1, 2\)"):
        env.unwrapped.step(np.ones((1, 2)))
    # a good action still steps, and the refused ones changed nothing
    x_before = env.unwrapped.state
    _, _, _, _, info = env.step(np.array([2.0, -3.0], dtype=np.float32))
    np.testing.assert_allclose(
        info["x"], cstr.rk4_step(x_before, [20.0, -3000.0], info["alpha"], info["beta"])
    )


def test_env_refuses_unknown_reset_options():
    env = gym.make("lgutils/CSTR-v0")
    with pytest.raises(
        ValueError,
        match=r"options has unknown keys \['x_0'\]; expected keys among \['x0', 'goal'\]",
    ):
        env.reset(seed=0, options={"x_0": cstr.X0_FIG3})
    with pytest.raises(ValueError, match="options must be a dict with keys among"):
        env.reset(seed=0, options=[("x0", cstr.X0_FIG3)])
    with pytest.raises(ValueError, match=r"options\['goal'\] must be a vector of shape \(1,\)"):
        env.reset(seed=0, options={"goal": [0.6, 0.7]})
    _, info = env.reset(seed=0, options={"x0": cstr.X0_FIG3, "goal": 0.65})
    np.testing.assert_array_equal(info["x"], cstr.X0_FIG3)
    assert env.unwrapped.goal == 0.65


def test_env_passes_gymnasium_and_sb3_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("lgutils/CSTR-v0")
    assert isinstance(env.unwrapped, CSTREnv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # infinite obs bounds, non-symmetric actions
        check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(CSTREnv(), warn=False)


def test_env_spaces_units_and_truncation():
    env = CSTREnv()
    np.testing.assert_allclose(env.action_space.low, [0.5, -8.5])
    np.testing.assert_allclose(env.action_space.high, [10.0, 0.0])
    obs, info = env.reset(seed=0)
    x = info["x"]
    assert np.all(x >= cstr.X_LOW) and np.all(x <= cstr.X_HIGH)
    assert env.goal in (0.6, 0.7, 0.8)
    np.testing.assert_allclose(obs["observation"], [x[0], x[2] / 100, x[3] / 100], rtol=1e-6)
    np.testing.assert_allclose(obs["achieved_goal"], [x[1]], rtol=1e-6)
    # the action (F/10, Qdot/1000) = (2, -3) is u = (20 1/h, -3000 kJ/h)
    _, _, _, _, info = env.step(np.array([2.0, -3.0], dtype=np.float32))
    np.testing.assert_allclose(info["u"], [20.0, -3000.0])
    np.testing.assert_allclose(
        info["x"], cstr.rk4_step(x, [20.0, -3000.0], info["alpha"], info["beta"])
    )
    steps = 1
    while True:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        steps += 1
        assert not term
        if trunc:
            break
    assert steps == 50


def test_network_input_is_sb3_sorted_concatenation_and_invertible_map_of_z():
    import torch
    from stable_baselines3.common.torch_layers import CombinedExtractor

    env = CSTREnv()
    obs, info = env.reset(seed=4)
    ext = CombinedExtractor(env.observation_space)
    flat = ext({k: torch.as_tensor(v)[None] for k, v in obs.items()}).numpy()[0]
    s = cstr.network_input(info["x"], env.goal)
    np.testing.assert_allclose(flat, s, rtol=1e-6)
    z = cstr.error_input(s)
    x = info["x"]
    np.testing.assert_allclose(z, [x[0], x[1], x[2], x[3], env.goal - x[1]], rtol=1e-12, atol=1e-12)
    xs = ca.SX.sym("x", 4)
    fun = ca.Function("s", [xs], [cstr.network_input(xs, 0.7)])
    np.testing.assert_allclose(np.asarray(fun(x)).ravel(), cstr.network_input(x, 0.7), rtol=1e-14)


def test_reward_and_goal_relabelling():
    env = CSTREnv()
    obs, _ = env.reset(seed=5, options={"x0": [1.0, 0.7, 120.0, 118.0], "goal": 0.7})
    ags, dgs, rewards = [], [], []
    for _ in range(50):
        obs, r, _, _, _ = env.step(env.action_space.sample())
        ags.append(obs["achieved_goal"])
        dgs.append(obs["desired_goal"])
        rewards.append(r)
    ags, dgs, rewards = np.array(ags), np.array(dgs), np.array(rewards)
    # the per-step reward is exactly compute_reward on the batch of (float32) goals
    np.testing.assert_array_equal(env.compute_reward(ags, dgs, [{}] * 50), rewards)
    # ... and the Gaussian of width 0.01 of (float32) goal minus (float32) c_B
    direct = np.exp(-0.5 * ((dgs[:, 0].astype(float) - ags[:, 0].astype(float)) / 0.01) ** 2)
    np.testing.assert_allclose(rewards, direct, rtol=1e-12)
    assert rewards.max() > 0.0
    # relabelling with a future achieved goal: reward 1 at the relabelled step
    future = ags[np.minimum(np.arange(50) + 3, 49)]
    relabelled = env.compute_reward(future, future, None)
    np.testing.assert_array_equal(relabelled, np.ones(50))
    r2 = env.compute_reward(ags[:-3], future[:-3], None)
    diff = future[:-3, 0].astype(float) - ags[:-3, 0].astype(float)
    np.testing.assert_allclose(r2, np.exp(-0.5 * (diff / 0.01) ** 2), rtol=1e-12)
    with pytest.raises(ValueError, match="equal shapes"):
        env.compute_reward(ags, dgs[:3], None)


def test_her_buffer_relabels_with_the_env_reward():
    from stable_baselines3 import HerReplayBuffer
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([CSTREnv])
    venv.seed(0)
    buf = HerReplayBuffer(
        200,
        venv.observation_space,
        venv.action_space,
        venv,
        n_sampled_goal=1,
        goal_selection_strategy="future",
    )
    obs = venv.reset()
    for _ in range(100):
        a = np.array([venv.action_space.sample()])
        nxt, r, done, infos = venv.step(a)
        real_next = {k: v.copy() for k, v in nxt.items()}
        if done[0]:
            real_next = {k: infos[0]["terminal_observation"][k][None] for k in nxt}
        buf.add(obs, real_next, a, r, done, infos)
        obs = nxt
    sample = buf.sample(64)
    ag = sample.next_observations["achieved_goal"].numpy().astype(float)
    dg = sample.observations["desired_goal"].numpy().astype(float)
    expected = np.exp(-0.5 * ((dg[:, 0] - ag[:, 0]) / 0.01) ** 2)
    np.testing.assert_allclose(sample.rewards.numpy()[:, 0], expected, rtol=1e-5, atol=1e-7)


def test_uncertainty_sets_and_nominal_option():
    assert len(cstr.ALPHA_TRAIN) == 10 and len(cstr.BETA_TRAIN) == 10
    assert not np.any(np.isclose(cstr.ALPHA_TRAIN, 1.0)) and not np.any(
        np.isclose(cstr.BETA_TRAIN, 1.0)
    )
    env = CSTREnv()
    env.reset(seed=0)
    draws = [env.step(env.action_space.sample())[4] for _ in range(40)]
    assert all(d["alpha"] in cstr.ALPHA_TRAIN and d["beta"] in cstr.BETA_TRAIN for d in draws)
    assert len({d["alpha"] for d in draws}) > 3
    nom = CSTREnv(nominal=True)
    nom.reset(seed=0)
    assert all(nom.step(nom.action_space.sample())[4]["alpha"] == 1.0 for _ in range(5))


def test_seeding_reproduces_trajectories():
    def run(seed):
        env = CSTREnv()
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        out = [np.concatenate(list(obs.values()))]
        for _ in range(60):
            obs, r, _, trunc, _ = env.step(env.action_space.sample())
            out.append(np.r_[np.concatenate(list(obs.values())), r])
            if trunc:
                obs, _ = env.reset()
        return out

    a, b, c = run(7), run(7), run(8)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.allclose(a[0], c[0])


def test_violation_and_agent_units():
    np.testing.assert_allclose(cstr.violation([2.5, 0.05, 100.0, 141.0]), [0.5, 0.05, 0.0, 1.0])
    np.testing.assert_allclose(cstr.action_to_input([0.5, -8.5]), cstr.U_LOW)
    np.testing.assert_allclose(cstr.input_to_action(cstr.U_HIGH), [10.0, 0.0])
    with pytest.raises(ValueError, match="a must have shape"):
        cstr.action_to_input([1.0, 2.0, 3.0])
