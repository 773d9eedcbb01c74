"""benchmarks/sac_training.py: its free-step environment has the CSTR environment's interface,
and the script prints the ratio it promises."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from lgutils.value_function_mpc.env import CSTREnv

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "sac_training.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("sac_training_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_free_env_has_the_spaces_and_episode_length_of_the_cstr_env(bench):
    free, cstr_env = bench.FreeStepGoalEnv(), CSTREnv()
    assert free.action_space == cstr_env.action_space
    assert free.observation_space == cstr_env.observation_space
    assert list(free.observation_space.spaces) == ["achieved_goal", "desired_goal", "observation"]
    obs, _ = free.reset(seed=0)
    assert free.observation_space.contains(obs)
    steps = 0
    while True:
        obs, reward, terminated, truncated, _ = free.step(free.action_space.sample())
        steps += 1
        assert free.observation_space.contains(obs) and not terminated
        assert reward == float(free.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}))
        if truncated:
            break
    assert steps == cstr_env.max_episode_steps == 50
    # compute_reward is vectorised over HER's batches: (batch, 1) goals -> (batch,) rewards
    ag = np.linspace(0.0, 1.0, 128, dtype=np.float32)[:, None]
    dg = np.full((128, 1), 0.7, dtype=np.float32)
    rewards = free.compute_reward(ag, dg, [{}] * 128)
    np.testing.assert_allclose(rewards, -np.abs(0.7 - ag[:, 0]), rtol=1e-6)
    assert rewards.shape == (128,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # infinite obs bounds, non-symmetric actions
        sb3_check_env(free, warn=False)


def test_script_prints_the_ratio_last(bench, monkeypatch, capsys):
    argv = [str(SCRIPT), "--steps", "120", "--rounds", "2", "--eval-every", "100"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum("steps/s" in line for line in lines) == 4  # ABBA: two runs of each kind
    assert lines[-2].startswith("cpu_ratio ") and float(lines[-2].split()[1]) > 0
    name, value = lines[-1].split()
    assert name == "env_overhead_ratio" and float(value) > 0
