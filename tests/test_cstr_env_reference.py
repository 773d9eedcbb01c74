"""The CSTR environment's trajectories, bit for bit, against a plain numpy reference written here.

The environment works on Python floats for speed (``lgutils.value_function_mpc.env``); this
reference is the straightforward formulation it replaced: numpy arrays and numpy scalars,
``np.clip``, the model's constants looked up in ``PARAMS``, RK4 on 4-vectors. Both perform the
same IEEE operations, so observations, rewards, truncations and infos must agree exactly
(including the sign of zero), for the same seed and actions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.utils.seeding import np_random

from lgutils.value_function_mpc import cstr
from lgutils.value_function_mpc.env import CSTREnv

P = cstr.PARAMS


def _rhs(x: np.ndarray, f: float, q: float, alpha: float, beta: float) -> np.ndarray:
    c_a, c_b, t_r, t_k = x
    rho_cp, ka = P["rho"] * P["c_p"], P["K_w"] * P["A_R"]
    k1 = beta * P["k0_AB"] * math.exp(-P["E_AB"] / (t_r + 273.15))
    k2 = P["k0_BC"] * math.exp(-P["E_BC"] / (t_r + 273.15))
    k3 = P["k0_AD"] * math.exp(-alpha * P["E_AD"] / (t_r + 273.15))
    heat = k1 * c_a * P["dH_AB"] + k2 * c_b * P["dH_BC"] + k3 * c_a**2 * P["dH_AD"]
    return np.array(
        [
            f * (P["c_A0"] - c_a) - k1 * c_a - k3 * c_a**2,
            -f * c_b + k1 * c_a - k2 * c_b,
            heat / (-rho_cp) + f * (P["T_in"] - t_r) + ka * (t_k - t_r) / (rho_cp * P["V_R"]),
            (q + ka * (t_r - t_k)) / (P["m_K"] * P["c_pK"]),
        ]
    )


def _rk4(x: np.ndarray, f: float, q: float, alpha: float, beta: float, n: int) -> np.ndarray:
    h = cstr.T_STEP / n
    for _ in range(n):
        k1 = _rhs(x, f, q, alpha, beta)
        k2 = _rhs(x + 0.5 * h * k1, f, q, alpha, beta)
        k3 = _rhs(x + 0.5 * h * k2, f, q, alpha, beta)
        k4 = _rhs(x + h * k3, f, q, alpha, beta)
        x = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


class ReferenceEnv:
    """The environment's contract in plain numpy (same draws from gymnasium's seeded generator)."""

    def __init__(self, nominal: bool, substeps: int, max_episode_steps: int) -> None:
        self.nominal, self.substeps, self.max_steps = nominal, substeps, max_episode_steps

    def obs(self) -> dict[str, np.ndarray]:
        c_a, c_b, t_r, t_k = self.x
        return {
            "observation": np.array([c_a, t_r / 100.0, t_k / 100.0], dtype=np.float32),
            "achieved_goal": np.array([c_b], dtype=np.float32),
            "desired_goal": np.array([self.goal], dtype=np.float32),
        }

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng, _ = np_random(seed)
        options = options or {}
        if "x0" in options:
            self.x = np.array(options["x0"], dtype=float)
        else:
            self.x = self.rng.uniform(cstr.X_LOW, cstr.X_HIGH)
        self.goal = (
            float(options["goal"]) if "goal" in options else float(self.rng.choice(cstr.GOALS))
        )
        self.t = 0
        return self.obs(), {"x": self.x.copy()}

    def step(self, action):
        a = np.clip(np.array(action, dtype=float), cstr.A_LOW, cstr.A_HIGH)
        f, q = float(a[0] * 10.0), float(a[1] * 1000.0)
        if self.nominal:
            alpha = beta = 1.0
        else:
            alpha = float(cstr.ALPHA_TRAIN[self.rng.integers(10)])
            beta = float(cstr.BETA_TRAIN[self.rng.integers(10)])
        self.x = _rk4(self.x, f, q, alpha, beta, self.substeps)
        self.t += 1
        obs = self.obs()
        e = (float(obs["desired_goal"][0]) - float(obs["achieved_goal"][0])) / 0.01
        reward = math.exp(-0.5 * (e * e))
        info = {"x": self.x.copy(), "u": np.array([f, q]), "alpha": alpha, "beta": beta}
        return obs, reward, False, self.t >= self.max_steps, info


def _bits(value) -> object:
    """A hashable picture of ``value`` that tells apart every bit (and the sign of zero)."""
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_bits(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    return (type(value).__name__, float(value).hex() if isinstance(value, float) else value)


def _actions(rng: np.random.Generator, n: int) -> list:
    """Inside and outside the box, at its bounds, signed zeros, float32/float64 arrays, lists."""
    edges = np.array([-0.0, 0.0, 0.5, 10.0, -8.5, 11.0, -9.0, 0.49999999])
    out = []
    for k in rng.integers(4, size=n):
        if k == 0:
            out.append(rng.uniform([-1.0, -10.0], [12.0, 1.0]).astype(np.float32))
        elif k == 1:
            out.append(rng.choice(edges, 2).astype(np.float32))
        elif k == 2:
            out.append(rng.uniform(cstr.A_LOW, cstr.A_HIGH))
        else:
            out.append(rng.uniform(cstr.A_LOW, cstr.A_HIGH).tolist())
    return out


@pytest.mark.parametrize(
    ("nominal", "substeps", "episode"), [(False, 10, 50), (True, 10, 50), (False, 4, 7)]
)
def test_env_trajectories_equal_the_numpy_reference_bit_for_bit(nominal, substeps, episode):
    env = CSTREnv(nominal=nominal, substeps=substeps, max_episode_steps=episode)
    ref = ReferenceEnv(nominal, substeps, episode)
    rng = np.random.default_rng(substeps + episode)
    assert _bits(env.reset(seed=11)) == _bits(ref.reset(seed=11))
    for t, action in enumerate(_actions(rng, 300)):
        out = env.step(action)
        assert _bits(out) == _bits(ref.step(action)), f"step {t}, action {action!r}"
        if out[3]:
            opts = {"x0": rng.uniform(cstr.X_LOW, cstr.X_HIGH), "goal": 0.7} if t % 2 else None
            assert _bits(env.reset(options=opts)) == _bits(ref.reset(options=opts))


def test_batched_reward_equals_the_step_rewards_bit_for_bit():
    env = CSTREnv()
    env.reset(seed=3, options={"goal": 0.6})
    steps = [env.step(a) for a in _actions(np.random.default_rng(3), 50)]
    ag = np.array([s[0]["achieved_goal"] for s in steps])
    dg = np.array([s[0]["desired_goal"] for s in steps])
    rewards = np.array([s[1] for s in steps])
    assert env.compute_reward(ag, dg, None).tobytes() == rewards.tobytes()
    assert env.compute_reward(ag[4], dg[4], None).shape == ()
    assert float(env.compute_reward(ag[4], dg[4], None)) == rewards[4]


def test_rk4_step_on_numpy_scalars_and_floats_agree_with_the_reference():
    rng = np.random.default_rng(8)
    for _ in range(200):
        x = rng.uniform(cstr.X_LOW, cstr.X_HIGH)
        f, q = rng.uniform(cstr.U_LOW, cstr.U_HIGH).tolist()
        alpha, beta = float(rng.choice(cstr.ALPHA_TRAIN)), float(rng.choice(cstr.BETA_TRAIN))
        expected = _rk4(x, f, q, alpha, beta, 10).tobytes()
        assert cstr.rk4_step(x, [f, q], alpha, beta).tobytes() == expected
        floats = cstr.rk4_floats(tuple(x), f, q, alpha, beta, cstr.T_STEP, 10)  # numpy scalars
        assert np.array(floats).tobytes() == expected
