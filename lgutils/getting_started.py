"""Checks of a reader's setup, used by the "Getting started" chapter.

Each check does a small piece of real work with one part of the stack (a CasADi/IPOPT solve
with a known answer, a gymnasium rollout, a few Stable-Baselines3 training steps) and reports
what to fix when it fails.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from lgutils.core.validate import check_positive_int

__all__ = [
    "CheckResult",
    "stack_versions",
    "check_casadi",
    "check_gymnasium",
    "check_sb3",
    "run_all",
]

#: distribution -> minimum version the book is tested with (requirements.lock has exact pins)
REQUIRED: dict[str, str] = {
    "numpy": "1.26",
    "scipy": "1.11",
    "casadi": "3.6",
    "gymnasium": "1.0",
    "stable-baselines3": "2.3",
    "torch": "2.2",
    "matplotlib": "3.8",
    "tqdm": "4.66",
}

FIX = "install the book's pinned environment: `make test` (creates .venv), or `pip install -e .`"


@dataclass
class CheckResult:
    """Outcome of one check: its name, whether it passed, what it measured and how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    seconds: float = 0.0


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def stack_versions() -> list[CheckResult]:
    """One result per required package: installed version against the minimum."""
    out = [
        CheckResult(
            "python",
            sys.version_info >= (3, 11),
            sys.version.split()[0],
            "" if sys.version_info >= (3, 11) else "use Python 3.11 or newer",
        )
    ]
    for name, minimum in REQUIRED.items():
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(CheckResult(name, False, "not installed", FIX))
            continue
        ok = _version_tuple(version) >= _version_tuple(minimum)
        out.append(CheckResult(name, ok, version, "" if ok else f"needs >= {minimum}; {FIX}"))
    return out


def check_casadi() -> CheckResult:
    """Solve min (x-1)^2 + (y-2)^2 s.t. x + y <= 2 with IPOPT; the answer is (0.5, 1.5)."""
    t0 = time.perf_counter()
    try:
        import casadi as ca

        z = ca.SX.sym("z", 2)
        nlp = {"x": z, "f": (z[0] - 1) ** 2 + (z[1] - 2) ** 2, "g": z[0] + z[1]}
        opts = {"ipopt.print_level": 0, "print_time": False, "ipopt.sb": "yes"}
        solver = ca.nlpsol("getting_started", "ipopt", nlp, opts)
        sol = solver(x0=[0, 0], ubg=2)
        z_opt = np.array(sol["x"]).ravel()
        ok = solver.stats()["success"] and np.allclose(z_opt, [0.5, 1.5], atol=1e-6)
        detail = f"IPOPT solution ({z_opt[0]:.6f}, {z_opt[1]:.6f}), expected (0.5, 1.5)"
    except Exception as exc:  # report, do not crash the setup page
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return CheckResult(
        "casadi + ipopt", bool(ok), detail, "" if ok else FIX, time.perf_counter() - t0
    )


def check_gymnasium(seed: int = 0, steps: int = 200) -> CheckResult:
    """Roll out random actions in gymnasium's Pendulum-v1 and check the rewards are finite."""
    steps = check_positive_int("steps", steps)
    t0 = time.perf_counter()
    try:
        import gymnasium as gym

        env = gym.make("Pendulum-v1")
        env.reset(seed=seed)
        env.action_space.seed(seed)
        rewards = []
        for _ in range(steps):
            _, r, terminated, truncated, _ = env.step(env.action_space.sample())
            rewards.append(r)
            if terminated or truncated:
                env.reset()
        env.close()
        ok = len(rewards) == steps and bool(np.all(np.isfinite(rewards)))
        detail = f"{steps} steps of Pendulum-v1, mean reward {np.mean(rewards):.2f}"
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return CheckResult("gymnasium", ok, detail, "" if ok else FIX, time.perf_counter() - t0)


def check_sb3(steps: int = 256, seed: int = 0) -> CheckResult:
    """Train Stable-Baselines3's SAC on Pendulum-v1 for ``steps`` steps (CPU, one thread)."""
    steps = check_positive_int("steps", steps)
    t0 = time.perf_counter()
    try:
        import torch
        from stable_baselines3 import SAC

        torch.set_num_threads(1)
        model = SAC(
            "MlpPolicy", "Pendulum-v1", learning_starts=32, batch_size=32, seed=seed, device="cpu"
        )
        model.learn(total_timesteps=steps)
        action, _ = model.predict(np.zeros(3, dtype=np.float32), deterministic=True)
        ok = model.num_timesteps == steps and bool(np.all(np.isfinite(action)))
        detail = (
            f"SAC trained {model.num_timesteps} steps on Pendulum-v1 (torch {torch.__version__})"
        )
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return CheckResult("stable-baselines3", ok, detail, "" if ok else FIX, time.perf_counter() - t0)


def run_all(sb3_steps: int = 256, seed: int = 0) -> list[CheckResult]:
    """Every check of the "Getting started" chapter, in order."""
    return [
        *stack_versions(),
        check_casadi(),
        check_gymnasium(seed=seed),
        check_sb3(steps=sb3_steps, seed=seed),
    ]
