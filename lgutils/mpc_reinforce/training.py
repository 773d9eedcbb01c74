"""The training loop shared by the learners of case study B's MPC model.

REINFORCE (:mod:`lgutils.mpc_reinforce.reinforce`, with or without an input bound) and
Q-learning (:mod:`lgutils.mpc_reinforce.qlearning`) train the same model
``phi = [vec(A_phi); vec(B_phi)]`` with the same optimiser and the same random numbers; they
differ only in the episodes they play and the gradient they descend. This module holds what
they share: the checked hyperparameters (:class:`Settings`), the optimiser step (global
gradient-norm clipping, Adam, clamping), the loop over updates for r runs side by side
(:func:`train_runs`) and its record of learning curves (:class:`ReinforceRuns`).

Shapes: ``r`` runs, ``E`` updates, ``N`` episodes per batch, ``T`` steps, ``n`` states, ``m``
inputs, ``n_phi = n^2 + n m``. Returns are in reward units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from lgutils.core.optim import adam_kernel
from lgutils.core.validate import as_array, check_in_open_interval, check_positive_int
from lgutils.mpc_reinforce.model import CaseB, case_b, split_phi
from lgutils.mpc_reinforce.rollout import Batch, expected_return_kernel, mpc_episodes

__all__ = [
    "DIVERGENCE_THRESHOLD",
    "clip_global_norm",
    "Settings",
    "check_settings",
    "check_seeds",
    "clipped_adam_step",
    "ReinforceRuns",
    "Play",
    "Gradient",
    "play_mpc",
    "train_runs",
    "runs_record",
]

#: A run counts as diverged if any of its sampled or expected returns is non-finite or below this
#: value (reward units). The true system's open loop from x_0 costs about -5 over 10 steps and the
#: worst initial models of Fig. 4 about -1e2 .. -1e3, so -1e6 marks a numerical blow-up only.
DIVERGENCE_THRESHOLD = -1.0e6


def clip_global_norm(grad: np.ndarray, max_norm: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale each run's gradient so that its Euclidean norm is at most ``max_norm``.

    Uses the factor ``min(1, max_norm / (norm + 1e-6))``, as ``torch.nn.utils.clip_grad_norm_``.

    Parameters
    ----------
    grad : array_like, shape (r, n_phi)
    max_norm : float
        > 0.

    Returns
    -------
    clipped : numpy.ndarray, shape (r, n_phi)
    norm : numpy.ndarray, shape (r,)
        The norms before clipping.
    """
    g = as_array("grad", grad, (None, None))
    max_norm = check_in_open_interval("max_norm", max_norm, 0.0, np.inf)
    return _clip(g, max_norm)


def _clip(g: np.ndarray, max_norm: float) -> tuple[np.ndarray, np.ndarray]:
    norm = np.sqrt(np.sum(g * g, axis=-1))
    coef = np.minimum(1.0, max_norm / (norm + 1e-6))
    return g * coef[:, None], norm


class Settings(NamedTuple):
    """The checked hyperparameters of a learner of the MPC model (see :func:`check_settings`)."""

    horizon_mpc: int
    batch_size: int
    lr: float
    max_grad_norm: float
    clamp: float
    action_std: float
    return_eps: float


def check_settings(
    horizon_mpc, batch_size, lr, max_grad_norm, clamp, action_std, return_eps
) -> Settings:
    """Check the hyperparameters of :func:`reinforce_update` (each ValueError names its argument).

    ``horizon_mpc`` and ``batch_size`` are integers (>= 1 and >= 2), ``lr``, ``max_grad_norm``,
    ``clamp`` and ``action_std`` are > 0 and ``return_eps`` is >= 0.
    """
    return Settings(
        horizon_mpc=check_positive_int("horizon_mpc", horizon_mpc),
        batch_size=check_positive_int("batch_size", batch_size, minimum=2),
        lr=check_in_open_interval("lr", lr, 0.0, np.inf),
        max_grad_norm=check_in_open_interval("max_grad_norm", max_grad_norm, 0.0, np.inf),
        clamp=check_in_open_interval("clamp", clamp, 0.0, np.inf),
        action_std=check_in_open_interval("action_std", action_std, 0.0, np.inf),
        return_eps=check_in_open_interval("return_eps", return_eps, -1e-300, np.inf),
    )


def clipped_adam_step(
    phi: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, grad: np.ndarray, cfg: Settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clip each run's gradient norm, take an Adam step, clamp the parameters (no checks).

    Parameters
    ----------
    phi, m, v, grad : numpy.ndarray, shape (r, n_phi)
        Parameters, Adam's moment estimates, gradient of the loss (descended).
    step : int
        Adam's step count after this update (>= 1).
    cfg : Settings
        ``max_grad_norm``, ``lr`` and ``clamp`` are used.

    Returns
    -------
    (phi, m, v, norm) : the updated arrays (r, n_phi) and the gradient norms (r,) before
    clipping.
    """
    grad, norm = _clip(grad, cfg.max_grad_norm)
    phi, m, v = adam_kernel(phi, grad, m, v, step, cfg.lr, 0.9, 0.999, 1e-8)
    return np.clip(phi, -cfg.clamp, cfg.clamp), m, v, norm


def check_seeds(seeds: object) -> list[int]:
    """A non-empty list of non-negative integer seeds (numpy integers accepted), checked."""
    if (
        isinstance(seeds, (int, np.integer, str, bytes))
        or not hasattr(seeds, "__len__")
        or len(seeds) == 0
    ):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    return [
        check_positive_int("seeds[i]", int(s) if isinstance(s, np.integer) else s, minimum=0)
        for s in seeds
    ]


class ReinforceRuns(NamedTuple):
    """The learning curves of independent REINFORCE runs (E = 0 is the initial model).

    Attributes
    ----------
    seeds : (r,) int
        Seed of each run's generator.
    returns : (r, E + 1)
        Mean return of the batch of N episodes sampled with the model after E updates (for
        E < n_updates, the batch used by update E + 1; for E = n_updates one extra batch).
    expected_returns : (r, E + 1)
        Exact expected return of the same policies
        (:func:`lgutils.mpc_reinforce.rollout.expected_return`; NaN without a closed form).
    phi : (r, E + 1, n_phi)
        The models ``[vec(A_phi); vec(B_phi)]``.
    mismatch_A, mismatch_B : (r, E + 1)
        ``||A_phi - A||_F`` and ``||B_phi - B||_F``.
    grad_norm : (r, E)
        Global gradient norm of each update before clipping.
    blown_up : (r, E + 1) bool
        Points where the sampled or the expected return is non-finite or below
        :data:`DIVERGENCE_THRESHOLD` (the closed loop on the true system blew up).
    """

    seeds: np.ndarray
    returns: np.ndarray
    expected_returns: np.ndarray
    phi: np.ndarray
    mismatch_A: np.ndarray
    mismatch_B: np.ndarray
    grad_norm: np.ndarray
    blown_up: np.ndarray

    @property
    def diverged(self) -> np.ndarray:
        """(r,) bool: runs that blew up at least once during training (see ``blown_up``)."""
        return self.blown_up.any(axis=1)

    @property
    def diverged_at_end(self) -> np.ndarray:
        """(r,) bool: runs whose final model still blows up."""
        return self.blown_up[:, -1]


#: ``play(A_phi, B_phi, action_noise, process_noise, with_gradient) -> (batch, expected, tape)``:
#: the episodes of r models, their exact expected returns (r,) (NaN where there is no closed
#: form) and what ``gradient(batch, A_phi, B_phi, tape) -> (r, n_phi)`` needs.
Play = Callable[..., tuple[Batch, np.ndarray, Any]]
Gradient = Callable[[Batch, np.ndarray, np.ndarray, Any], np.ndarray]


def play_mpc(
    env: CaseB,
    cfg: Settings,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
    with_gradient: bool = True,
) -> tuple[Batch, np.ndarray, tuple[np.ndarray, list]]:
    """:data:`Play` of the unconstrained MPC: its episodes and their exact expected returns.

    The tape is ``(K, riccati_tape)``: the gains (r, m, n) and the tape of
    :func:`lgutils.mpc_reinforce.model.riccati_gains`, which both learners' gradients use
    (``with_gradient`` changes nothing here).
    """
    K, tape, batch = mpc_episodes(
        env, A_phi, B_phi, cfg.horizon_mpc, cfg.action_std, action_noise, process_noise
    )
    return batch, expected_return_kernel(env, K, cfg.action_std), (K, tape)


def train_runs(
    seeds: list[int],
    n_updates: int,
    cfg: Settings,
    init_scale: float,
    play: Play,
    gradient: Gradient,
) -> ReinforceRuns:
    """The training loop of the MPC's model for r runs side by side (inputs already checked).

    Run ``i`` uses only ``numpy.random.default_rng(seeds[i])``: first the initial model (A_phi
    then B_phi, i.i.d. uniform on [-init_scale, init_scale], row-major), then for every batch one
    standard normal array of shape (N, T, m + n) whose first m columns are the exploration noise
    and the others the process noise. Each update plays a batch and descends the gradient with
    :func:`clipped_adam_step`; a run whose batch has a non-finite return, or whose gradient is
    not finite, stops learning. REINFORCE
    (:func:`lgutils.mpc_reinforce.reinforce.run_reinforce`) and Q-learning
    (:func:`lgutils.mpc_reinforce.qlearning.run_q_learning`) differ only in ``play`` and
    ``gradient``.

    Parameters
    ----------
    seeds : list of int
        One seed per run (checked by :func:`check_seeds`).
    n_updates : int
        Number of updates E >= 0.
    cfg : Settings
        ``batch_size`` and the optimiser's settings.
    init_scale : float
        Half-width of the uniform initial distribution of every model entry.
    play : Play
        Episodes of the r current models (see :data:`Play`).
    gradient : Gradient
        Gradient of the learner's loss (r, n_phi) from what ``play`` returned.

    Returns
    -------
    ReinforceRuns
    """
    env = case_b()
    n, m_in = env.B.shape
    npar = n * n + n * m_in
    E, T, N, r = n_updates, env.horizon, cfg.batch_size, len(seeds)
    rngs = [np.random.default_rng(s) for s in seeds]
    phi = np.stack([g.uniform(-init_scale, init_scale, size=npar) for g in rngs])
    adam_m, adam_v = np.zeros_like(phi), np.zeros_like(phi)
    hist = np.empty((r, E + 1, npar))
    returns, expected = np.empty((r, E + 1)), np.empty((r, E + 1))
    grad_norm = np.full((r, E), np.nan)
    frozen = np.zeros(r, dtype=bool)
    for k in range(E + 1):
        hist[:, k] = phi
        z = np.stack([g.standard_normal((N, T, m_in + n)) for g in rngs])
        A_phi, B_phi = split_phi(phi, n, m_in)
        batch, expected[:, k], tape = play(A_phi, B_phi, z[..., :m_in], z[..., m_in:], k < E)
        G = batch.rewards.sum(axis=-1)
        with np.errstate(over="ignore", invalid="ignore"):
            returns[:, k] = G.mean(axis=-1)
        # a batch with non-finite returns has no usable gradient: that run stops learning
        frozen |= ~np.isfinite(G).all(axis=-1)
        if k < E:
            with np.errstate(over="ignore", invalid="ignore"):
                grad = gradient(batch, A_phi, B_phi, tape)
                frozen |= ~np.isfinite(grad).all(axis=-1)
                grad = np.where(frozen[:, None], 0.0, grad)
                new, m_new, v_new, norm = clipped_adam_step(phi, adam_m, adam_v, k + 1, grad, cfg)
            keep = ~frozen
            phi[keep], adam_m[keep], adam_v[keep] = new[keep], m_new[keep], v_new[keep]
            grad_norm[keep, k] = norm[keep]
    return runs_record(env, seeds, returns, expected, hist, grad_norm)


def runs_record(
    env: CaseB,
    seeds: list[int],
    returns: np.ndarray,
    expected: np.ndarray,
    hist: np.ndarray,
    grad_norm: np.ndarray,
) -> ReinforceRuns:
    """The :class:`ReinforceRuns` of learning curves, with the model mismatch and blow-ups added.

    ``returns``, ``expected`` (r, E + 1), ``hist`` (r, E + 1, n_phi) and ``grad_norm`` (r, E)
    as in :class:`ReinforceRuns`; the mismatch is taken against ``env``'s true ``A`` and ``B``.
    """
    A_hist, B_hist = split_phi(hist, *env.B.shape)
    mis_A = np.sqrt(np.sum((A_hist - env.A) ** 2, axis=(-2, -1)))
    mis_B = np.sqrt(np.sum((B_hist - env.B) ** 2, axis=(-2, -1)))
    # NaN expected returns (bounded MPC: no closed form) do not count; NaN sampled ones do
    blown_up = ~(returns >= DIVERGENCE_THRESHOLD) | (expected < DIVERGENCE_THRESHOLD)
    return ReinforceRuns(
        seeds=np.asarray(seeds, dtype=np.int64),
        returns=returns,
        expected_returns=expected,
        phi=hist,
        mismatch_A=mis_A,
        mismatch_B=mis_B,
        grad_norm=grad_norm,
        blown_up=blown_up,
    )
