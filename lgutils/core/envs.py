"""A linear-quadratic environment: the MDP of the paper's Sec. II with a known answer.

    x_{t+1} = A x_t + B u_t + w_t,      w_t ~ N(0, W),
    r_t     = -(x_t^T Q x_t + u_t^T R u_t),

with ``x_0`` fixed or drawn from ``N(x0_mean, x0_cov)``, episodes truncated after ``horizon``
steps, and optional input bounds (the action is clipped to them and the reward is charged on the
*applied*, clipped action). The reward uses the state *before* the step. Dynamics run in float64;
observations and actions are float32 as gymnasium's ``Box`` spaces expect.

Registered with gymnasium as ``"lgutils/LinearQuadratic-v0"`` (``import lgutils`` first). Its
optimal policy and values are in :mod:`lgutils.core.lqr`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lgutils.core.rollout import rollout
from lgutils.core.validate import (
    as_array,
    as_matrix,
    as_vector,
    check_pd,
    check_positive_int,
    check_psd,
)

__all__ = ["LinearQuadraticEnv", "Trajectories", "CASE_STUDY_B"]

#: The option names :meth:`LinearQuadraticEnv.reset` understands.
_RESET_OPTIONS = ("x0",)

#: Case study B (paper Sec. V.B, ref. [42]); see /work/shared/reference.md. 4 states, 1 input.
CASE_STUDY_B: dict[str, Any] = {
    "A": [[0.5, 0.0, 1.0, 0.0], [0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 0.0, 0.5]],
    "B": [[0.5], [0.0], [0.0], [0.0]],
    "Q": 0.01 * np.eye(4),
    "R": [[0.01]],
    "x0": [2.0, -1.5, -2.0, 1.0],
    "noise_std": 0.01,
    "horizon": 10,
}


class Trajectories(NamedTuple):
    """A batch of episodes from :meth:`LinearQuadraticEnv.simulate` (float64 arrays).

    Attributes
    ----------
    states : (N, T + 1, n)
        x_0, ..., x_T of each episode.
    actions : (N, T, m)
        The actions the policy proposed.
    applied : (N, T, m)
        The actions applied (clipped to the bounds; equal to ``actions`` without bounds).
    rewards : (N, T)
        r_0, ..., r_{T-1}.
    """

    states: np.ndarray
    actions: np.ndarray
    applied: np.ndarray
    rewards: np.ndarray


def _sqrt_psd(M: np.ndarray) -> np.ndarray:
    """A factor L with L L^T = M for a PSD matrix (works when M is singular)."""
    lam, V = np.linalg.eigh(M)
    return V * np.sqrt(np.clip(lam, 0.0, None))


def _bound(name: str, value: object, m: int, default: float) -> np.ndarray:
    """An input bound: ``None`` (unbounded), a scalar for every input, or a vector of shape (m,)."""
    if value is None:
        return np.full(m, default)
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {value!r}") from exc
    if arr.ndim == 0:
        arr = np.full(m, float(arr))
    if arr.shape != (m,) or np.any(np.isnan(arr)):
        raise ValueError(f"{name} must be a number or a vector of shape ({m},), got {value!r}")
    return arr


class LinearQuadraticEnv(gym.Env):
    """Linear dynamics, quadratic cost as negative reward, Gaussian process noise.

    Parameters
    ----------
    A : array_like, shape (n, n), default [[1.0]]
        State matrix.
    B : array_like, shape (n, m), default [[1.0]]
        Input matrix.
    Q : array_like, shape (n, n), default identity
        State weight (symmetric PSD).
    R : array_like, shape (m, m) or scalar, default identity
        Input weight (symmetric PD).
    x0_mean : array_like, shape (n,), optional
        Mean of the initial state (default zero). Not with ``x0``.
    x0_cov : array_like, shape (n, n), optional
        Covariance of the initial state (default identity). Not with ``x0``.
    x0 : array_like, shape (n,), optional
        A fixed initial state for every episode (instead of ``x0_mean``/``x0_cov``).
    noise_cov : array_like, shape (n, n), optional
        Process-noise covariance W (symmetric PSD). Not with ``noise_std``.
    noise_std : float or array_like of shape (n,), optional
        Standard deviation(s) of independent process noise, ``W = diag(noise_std**2)``.
        Without ``noise_cov`` and ``noise_std`` the dynamics are deterministic.
    horizon : int, default 100
        Episode length T: ``truncated`` becomes True after T steps (never ``terminated``).
    action_low, action_high : float or array_like of shape (m,), optional
        Input bounds; the action is clipped to them before it is applied. Without them the
        action space is unbounded (Stable-Baselines3's continuous-action algorithms and its
        ``check_env`` need finite bounds: pass them).

    Notes
    -----
    ``reset(options={"x0": x})`` starts one episode at ``x``. ``info`` holds the float64
    ``"state"`` and, after a step, the ``"applied_action"`` and the step count ``"t"``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        A: object = None,
        B: object = None,
        Q: object = None,
        R: object = None,
        x0_mean: object = None,
        x0_cov: object = None,
        x0: object = None,
        noise_cov: object = None,
        noise_std: object = None,
        horizon: int = 100,
        action_low: object = None,
        action_high: object = None,
    ) -> None:
        super().__init__()
        self.A = as_matrix("A", [[1.0]] if A is None else A)
        n = self.A.shape[0]
        if self.A.shape != (n, n):
            raise ValueError(f"A must be a square matrix of shape (n, n), got shape {self.A.shape}")
        self.B = as_matrix("B", [[1.0]] if B is None else B)
        if self.B.shape[0] != n:
            raise ValueError(
                f"B must have shape ({n}, m) to match A of shape {self.A.shape}, got shape {self.B.shape}"
            )
        m = self.B.shape[1]
        self.Q = check_psd("Q", np.eye(n) if Q is None else Q, n)
        self.R = check_pd("R", np.eye(m) if R is None else R, m)

        if x0 is not None and (x0_mean is not None or x0_cov is not None):
            raise ValueError(
                "x0 fixes the initial state: pass either x0 or x0_mean/x0_cov, not both"
            )
        self.x0 = None if x0 is None else as_vector("x0", x0, n)
        self.x0_mean = np.zeros(n) if x0_mean is None else as_vector("x0_mean", x0_mean, n)
        self.x0_cov = np.eye(n) if x0_cov is None else check_psd("x0_cov", x0_cov, n)
        if self.x0 is not None:
            self.x0_mean, self.x0_cov = self.x0.copy(), np.zeros((n, n))

        if noise_cov is not None and noise_std is not None:
            raise ValueError("pass either noise_cov or noise_std, not both")
        if noise_std is not None:
            std = as_array("noise_std", noise_std)
            std = np.full(n, float(std)) if std.ndim == 0 else as_vector("noise_std", std, n)
            if np.any(std < 0):
                raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
            self.noise_cov = np.diag(std**2)
        else:
            self.noise_cov = (
                np.zeros((n, n)) if noise_cov is None else check_psd("noise_cov", noise_cov, n)
            )
        self._noise_factor = _sqrt_psd(self.noise_cov)
        self._x0_factor = _sqrt_psd(self.x0_cov)

        self.horizon = check_positive_int("horizon", horizon)
        self.action_low = _bound("action_low", action_low, m, -np.inf)
        self.action_high = _bound("action_high", action_high, m, np.inf)
        if np.any(self.action_low >= self.action_high):
            raise ValueError(
                f"action_low must be < action_high elementwise, got {self.action_low} and {self.action_high}"
            )

        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float32)
        self.action_space = spaces.Box(
            self.action_low.astype(np.float32),
            self.action_high.astype(np.float32),
            dtype=np.float32,
        )
        self.n_states, self.n_actions = n, m
        self._x = self.x0_mean.copy()
        self._t = 0

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def case_study_b(cls, **overrides: Any) -> LinearQuadraticEnv:
        """The environment of case study B (paper Sec. V.B): :data:`CASE_STUDY_B`.

        Keyword arguments override its entries (e.g. ``horizon=20``).
        """
        kwargs = dict(CASE_STUDY_B)
        if "noise_cov" in overrides:
            kwargs.pop("noise_std")
        if "x0_mean" in overrides or "x0_cov" in overrides:
            kwargs.pop("x0")
        return cls(**{**kwargs, **overrides})

    # ------------------------------------------------------------------ gymnasium API
    def clip_action(self, u: np.ndarray) -> np.ndarray:
        """Clip actions of shape ``(..., m)`` to the input bounds (float64)."""
        return np.clip(np.asarray(u, dtype=float), self.action_low, self.action_high)

    def reward(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``-(x^T Q x + u^T R u)`` for ``x`` of shape ``(..., n)`` and ``u`` of shape ``(..., m)``."""
        x = np.asarray(x, dtype=float)
        u = np.asarray(u, dtype=float)
        return -(
            np.einsum("...i,ij,...j->...", x, self.Q, x)
            + np.einsum("...i,ij,...j->...", u, self.R, u)
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``options={"x0": x}`` fixes its initial state (no other keys)."""
        if options is not None:
            if not isinstance(options, dict):
                raise ValueError(
                    f"options must be a dict with keys among {list(_RESET_OPTIONS)}, got "
                    f"{type(options).__name__}: {options!r}"
                )
            unknown = sorted(str(k) for k in options if k not in _RESET_OPTIONS)
            if unknown:
                raise ValueError(
                    f"options must be a dict with keys among {list(_RESET_OPTIONS)}, got unknown "
                    f"keys {unknown} in {options!r}"
                )
        super().reset(seed=seed)
        n = self.n_states
        if options is not None and options.get("x0") is not None:
            self._x = as_vector("options['x0']", options["x0"], n)
        elif self.x0 is not None:
            self._x = self.x0.copy()
        else:
            self._x = self.x0_mean + self._x0_factor @ self.np_random.standard_normal(n)
        self._t = 0
        return self._x.astype(np.float32), {"state": self._x.copy()}

    def step(self, action: object) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (shape ``(m,)``, clipped to the bounds) for one step."""
        m = self.n_actions
        expected = f"a finite number{'s' if m > 1 else ''} of shape ({m},)"
        try:
            u = np.asarray(action, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"action must be {expected}, got {type(action).__name__}: {action!r}"
            ) from exc
        if u.shape != (m,):
            if u.size == m and u.ndim <= 1:  # a scalar for a single input
                u = u.reshape(m)
            else:
                raise ValueError(f"action must be {expected}, got shape {u.shape}: {action!r}")
        if not np.all(np.isfinite(u)):
            raise ValueError(f"action must be {expected}, got non-finite values {action!r}")
        u = self.clip_action(u)
        x = self._x
        reward = float(self.reward(x, u))
        w = self._noise_factor @ self.np_random.standard_normal(self.n_states)
        self._x = self.A @ x + self.B @ u + w
        self._t += 1
        truncated = self._t >= self.horizon
        info = {"state": self._x.copy(), "applied_action": u, "t": self._t}
        return self._x.astype(np.float32), reward, False, truncated, info

    # ------------------------------------------------------------------ batch simulation
    def simulate(
        self,
        policy: Callable[[np.ndarray], np.ndarray] | np.ndarray,
        n_episodes: int,
        seed: int | None = None,
        x0: np.ndarray | None = None,
        horizon: int | None = None,
    ) -> Trajectories:
        """Run ``n_episodes`` episodes side by side (vectorised over episodes).

        The dynamics, clipping and reward are exactly those of :meth:`step`; only the random
        numbers come from a separate generator seeded with ``seed`` (the environment's own
        generator is not touched): first the initial states, then the noise of each step. The
        loop is the book's one closed loop, :func:`lgutils.core.rollout.rollout`; the rewards
        are computed afterwards from its states and applied actions.

        Parameters
        ----------
        policy : callable or array_like of shape (m, n)
            ``policy(x)`` maps states of shape ``(N, n)`` to actions ``(N, m)``; a matrix K
            means the linear policy ``u = -K x``.
        n_episodes : int
            Number of episodes N.
        seed : int, optional
            Seed (>= 0) of the batch's random numbers.
        x0 : array_like, shape (n,) or (N, n), optional
            Initial states (default: the environment's initial-state distribution).
        horizon : int, optional
            Steps per episode (default the environment's ``horizon``).

        Returns
        -------
        Trajectories

        Raises
        ------
        ValueError
            When ``policy`` returns actions of another shape than ``(N, m)`` or non-finite ones,
            or the states diverge to infinity (the message names the step).
        """
        N = check_positive_int("n_episodes", n_episodes)
        T = self.horizon if horizon is None else check_positive_int("horizon", horizon)
        n, m = self.n_states, self.n_actions
        if callable(policy):
            act = policy
        else:
            K = as_matrix("policy", policy, m, n)

            def act(x: np.ndarray) -> np.ndarray:
                return -x @ K.T

        if seed is not None:
            seed = check_positive_int("seed", seed, 0)
        rng = np.random.default_rng(seed)
        start = np.empty((N, n))
        if x0 is not None:
            x0 = as_array("x0", x0)
            start[:] = as_vector("x0", x0, n) if x0.ndim == 1 else as_array("x0", x0, (N, n))
        elif self.x0 is not None:
            start[:] = self.x0
        else:
            start[:] = self.x0_mean + rng.standard_normal((N, n)) @ self._x0_factor.T

        def plant(x: np.ndarray, u: np.ndarray, t: int) -> np.ndarray:
            # the dynamics of step(), for N episodes at once; u is already clipped
            w = rng.standard_normal((N, n)) @ self._noise_factor.T
            return x @ self.A.T + u @ self.B.T + w

        run = rollout(
            lambda x, t: act(x), plant, start, T, action_shape=(N, m), clip=self.clip_action
        )
        rewards = self.reward(run.states[:, :T], run.actions)
        return Trajectories(run.states, run.raw_actions, run.actions, rewards)
