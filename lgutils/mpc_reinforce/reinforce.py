"""Case study B (paper Sec. V.B, Fig. 4): the MPC's model learned by REINFORCE.

The policy is the MPC of :mod:`lgutils.mpc_reinforce.model` (eq. 14, ``pi_phi(s) = -K_0(phi) s``
without constraints); this module trains its model ``phi = [vec(A_phi); vec(B_phi)]`` with
REINFORCE exactly as in the reference setup:

- Gaussian exploration ``a ~ N(-K_0 s, sigma_a^2)``, ``sigma_a = 0.01``;
- a batch of 64 episodes of 10 steps from the fixed ``x_0`` per update, returns z-normalised
  within the batch, surrogate loss ``-(1/N) sum_i sum_t log pi(a_t | s_t) G_i``;
- Adam (learning rate 0.1), global gradient-norm clipping at 10, every parameter clamped to
  [-2, 2] after each step; 100 updates; initial entries i.i.d. uniform on [-1, 1].

The gradient of the surrogate loss reaches ``phi`` through the MPC's sensitivity: the score
``(a - u) / sigma_a^2`` times ``d u / d K_0 = -s^T``, carried to ``phi`` by the adjoint of the
Riccati recursion (:func:`lgutils.mpc_reinforce.model.riccati_vjp`). Chapter 08 writes the same
update with the action Jacobian ``d u / d phi``, one state at a time.

With ``u_max`` (beyond the paper), :func:`run_reinforce` trains the input-bounded MPC of
:mod:`lgutils.mpc_reinforce.bounded` instead, through its active-set sensitivities;
:mod:`lgutils.mpc_reinforce.qlearning` trains the same model value-based with the same loop,
:func:`train_runs`.

Independent runs are vectorised over a leading "run" axis and dispatched in chunks through
:mod:`joblib`, so the same call runs serially, on local processes or on a dask cluster
(``joblib.parallel_config(backend="dask")``) with identical numbers: every run draws all of its
random numbers from its own generator, seeded from :func:`lgutils.core.seeding.spawn_seeds`.

Shapes: ``n`` states, ``m`` inputs, ``r`` runs, ``N`` episodes per batch, ``T`` steps,
``n_phi = n^2 + n m``. Returns are in reward units (the negative of the quadratic cost,
dimensionless here).
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any

import numpy as np

from lgutils.core import lqr
from lgutils.core.seeding import spawn_seeds
from lgutils.core.validate import as_array, check_in_open_interval, check_positive_int
from lgutils.mpc_reinforce import bounded
from lgutils.mpc_reinforce.model import (
    CaseB,
    case_b,
    join_phi,
    mpc_gain,
    mpc_gain_vjp,
    riccati_vjp,
    split_phi,
)
from lgutils.mpc_reinforce.rollout import Batch
from lgutils.mpc_reinforce.training import (
    ReinforceRuns,
    Settings,
    check_seeds,
    check_settings,
    clipped_adam_step,
    play_mpc,
    train_runs,
)

__all__ = [
    "normalise_returns",
    "surrogate_gradient",
    "reinforce_update",
    "run_reinforce",
    "run_experiment",
    "reference_returns",
    "curve_summary",
]


def normalise_returns(returns: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Z-normalise returns within each batch: ``(G - mean) / (std + eps)`` along the last axis.

    The standard deviation is the sample one (``ddof = 1``, as ``torch.Tensor.std``).

    Parameters
    ----------
    returns : array_like, shape (..., N)
        Episode returns, N >= 2 per batch.
    eps : float
        Guard against a zero spread, >= 0.
    """
    G = as_array("returns", returns)
    if G.ndim < 1 or G.shape[-1] < 2:
        raise ValueError(f"returns must have shape (..., N) with N >= 2, got shape {G.shape}")
    eps = check_in_open_interval("eps", eps, -1e-300, np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = _normalise(G, eps)
    if not np.all(np.isfinite(out)):
        raise ValueError(
            "returns have zero spread within a batch (or overflow) and eps = "
            f"{eps}: the normalised returns are undefined; pass eps > 0"
        )
    return out


def _normalise(G: np.ndarray, eps: float) -> np.ndarray:
    mean = G.mean(axis=-1, keepdims=True)
    std = G.std(axis=-1, ddof=1, keepdims=True)
    return (G - mean) / (std + eps)


def _gain_gradient(batch: Batch, Gn: np.ndarray, action_std: float) -> np.ndarray:
    """d L / d K (r, m, n) for L = -(1/N) sum_i G_i sum_t log pi(a_it | s_it)."""
    N = Gn.shape[1]
    T = batch.means.shape[2]
    score_u = (batch.actions - batch.means) / action_std**2  # d log pi / d u, (r, N, T, m)
    # u = -K x  =>  d log pi / d K = -score_u x^T;  dL/dK = (1/N) sum_i G_i sum_t score_u x^T
    weighted = (score_u * Gn[:, :, None, None]).reshape(Gn.shape[0], -1, score_u.shape[-1])
    xs = batch.states[:, :, :T].reshape(Gn.shape[0], -1, batch.states.shape[-1])
    return np.swapaxes(weighted, -1, -2) @ xs / N


def _surrogate_gradient(
    batch: Batch, Gn: np.ndarray, A: np.ndarray, B: np.ndarray, tape: list, action_std: float
) -> np.ndarray:
    gA, gB = riccati_vjp(A, B, tape, _gain_gradient(batch, Gn, action_std))
    return join_phi(gA, gB)


def surrogate_gradient(
    batch: Batch,
    returns_normalised: np.ndarray,
    A_phi: np.ndarray,
    B_phi: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    action_std: float,
    horizon: int = 5,
) -> np.ndarray:
    """Gradient of the REINFORCE surrogate loss with respect to ``phi``.

    ``L(phi) = -(1/N) sum_i G_i sum_t log N(a_it; -K(phi) x_it, sigma_a^2)`` with the
    normalised returns ``G_i`` held fixed. With ``d log pi / d u = (a - u) / sigma_a^2`` and
    ``u = -K x``, ``d L / d K = (1/N) sum_i G_i sum_t (a - u) x^T / sigma_a^2``, which the
    adjoint of the Riccati recursion (:func:`~lgutils.mpc_reinforce.model.mpc_gain_vjp`) carries
    to ``phi``.

    Parameters
    ----------
    batch : Batch
        Episodes of r runs (see :func:`lgutils.mpc_reinforce.rollout.rollout`), generated with
        ``K(phi)``.
    returns_normalised : array_like, shape (r, N)
        Normalised returns G_i.
    A_phi, B_phi : array_like, shapes (r, n, n) and (r, n, m)
        The models of the r runs.
    Q, R, horizon
        As in :func:`lgutils.mpc_reinforce.model.mpc_gain`.
    action_std : float
        sigma_a > 0.

    Returns
    -------
    numpy.ndarray, shape (r, n_phi)
    """
    r, N = batch.rewards.shape[:2]
    Gn = as_array("returns_normalised", returns_normalised, (r, N))
    action_std = check_in_open_interval("action_std", action_std, 0.0, np.inf)
    A = as_array("A_phi", A_phi, (r, None, None))
    cot = _gain_gradient(batch, Gn, action_std)
    return mpc_gain_vjp(A, B_phi, Q, R, cot, horizon)


def _reinforce_gradient(
    cfg: Settings, batch: Batch, A_phi: np.ndarray, B_phi: np.ndarray, tape: tuple
) -> np.ndarray:
    """The surrogate gradient (r, n_phi) of a batch of the unconstrained MPC.

    A :data:`lgutils.mpc_reinforce.training.Gradient`; ``tape`` is ``(K, riccati_tape)``.
    """
    Gn = _normalise(batch.rewards.sum(axis=-1), cfg.return_eps)
    return _surrogate_gradient(batch, Gn, A_phi, B_phi, tape[1], cfg.action_std)


def reinforce_update(
    phi: np.ndarray,
    adam_m: np.ndarray,
    adam_v: np.ndarray,
    step: int,
    action_noise: np.ndarray,
    process_noise: np.ndarray,
    *,
    lr: float = 0.1,
    max_grad_norm: float = 10.0,
    clamp: float = 2.0,
    action_std: float = 0.01,
    horizon_mpc: int = 5,
    return_eps: float = 1e-8,
    env: CaseB | None = None,
) -> dict[str, np.ndarray]:
    """One REINFORCE update of the MPC model for ``r`` runs, from given random numbers.

    Rolls out ``N`` episodes of ``a = -K(phi) x + sigma_a eps`` on the true system, z-normalises
    their returns, differentiates the surrogate loss, clips its global norm, takes an Adam step
    and clamps the parameters.

    Parameters
    ----------
    phi : array_like, shape (r, n_phi)
        Current models ``[vec(A_phi); vec(B_phi)]``.
    adam_m, adam_v : array_like, shape (r, n_phi)
        Adam's moment estimates (zeros before the first update).
    step : int
        Adam's step count after this update (1 for the first).
    action_noise : array_like, shape (r, N, T, m)
        Standard normal exploration noise.
    process_noise : array_like, shape (r, N, T, n)
        Standard normal process noise.
    lr, max_grad_norm, clamp, action_std, horizon_mpc, return_eps
        Learning rate, clipping norm, parameter bound, exploration std, MPC horizon and the
        guard of the return normalisation.
    env : CaseB, optional
        The system (default :func:`lgutils.mpc_reinforce.model.case_b`).

    Returns
    -------
    dict
        ``"phi"``, ``"adam_m"``, ``"adam_v"`` (r, n_phi) after the update; ``"returns"`` (r, N)
        of the batch; ``"grad_norm"`` (r,) before clipping; ``"batch"``: the :class:`Batch`.
    """
    env = case_b() if env is None else env
    if not isinstance(env, CaseB):
        raise ValueError(f"env must be a CaseB (see case_b()), got {type(env).__name__}")
    n, m_in = env.B.shape
    phi = as_array("phi", phi, (None, n * n + n * m_in))
    r = phi.shape[0]
    adam_m = as_array("adam_m", adam_m, phi.shape)
    adam_v = as_array("adam_v", adam_v, phi.shape)
    step = check_positive_int("step", step)
    action_noise = as_array("action_noise", action_noise, (r, None, None, m_in))
    process_noise = as_array("process_noise", process_noise, (r, *action_noise.shape[1:3], n))
    cfg = check_settings(
        horizon_mpc, action_noise.shape[1], lr, max_grad_norm, clamp, action_std, return_eps
    )
    A_phi, B_phi = split_phi(phi, n, m_in)
    batch, _, tape = play_mpc(env, cfg, A_phi, B_phi, action_noise, process_noise)
    grad = _reinforce_gradient(cfg, batch, A_phi, B_phi, tape)
    new, m_new, v_new, norm = clipped_adam_step(phi, adam_m, adam_v, step, grad, cfg)
    return {
        "phi": new,
        "adam_m": m_new,
        "adam_v": v_new,
        "returns": batch.rewards.sum(axis=-1),
        "grad_norm": norm,
        "batch": batch,
    }


def _play_bounded(env: CaseB, cfg: Settings, u_max: float, A_phi, B_phi, eps, w, with_gradient):
    """:data:`~lgutils.mpc_reinforce.training.Play` of the input-bounded MPC.

    Its expected return has no closed form: NaN.
    """
    batch, tape = bounded.bounded_episodes(
        A_phi, B_phi, env, u_max, cfg.horizon_mpc, cfg.action_std, eps, w, with_gradient
    )
    return batch, np.full(A_phi.shape[0], np.nan), tape


def _bounded_gradient(cfg: Settings, batch: Batch, A_phi, B_phi, tape) -> np.ndarray:
    """:data:`~lgutils.mpc_reinforce.training.Gradient` of REINFORCE, input-bounded MPC."""
    Gn = _normalise(batch.rewards.sum(axis=-1), cfg.return_eps)
    return bounded.bounded_gradient(batch, Gn, tape, cfg.action_std)


def run_reinforce(
    seeds: list[int],
    n_updates: int = 100,
    batch_size: int = 64,
    *,
    lr: float = 0.1,
    max_grad_norm: float = 10.0,
    clamp: float = 2.0,
    action_std: float = 0.01,
    horizon_mpc: int = 5,
    init_scale: float = 1.0,
    return_eps: float = 1e-8,
    u_max: float | None = None,
) -> ReinforceRuns:
    """REINFORCE on the MPC model for several independent runs, vectorised over the runs.

    Run ``i`` uses only ``numpy.random.default_rng(seeds[i])`` (see
    :func:`lgutils.mpc_reinforce.training.train_runs`), so its numbers do not depend on which
    other runs share the call.

    Parameters
    ----------
    seeds : list of int
        One non-negative seed per run.
    n_updates : int
        Number of updates E (the curves have E + 1 points).
    batch_size : int
        Episodes per update N (>= 2).
    lr, max_grad_norm, clamp, action_std, horizon_mpc, return_eps
        As in :func:`reinforce_update`.
    init_scale : float
        Half-width of the uniform initial distribution of every model entry.
    u_max : float, optional
        Input bound of the MPC and of the actuator (beyond the paper): the policy becomes the
        box-constrained MPC of :mod:`lgutils.mpc_reinforce.bounded`, with active-set
        sensitivities, and the applied action is clipped to ``[-u_max, u_max]``. Its expected
        return has no closed form: ``expected_returns`` is then NaN.

    Returns
    -------
    ReinforceRuns
    """
    seeds = check_seeds(seeds)
    E = check_positive_int("n_updates", n_updates, minimum=0)
    cfg = check_settings(horizon_mpc, batch_size, lr, max_grad_norm, clamp, action_std, return_eps)
    init_scale = check_in_open_interval("init_scale", init_scale, 0.0, np.inf)
    env = case_b()
    if u_max is None:
        play = functools.partial(play_mpc, env, cfg)
        gradient = functools.partial(_reinforce_gradient, cfg)
    else:
        u_max = check_in_open_interval("u_max", u_max, 0.0, np.inf)
        if cfg.horizon_mpc < 2:
            raise ValueError(f"horizon_mpc must be >= 2 with u_max, got {cfg.horizon_mpc}")
        play = functools.partial(_play_bounded, env, cfg, u_max)
        gradient = functools.partial(_bounded_gradient, cfg)
    return train_runs(seeds, E, cfg, init_scale, play, gradient)


def run_experiment(
    seed: int,
    n_runs: int,
    n_updates: int = 100,
    batch_size: int = 64,
    *,
    n_jobs: int | None = None,
    runs_per_job: int = 25,
    progress: bool = False,
    **kwargs: Any,
) -> tuple[ReinforceRuns, float]:
    """``n_runs`` independent REINFORCE runs, dispatched in chunks through :mod:`joblib`.

    The run seeds are ``lgutils.core.seeding.spawn_seeds(seed, n_runs)``; chunks of
    ``runs_per_job`` runs go to ``joblib.Parallel(n_jobs)``, whose backend follows
    ``joblib.parallel_config`` (serial, processes, or a dask cluster with ``backend="dask"``).
    The numbers do not depend on the backend.

    Parameters
    ----------
    seed : int
        Master seed.
    n_runs : int
        Number of runs r.
    n_updates, batch_size
        As in :func:`run_reinforce`.
    n_jobs : int, optional
        Parallel jobs (default: joblib's, i.e. ``parallel_config``'s or 1).
    runs_per_job : int
        Runs vectorised together in one job.
    progress : bool
        Show a progress bar over the chunks.
    **kwargs
        Passed to :func:`run_reinforce`.

    Returns
    -------
    runs : ReinforceRuns
        All runs, in seed order.
    wall_time : float
        Wall-clock seconds of the whole experiment.
    """
    from joblib import Parallel, delayed

    allowed = list(inspect.signature(run_reinforce).parameters)[3:]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"kwargs has unknown options {unknown} of run_reinforce; the options are {allowed}"
        )
    seeds = spawn_seeds(
        check_positive_int("seed", seed, minimum=0), check_positive_int("n_runs", n_runs)
    )
    per = check_positive_int("runs_per_job", runs_per_job)
    chunks = [seeds[i : i + per] for i in range(0, len(seeds), per)]
    t0 = time.perf_counter()
    jobs = (delayed(run_reinforce)(c, n_updates, batch_size, **kwargs) for c in chunks)
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, total=len(chunks), desc="REINFORCE chunks")
    parts = Parallel(n_jobs=n_jobs)(jobs)
    wall = time.perf_counter() - t0
    runs = ReinforceRuns(*(np.concatenate(field) for field in zip(*parts, strict=True)))
    return runs, wall


def reference_returns(action_std: float = 0.01, horizon_mpc: int = 5) -> dict[str, Any]:
    """J(theta*) and the true-model MPC's return on case study B, exactly (no sampling).

    ``J(theta*)``: the infinite-horizon LQR gain of the true system
    (:func:`lgutils.core.lqr.dare`), applied with the exploration noise, T-step undiscounted
    expected return from ``x_0`` (:func:`lgutils.core.lqr.policy_return`). The true-model MPC is
    :func:`lgutils.mpc_reinforce.model.mpc_gain` with
    ``(A_phi, B_phi) = (A, B)``, evaluated the same way.

    Parameters
    ----------
    action_std : float
        Exploration standard deviation sigma_a of both policies.
    horizon_mpc : int
        MPC horizon H.

    Returns
    -------
    dict
        ``"J_star"``, ``"J_true_model_mpc"`` (floats), ``"K_star"``, ``"K_true_model_mpc"``
        (m, n).
    """
    env = case_b()
    action_std = check_in_open_interval("action_std", action_std, -1e-300, np.inf)
    _, K_star = lqr.dare(env.A, env.B, env.Q, env.R)
    K_mpc = mpc_gain(env.A, env.B, env.Q, env.R, horizon_mpc)
    W = env.noise_std**2 * np.eye(env.A.shape[0])
    E = action_std**2 * np.eye(env.B.shape[1])

    def J(K: np.ndarray) -> float:
        return lqr.policy_return(
            env.A, env.B, env.Q, env.R, K, env.x0, None, W, horizon=env.horizon, action_noise_cov=E
        )

    return {
        "J_star": J(K_star),
        "J_true_model_mpc": J(K_mpc),
        "K_star": K_star,
        "K_true_model_mpc": K_mpc,
    }


def curve_summary(runs: ReinforceRuns, J_star: float) -> dict[str, np.ndarray]:
    """Per-update statistics of the learning curves, all runs and runs that never blew up.

    Parameters
    ----------
    runs : ReinforceRuns
        From :func:`run_experiment` or :func:`run_reinforce`.
    J_star : float
        The reference return J(theta*) (reward units).

    Returns
    -------
    dict of numpy.ndarray, each of shape (E + 1,)
        ``return_mean_all``, ``return_median`` (all runs); ``return_mean``, ``return_std``
        (sample std) over the runs that never blew up (the source's statistics covered only
        its runs whose solver never failed); ``regret_mean``, ``regret_median``: ``J_star``
        minus the exact expected return, all runs; ``mismatch_A_mean``, ``mismatch_A_std``,
        ``mismatch_B_mean``, ``mismatch_B_std``: all runs.
    """
    if not isinstance(runs, ReinforceRuns):
        raise ValueError(f"runs must be a ReinforceRuns, got {type(runs).__name__}")
    J_star = float(as_array("J_star", J_star, ()))
    kept = ~runs.diverged
    if not kept.any():
        raise ValueError("runs has no run that never blew up: every run diverged")
    with np.errstate(over="ignore", invalid="ignore"):
        regret = J_star - runs.expected_returns
        ret_kept = runs.returns[kept]
        out = {
            "return_mean_all": runs.returns.mean(axis=0),
            "return_median": np.median(runs.returns, axis=0),
            "return_mean": ret_kept.mean(axis=0),
            "return_std": ret_kept.std(axis=0, ddof=1) if kept.sum() > 1 else 0.0 * ret_kept[0],
            "regret_mean": regret.mean(axis=0),
            "regret_median": np.median(regret, axis=0),
        }
    for key, arr in (("mismatch_A", runs.mismatch_A), ("mismatch_B", runs.mismatch_B)):
        out[f"{key}_mean"] = arr.mean(axis=0)
        out[f"{key}_std"] = arr.std(axis=0, ddof=1) if arr.shape[0] > 1 else 0.0 * arr[0]
    return out
