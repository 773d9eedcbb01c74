"""The MPC inside Stable-Baselines3 (SB3), without changing SB3 (paper Sec. V.C).

- :class:`MPCActorCriticPolicy` -- an SB3 ``ActorCriticPolicy`` whose Gaussian action mean is
  the MPC layer (:class:`lgutils.mpc_in_rl_library.layer.MPCLayer`, learnable ``phi``) with a
  learnable state-independent log-std and a small value network: SB3's PPO trains it unchanged;
- :class:`SB3Agent` -- a ``predict``-compatible wrapper, so that any MPC agent of ``lgutils``
  (an :class:`~lgutils.mpc.MPC`, a scenario MPC, a layer, a solver or a batch policy) can be
  scored with ``stable_baselines3.common.evaluation.evaluate_policy``;
- :class:`EpisodeEndIsTermination` -- the wrapper that tells SB3 that a fixed-length episode is
  the whole task (no bootstrapped tail).

Shapes: ``nx`` states (observations), ``nu`` inputs (actions), ``n_phi`` MPC parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from lgutils.core.validate import as_array, as_vector, check_in_open_interval, check_positive_int
from lgutils.mpc import MPC
from lgutils.mpc_in_rl_library.layer import MPCLayer
from lgutils.mpc_in_rl_library.solvers import check_solver

__all__ = ["MPCActorCriticPolicy", "SB3Agent", "EpisodeEndIsTermination"]


class MPCActorCriticPolicy(ActorCriticPolicy):
    """An SB3 actor-critic policy whose action mean is an MPC: ``a ~ N(u_0*(s; phi), diag(sigma^2))``.

    The actor is :class:`MPCLayer` (learnable ``phi``) fed with the raw observation, plus a
    learnable state-independent ``log sigma`` (SB3's ``log_std``); the critic is an MLP
    (``vf_arch`` hidden units, tanh). Everything else is SB3's ``ActorCriticPolicy``, so
    ``PPO(MPCActorCriticPolicy, env, policy_kwargs=dict(solver=..., phi_init=...))`` trains it
    with no change to SB3. All parameters share PPO's learning rate (SB3 overwrites the
    learning rate of every parameter group at each update).

    Parameters
    ----------
    observation_space : gymnasium.spaces.Box, shape (nx,)
    action_space : gymnasium.spaces.Box, shape (nu,)
    lr_schedule : callable
        Given by the algorithm.
    solver : MPCSolver or RiccatiSolver
        The MPC (its ``nx``/``nu`` must match the spaces).
    phi_init : dict or array_like
        Initial ``phi``.
    vf_arch : sequence of int
        Hidden units of the value network.
    log_std_init : float
        Initial ``log sigma`` (log of input units).
    **kwargs
        Passed to ``ActorCriticPolicy`` (``ortho_init``, ``optimizer_kwargs``, ...); ``net_arch``
        and ``use_sde`` are fixed by this class.

    Attributes
    ----------
    mpc_layer : MPCLayer
        The actor's mean (also ``action_net``).

    Notes
    -----
    The SB3 features are float32 observations; the layer solves in float64 and the mean is cast
    back to float32 for SB3's distribution. ``model.save`` cannot pickle a CasADi solver: store
    ``mpc_layer.phi_numpy()`` instead.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        lr_schedule: Callable[[float], float],
        solver: Any = None,
        phi_init: Any = None,
        vf_arch: tuple[int, ...] | list[int] = (64, 64),
        log_std_init: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if solver is None or phi_init is None:
            raise ValueError(
                "policy_kwargs must contain solver (MPCSolver or RiccatiSolver) and phi_init, "
                f"got solver={solver!r}, phi_init={'None' if phi_init is None else '...'}"
            )
        check_solver(solver)
        if not isinstance(observation_space, gym.spaces.Box) or observation_space.shape != (
            solver.nx,
        ):
            raise ValueError(
                f"observation_space must be a Box of shape ({solver.nx},), got {observation_space}"
            )
        if not isinstance(action_space, gym.spaces.Box) or action_space.shape != (solver.nu,):
            raise ValueError(
                f"action_space must be a Box of shape ({solver.nu},), got {action_space}"
            )
        if "net_arch" in kwargs:
            raise ValueError(
                f"net_arch is fixed by MPCActorCriticPolicy, got {kwargs['net_arch']!r}"
            )
        if kwargs.get("use_sde", False):
            raise ValueError(
                "use_sde must be False: the policy's noise is state-independent, got True"
            )
        vf_arch = [check_positive_int("vf_arch[i]", int(h)) for h in vf_arch]
        self._solver = solver
        self._phi_init = phi_init
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch={"pi": [], "vf": vf_arch},
            log_std_init=float(log_std_init),
            **kwargs,
        )

    def _build(self, lr_schedule: Callable[[float], float]) -> None:
        self._build_mlp_extractor()
        if not isinstance(self.action_dist, DiagGaussianDistribution):
            raise ValueError(
                f"MPCActorCriticPolicy needs a Gaussian policy, got {self.action_dist}"
            )
        self.mpc_layer = MPCLayer(self._solver, self._phi_init)
        self.action_net = self.mpc_layer
        self.log_std = nn.Parameter(
            torch.full((self._solver.nu,), float(self.log_std_init)), requires_grad=True
        )
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            self.mlp_extractor.apply(lambda m: self.init_weights(m, gain=np.sqrt(2)))
            self.value_net.apply(lambda m: self.init_weights(m, gain=1.0))
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor):
        # latent_pi is the observation itself (the policy branch of the MLP extractor is empty)
        mean = self.mpc_layer(latent_pi).to(latent_pi.dtype)
        return self.action_dist.proba_distribution(mean, self.log_std)


class SB3Agent:
    """Any ``lgutils`` MPC agent behind SB3's ``predict`` interface (for ``evaluate_policy``).

    ``predict(observation, state, episode_start, deterministic)`` maps a batch of observations
    (one per environment of a ``VecEnv``) to actions. Agents:

    - :class:`lgutils.mpc.MPC`, solved with ``policy_batch`` at ``phi``; an MPC that uses the
      previous input keeps it per environment in SB3's recurrent ``state`` (reset to
      ``u_prev0`` at ``episode_start``);
    - :class:`MPCLayer` (no gradient), or a solver (:class:`MPCSolver`, :class:`RiccatiSolver`)
      at ``phi``;
    - an object with ``policy(x, phi, u_prev=...)`` returning a result with ``.action`` (e.g.
      :class:`lgutils.mpc.scenario.ScenarioMPC`), solved row by row;
    - a batch policy: a callable ``X (N, nx) -> U (N, nu)`` (e.g.
      :func:`lgutils.local_global.mpc_policy`).

    Parameters
    ----------
    agent : see above
    phi : dict or array_like, optional
        Parameters for an MPC or a solver (the MPC's default parameter values if omitted).
    u_prev0 : array_like, shape (nu,), optional
        Input assumed before each episode, for agents that use the previous input
        (default zeros).
    noise_std : float
        Standard deviation of Gaussian exploration added when ``deterministic=False``
        (input units; 0: the agent is deterministic either way).
    seed : int, optional
        Seed of that noise.

    Raises
    ------
    lgutils.mpc.MPCSolveError
        From ``predict`` when a solve fails.
    """

    def __init__(
        self,
        agent: Any,
        phi: Any = None,
        *,
        u_prev0: Any = None,
        noise_std: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.agent = agent
        self.noise_std = check_in_open_interval("noise_std", noise_std, -1e-300, np.inf)
        self._rng = np.random.default_rng(seed)
        self.uses_u_prev = False
        if isinstance(agent, MPC):
            self.kind, nu = "mpc", agent.nu
            self.phi = None if phi is None else agent.flatten_phi(phi)
            self.uses_u_prev = agent.use_u_prev
        elif isinstance(agent, MPCLayer):
            self.kind, nu, self.phi = "layer", agent.solver.nu, None
        elif hasattr(agent, "solve") and hasattr(agent, "n_phi"):
            if phi is None:
                raise ValueError(f"phi is required with a solver agent ({type(agent).__name__})")
            self.kind, nu = "solver", agent.nu
            self.phi = as_vector("phi", phi, agent.n_phi)
        elif hasattr(agent, "policy") and callable(agent.policy):
            self.kind, nu, self.phi = "rowwise", getattr(agent, "nu", None), phi
            self.uses_u_prev = bool(getattr(agent, "uses_u_prev", False))
        elif callable(agent):
            self.kind, nu, self.phi = "batch", None, None
        else:
            raise ValueError(
                "agent must be an MPC, MPCLayer, solver, object with .policy(x, phi) or a batch "
                f"policy callable, got {type(agent).__name__}"
            )
        if self.uses_u_prev:
            if nu is None:
                raise ValueError("agent uses the previous input but has no attribute nu")
            self.u_prev0 = np.zeros(nu) if u_prev0 is None else as_vector("u_prev0", u_prev0, nu)
        else:
            self.u_prev0 = None

    def _act(self, X: np.ndarray, U_prev: np.ndarray | None) -> np.ndarray:
        if self.kind == "mpc":
            return self.agent.policy_batch(X, self.phi, U_prev=U_prev).actions
        if self.kind == "layer":
            with torch.no_grad():
                return self.agent(torch.as_tensor(X, dtype=torch.float64)).cpu().numpy()
        if self.kind == "solver":
            return self.agent.solve(X, self.phi).actions
        if self.kind == "rowwise":
            rows = []
            for i, x in enumerate(X):
                kw = {"u_prev": U_prev[i]} if U_prev is not None else {}
                rows.append(np.asarray(self.agent.policy(x, self.phi, **kw).action, dtype=float))
            return np.asarray(rows)
        return np.asarray(self.agent(X), dtype=float)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Actions for a batch of observations, SB3 style.

        Parameters
        ----------
        observation : array_like, shape (n_envs, nx) or (nx,)
        state : numpy.ndarray, shape (n_envs, nu), optional
            The previous inputs (agents that use them); ``None`` at the start.
        episode_start : array_like of bool, shape (n_envs,), optional
            Environments whose episode just started (their previous input is reset).
        deterministic : bool
            Without it, Gaussian noise of ``noise_std`` is added.

        Returns
        -------
        actions : numpy.ndarray, float32, shape (n_envs, nu) (or (nu,) for one observation)
        state : numpy.ndarray or None
            The actions just taken, for agents that use the previous input.
        """
        X = as_array("observation", observation)
        single = X.ndim == 1
        X = X[None] if single else X
        if X.ndim != 2:
            raise ValueError(f"observation must have shape (n_envs, nx), got shape {X.shape}")
        U_prev = None
        if self.uses_u_prev:
            U_prev = (
                np.tile(self.u_prev0, (len(X), 1))
                if state is None
                else as_array("state", state, (len(X), self.u_prev0.size)).copy()
            )
            if episode_start is not None:
                U_prev[np.asarray(episode_start, dtype=bool).reshape(-1)] = self.u_prev0
        U = np.asarray(self._act(X, U_prev), dtype=float).reshape(len(X), -1)
        if not deterministic and self.noise_std > 0:
            U = U + self.noise_std * self._rng.standard_normal(U.shape)
        new_state = U.copy() if self.uses_u_prev else None
        U32 = U.astype(np.float32)
        return (U32[0] if single else U32), new_state


class EpisodeEndIsTermination(gym.Wrapper):
    """Report the end of a fixed-length episode as a termination, not a time-limit truncation.

    Case study B's objective is the undiscounted return of a T-step episode: nothing follows the
    T-th step. SB3 treats ``truncated=True`` as a time limit and bootstraps the return with the
    critic's value of the last state (``r_T + gamma V(s_T)``), which would add a fictitious
    tail to every episode. With this wrapper the episode *ends* after T steps.
    """

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, bool(terminated or truncated), False, info
