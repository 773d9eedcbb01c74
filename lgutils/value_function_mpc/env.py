"""The goal-conditioned CSTR environment of the RL agent (case study A, ``lgutils/CSTR-v0``).

:class:`CSTREnv` (``gymnasium.make("lgutils/CSTR-v0")``) is the training environment of the RL
agent on :mod:`lgutils.value_function_mpc.cstr`'s reactor: Dict observations for hindsight
experience replay, ``compute_reward`` vectorised over batches, 50-step episodes, ``alpha,
beta`` redrawn at every step from the "missing truth" sets
:data:`~lgutils.value_function_mpc.cstr.ALPHA_TRAIN`,
:data:`~lgutils.value_function_mpc.cstr.BETA_TRAIN`.

Observation design. Stable-Baselines3 flattens a Dict observation by concatenating its entries
in sorted key order, ``(achieved_goal, desired_goal, observation)``. Here

- ``achieved_goal = (c_B,)``, ``desired_goal = (g,)`` [mol/l];
- ``observation = (c_A, T_R / 100, T_K / 100)`` (``c_B`` is not repeated),

so the network input is ``s = (c_B, g, c_A, T_R/100, T_K/100)``. It is an invertible linear
map of the reference's error input ``z = (c_A, c_B, T_R, T_K, g - c_B)``:
``c_B = z_2``, ``g = z_2 + z_5``, ``c_A = z_1``, ``T_R/100 = z_3/100``, ``T_K/100 = z_4/100``
(see :func:`~lgutils.value_function_mpc.cstr.network_input` and
:func:`~lgutils.value_function_mpc.cstr.error_input`). Because the first layer of every network
is affine, a network on ``s`` and a network on ``z`` represent exactly the same set of
functions (the first-layer weights differ by that fixed matrix); only the initialisation and
the optimiser's geometry differ. The temperature scaling by 100 is do-mpc's.

Bad input is refused with a :class:`ValueError` that names the argument, what was given and
what was expected: an action that is not finite or not of shape (2,), ``reset`` options other
than ``x0`` and ``goal``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from lgutils.core.validate import as_array, as_vector, check_positive_int
from lgutils.value_function_mpc.cstr import (
    A_HIGH,
    A_LOW,
    A_SCALE,
    ALPHA_TRAIN,
    BETA_TRAIN,
    GOAL_FIG3,
    GOALS,
    REWARD_WIDTH,
    T_SCALE,
    T_STEP,
    X0_FIG3,
    X_HIGH,
    X_LOW,
    cvodes_step,
    rk4_floats,
)

__all__ = ["RESET_OPTIONS", "CSTREnv", "reward_exponent"]

#: The options ``CSTREnv.reset`` understands.
RESET_OPTIONS = ("x0", "goal")
# The action box and the scale to do-mpc units as Python floats (the step works on floats).
_A_LOW, _A_HIGH, _A_SCALE = A_LOW.tolist(), A_HIGH.tolist(), A_SCALE.tolist()


class CSTREnv(gym.Env):
    """Goal-conditioned CSTR environment of the RL agent (case study A).

    Parameters
    ----------
    nominal : bool
        If True, the plant has ``alpha = beta = 1`` at every step; otherwise both are redrawn
        at every step, uniformly and independently, from ``alpha_values`` and ``beta_values``.
    alpha_values, beta_values : array_like, optional
        The finite sets to draw from (default the "missing truth" sets :data:`~lgutils.value_function_mpc.cstr.ALPHA_TRAIN`,
        :data:`~lgutils.value_function_mpc.cstr.BETA_TRAIN`: 10 values evenly spaced in [0.95, 1.05] and [0.9, 1.1]).
    max_episode_steps : int
        Episode length; the episode is truncated (never terminated) after it (default 50).
    integrator : {"rk4", "cvodes"}
        Plant integrator (see :func:`lgutils.value_function_mpc.cstr.plant_step`).
    substeps : int
        RK4 sub-intervals per step.

    Notes
    -----
    - Action: agent units ``(F/10, Qdot/1000)`` in ``[0.5, 10] x [-8.5, 0]`` (clipped).
    - Observation: ``{"observation": (c_A, T_R/100, T_K/100), "achieved_goal": (c_B,),
      "desired_goal": (g,)}``, float32 (see the module docstring for the relation with the
      reference's error input).
    - Reward: ``exp(-0.5 ((g - c_B') / 0.01)^2)`` with ``c_B'`` the concentration after the step,
      computed by :meth:`compute_reward` from the float32 goals of the observation, so that
      hindsight relabelling reproduces it bit for bit.
    - ``reset(options={"x0": ..., "goal": ...})`` fixes the initial state (do-mpc units) and the
      goal; by default ``x0`` is uniform in the box and ``g`` uniform in {0.6, 0.7, 0.8}.
      Other option names raise a :class:`ValueError`.
    - ``step(action)`` takes a finite action of shape (2,) (else :class:`ValueError`) and clips
      it to the action space.
    - ``info`` holds the full state ``"x"`` (do-mpc units), the applied input ``"u"``, and the
      plant parameters ``"alpha"``, ``"beta"`` of the step.
    - Speed (measured on one core of the development machine, under load): about 11,000
      steps/s with RK4 (the step works on Python floats), 2,800 with CVODES; SAC's gradient
      steps (about 150-200 per second) dominate training, see ``benchmarks/sac_training.py``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        nominal: bool = False,
        alpha_values: np.ndarray | None = None,
        beta_values: np.ndarray | None = None,
        max_episode_steps: int = 50,
        integrator: str = "rk4",
        substeps: int = 10,
    ) -> None:
        super().__init__()
        self.nominal = bool(nominal)
        self.alpha_values = as_vector(
            "alpha_values", ALPHA_TRAIN if alpha_values is None else alpha_values
        )
        self.beta_values = as_vector(
            "beta_values", BETA_TRAIN if beta_values is None else beta_values
        )
        self.max_episode_steps = check_positive_int("max_episode_steps", max_episode_steps)
        if integrator not in ("rk4", "cvodes"):
            raise ValueError(f"integrator must be 'rk4' or 'cvodes', got {integrator!r}")
        self.integrator = integrator
        self.substeps = check_positive_int("substeps", substeps)
        self.action_space = gym.spaces.Box(
            A_LOW.astype(np.float32), A_HIGH.astype(np.float32), dtype=np.float32
        )
        inf = np.float32(np.inf)
        self.observation_space = gym.spaces.Dict(
            {
                "observation": gym.spaces.Box(-inf, inf, shape=(3,), dtype=np.float32),
                "achieved_goal": gym.spaces.Box(-inf, inf, shape=(1,), dtype=np.float32),
                "desired_goal": gym.spaces.Box(-inf, inf, shape=(1,), dtype=np.float32),
            }
        )
        self._x = X0_FIG3.copy()
        self._goal = GOAL_FIG3
        self._t = 0

    # -- helpers -------------------------------------------------------------------------------
    def _obs(self) -> dict[str, np.ndarray]:
        c_a, c_b, t_r, t_k = self._x
        return {
            "observation": np.array([c_a, t_r / T_SCALE, t_k / T_SCALE], dtype=np.float32),
            "achieved_goal": np.array([c_b], dtype=np.float32),
            "desired_goal": np.array([self._goal], dtype=np.float32),
        }

    @property
    def state(self) -> np.ndarray:
        """The current state (c_A, c_B, T_R, T_K) in do-mpc units, shape (4,)."""
        return self._x.copy()

    @property
    def goal(self) -> float:
        """The current goal c_B [mol/l]."""
        return self._goal

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``options`` may fix ``"x0"`` (shape (4,)) and ``"goal"`` (float)."""
        options = _checked_options(options)
        super().reset(seed=seed)
        if options.get("x0") is not None:
            self._x = as_vector("options['x0']", options["x0"], 4).copy()
        else:
            self._x = self.np_random.uniform(X_LOW, X_HIGH)
        if options.get("goal") is not None:
            self._goal = float(as_vector("options['goal']", options["goal"], 1)[0])
        else:
            self._goal = float(self.np_random.choice(GOALS))
        self._t = 0
        return self._obs(), {"x": self._x.copy()}

    def step(self, action):
        """One sampling interval with ``action`` (agent units, shape (2,), clipped to the box)."""
        a0, a1 = _action_floats(action)
        f = _clip(a0, _A_LOW[0], _A_HIGH[0]) * _A_SCALE[0]
        q = _clip(a1, _A_LOW[1], _A_HIGH[1]) * _A_SCALE[1]
        if self.nominal:
            alpha = beta = 1.0
        else:
            alpha = float(self.alpha_values[self.np_random.integers(len(self.alpha_values))])
            beta = float(self.beta_values[self.np_random.integers(len(self.beta_values))])
        if self.integrator == "rk4":
            # Python floats, not numpy scalars: the same IEEE operations, three times faster
            x = rk4_floats(self._x.tolist(), f, q, alpha, beta, T_STEP, self.substeps)
            self._x = np.array(x)
        else:
            self._x = cvodes_step(self._x, np.array([f, q]), alpha, beta)
        self._t += 1
        obs = self._obs()
        # computed from the float32 goals, exactly as hindsight relabelling recomputes it
        ag, dg = float(obs["achieved_goal"][0]), float(obs["desired_goal"][0])
        reward = math.exp(reward_exponent(ag, dg))
        truncated = self._t >= self.max_episode_steps
        info = {"x": self._x.copy(), "u": np.array([f, q]), "alpha": alpha, "beta": beta}
        return obs, reward, False, truncated, info

    def compute_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:  # noqa: ARG002
        """Vectorised reward for hindsight relabelling.

        Parameters
        ----------
        achieved_goal, desired_goal : array_like, shape (1,) or (batch, 1)
            c_B after the step and the goal [mol/l].
        info : dict, list of dicts or None
            Unused.

        Returns
        -------
        numpy.ndarray, shape () or (batch,)
            ``exp(-0.5 ((g - c_B) / 0.01)^2)`` computed in float64, bit-identical whether
            evaluated on a batch or one sample at a time.
        """
        ag = np.asarray(achieved_goal, dtype=float)
        dg = np.asarray(desired_goal, dtype=float)
        if ag.shape != dg.shape or ag.shape[-1:] != (1,):
            raise ValueError(
                f"achieved_goal and desired_goal must have equal shapes (..., 1), got {ag.shape} and {dg.shape}"
            )
        # math.exp one sample at a time, as in the step: numpy's vectorised exp may differ from
        # it in the last bit, and SB3's checker demands that batch and single rewards be equal
        arg = reward_exponent(ag[..., 0], dg[..., 0])
        return np.fromiter(map(math.exp, arg.ravel().tolist()), float, arg.size).reshape(arg.shape)


def reward_exponent(achieved: Any, desired: Any) -> Any:
    """``-0.5 ((g - c_B) / 0.01)^2``, the exponent of the reward, on floats or numpy arrays.

    The one formula behind :meth:`CSTREnv.step` (on floats) and :meth:`CSTREnv.compute_reward`
    (on a batch): the same IEEE operations either way, so that a relabelled reward
    ``math.exp(exponent)`` equals the step's to the bit.
    """
    e = (desired - achieved) / REWARD_WIDTH
    return -0.5 * (e * e)


def _action_floats(action: Any) -> tuple[float, float]:
    """The two entries of a finite action of shape (2,) as floats (else :class:`ValueError`).

    A float32 or float64 array of shape (2,) (what SB3 passes) is read directly; anything else goes through
    :func:`lgutils.core.validate.as_array`, which converts it or raises the error.
    """
    if isinstance(action, np.ndarray) and action.shape == (2,) and action.dtype.char in "fd":
        a0, a1 = action.tolist()
        if math.isfinite(a0) and math.isfinite(a1):
            return a0, a1
    a = as_array("action", action, (2,))
    return float(a[0]), float(a[1])


def _clip(x: float, low: float, high: float) -> float:
    """``numpy.clip`` on one float, to the bit (also the sign of zero at a bound)."""
    x = x if x > low else low
    return x if x < high else high


def _checked_options(options: Any) -> Mapping[str, Any]:
    """``reset``'s options as a mapping with no key outside :data:`RESET_OPTIONS`."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(
            f"options must be a dict with keys among {list(RESET_OPTIONS)} or None, "
            f"got {type(options).__name__}: {options!r}"
        )
    unknown = sorted(set(options) - set(RESET_OPTIONS), key=str)
    if unknown:
        raise ValueError(
            f"options has unknown keys {unknown}; expected keys among {list(RESET_OPTIONS)}"
        )
    return options
