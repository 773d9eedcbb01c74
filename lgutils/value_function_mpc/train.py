"""Offline training of the book's RL agents (command line: ``python -m lgutils.value_function_mpc.train cstr``).

``cstr``: soft actor-critic (Haarnoja et al., 2018) with hindsight experience replay on the
goal-conditioned reactor :class:`lgutils.value_function_mpc.env.CSTREnv` (case study A, paper Sec. V.A), with the
settings of the reference: Stable-Baselines3's ``SAC`` with ``HerReplayBuffer`` ("future"
strategy, 1 sampled goal), ``MultiInputPolicy`` with two hidden layers of 64 SiLU units,
batch 256, buffer 1e4, gamma 0.99, tau 0.005, learning rate 1e-3, automatic entropy tuning
with target entropy -2, 100,000 environment steps, one CPU thread.

Usage::

    python -m lgutils.value_function_mpc.train cstr [--seed 0] [--steps 100000] [--out data/cstr_sac]
    python -m lgutils.value_function_mpc.train cstr --seeds 1 2 3 4 5 --n-jobs 2  # several seeds

It writes into ``--out``:

- ``weights.npz``: actor and twin-critic weights, pickle-free (see :mod:`lgutils.core.nn`);
- ``sac_model.zip``: the SB3 model (optional, ``--no-zip`` to skip);
- ``learning_curve.csv``: one row per evaluation: environment steps, mean training-episode
  return of the episodes since the previous row, and the deterministic actor's mean return
  and mean final ``|c_B - g|`` over 20 fixed nominal episodes;
- ``provenance.json``: command, seed, hyperparameters, package versions, steps, wall time
  and the Fig. 3 check of the deterministic actor.

Each file is registered in the data folder's ``MANIFEST.json`` with
:func:`lgutils.core.paths.record_artifact` (when ``--out`` lies outside :func:`lgutils.core.paths.data_dir`,
the manifest is written in ``--out``'s parent folder).

Resuming: every ``--checkpoint-every`` steps the model, the replay buffer and the curve are saved
in ``<out>/.checkpoint``; running the same command again continues from there (the environment
restarts a fresh episode, so a resumed run is statistically equivalent to, but not bit-identical
with, an uninterrupted one; the provenance records the resumption). The checkpoint folder is
deleted after a successful run. An uninterrupted run with the same seed gives the same weights.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from lgutils.core import nn
from lgutils.core.paths import data_dir, data_path, package_versions, record_artifact
from lgutils.core.seeding import seed_everything
from lgutils.core.validate import check_positive_int
from lgutils.value_function_mpc import cstr
from lgutils.value_function_mpc.env import CSTREnv

__all__ = [
    "CSTR_SAC_SETTINGS",
    "make_cstr_sac",
    "evaluate_cstr_actor",
    "train_seeds",
    "fig3_rollout",
    "train_cstr",
    "load_cstr_run",
    "main",
]

#: Hyperparameters of the reference (case study A).
CSTR_SAC_SETTINGS: dict[str, Any] = {
    "net_arch": [64, 64],
    "activation": "SiLU",
    "batch_size": 256,
    "buffer_size": 10_000,
    "gamma": 0.99,
    "tau": 0.005,
    "learning_rate": 1e-3,
    "target_entropy": -2.0,
    "ent_coef": "auto",
    "goal_selection_strategy": "future",
    "n_sampled_goal": 1,
    "learning_starts": 100,  # SB3's default
    "train_freq": 1,
    "gradient_steps": 1,
}

_CURVE_FIELDS = ["step", "train_return", "train_episodes", "eval_return", "eval_final_error"]


def make_cstr_sac(env: Any, seed: int, settings: dict[str, Any] | None = None) -> Any:
    """Build the SB3 SAC + HER agent of the reference on ``env``.

    Parameters
    ----------
    env : gymnasium.Env or VecEnv
        A :class:`lgutils.value_function_mpc.env.CSTREnv` (possibly wrapped).
    seed : int
        Seed of torch, numpy and the environment.
    settings : dict, optional
        Overrides of :data:`CSTR_SAC_SETTINGS`.

    Returns
    -------
    stable_baselines3.SAC
    """
    import torch
    from stable_baselines3 import SAC, HerReplayBuffer

    seed = check_positive_int("seed", seed, minimum=0)
    cfg = {**CSTR_SAC_SETTINGS, **(settings or {})}
    unknown = set(cfg) - set(CSTR_SAC_SETTINGS)
    if unknown:
        raise ValueError(
            f"settings has unknown keys {sorted(unknown)}; expected keys of CSTR_SAC_SETTINGS"
        )
    act = {"SiLU": torch.nn.SiLU, "ReLU": torch.nn.ReLU, "Tanh": torch.nn.Tanh}[cfg["activation"]]
    return SAC(
        "MultiInputPolicy",
        env,
        learning_rate=cfg["learning_rate"],
        buffer_size=cfg["buffer_size"],
        learning_starts=cfg["learning_starts"],
        batch_size=cfg["batch_size"],
        tau=cfg["tau"],
        gamma=cfg["gamma"],
        train_freq=cfg["train_freq"],
        gradient_steps=cfg["gradient_steps"],
        ent_coef=cfg["ent_coef"],
        target_entropy=cfg["target_entropy"],
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={
            "n_sampled_goal": cfg["n_sampled_goal"],
            "goal_selection_strategy": cfg["goal_selection_strategy"],
        },
        policy_kwargs={"net_arch": list(cfg["net_arch"]), "activation_fn": act},
        seed=seed,
        device="cpu",
        verbose=0,
    )


def _eval_starts(n: int = 20, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(cstr.X_LOW, cstr.X_HIGH, size=(n, 4)), rng.choice(cstr.GOALS, size=n)


def evaluate_cstr_actor(model: Any, n_episodes: int = 20, seed: int = 12345) -> tuple[float, float]:
    """Mean return and mean final ``|c_B - g|`` of the deterministic actor on the nominal plant.

    The ``n_episodes`` initial states and goals are fixed by ``seed`` (the same for every call),
    so successive evaluations during training are comparable.
    """
    n_episodes = check_positive_int("n_episodes", n_episodes)
    env = CSTREnv(nominal=True)
    x0s, goals = _eval_starts(n_episodes, seed)
    returns, errors = [], []
    for x0, g in zip(x0s, goals, strict=True):
        obs, _ = env.reset(options={"x0": x0, "goal": g})
        ret, done = 0.0, False
        while not done:
            a, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, info = env.step(a)
            ret += r
            done = term or trunc
        returns.append(ret)
        errors.append(abs(info["x"][1] - g))
    return float(np.mean(returns)), float(np.mean(errors))


def fig3_rollout(model: Any, n_steps: int = 100) -> np.ndarray:
    """States of the deterministic actor from Fig. 3's x0 and goal on the nominal plant, (n+1, 4)."""
    env = CSTREnv(nominal=True, max_episode_steps=n_steps)
    obs, _ = env.reset(options={"x0": cstr.X0_FIG3, "goal": cstr.GOAL_FIG3})
    xs = [cstr.X0_FIG3.copy()]
    for _ in range(n_steps):
        a, _ = model.predict(obs, deterministic=True)
        obs, _, _, _, info = env.step(a)
        xs.append(info["x"])
    return np.array(xs)


class _Progress:
    """SB3 callback: tqdm bar, learning-curve rows and periodic checkpoints."""

    def __new__(cls, *args, **kwargs):  # build the subclass lazily (SB3 import is heavy)
        from stable_baselines3.common.callbacks import BaseCallback

        class Callback(BaseCallback):
            def __init__(self, total, done, curve, eval_every, ckpt_every, save_ckpt, progress):
                super().__init__()
                self.total, self.done0, self.curve = total, done, curve
                self.eval_every, self.ckpt_every, self.save_ckpt = eval_every, ckpt_every, save_ckpt
                self.progress = progress
                self.returns: list[float] = []
                self.bar = None

            def _on_training_start(self):
                if self.progress:
                    from tqdm import tqdm

                    self.bar = tqdm(
                        total=self.total, initial=self.done0, desc="SAC+HER on CSTR", unit="step"
                    )

            def _on_step(self):
                for info in self.locals.get("infos", []):
                    if "episode" in info:
                        self.returns.append(float(info["episode"]["r"]))
                n = self.num_timesteps
                if self.bar is not None:
                    self.bar.update(1)
                if n % self.eval_every == 0 or n == self.total:
                    ev_ret, ev_err = evaluate_cstr_actor(self.model)
                    self.curve.append(
                        {
                            "step": n,
                            "train_return": float(np.mean(self.returns))
                            if self.returns
                            else float("nan"),
                            "train_episodes": len(self.returns),
                            "eval_return": ev_ret,
                            "eval_final_error": ev_err,
                        }
                    )
                    self.returns = []
                    if self.bar is not None:
                        self.bar.set_postfix(eval_return=f"{ev_ret:.1f}", final_err=f"{ev_err:.3f}")
                if n % self.ckpt_every == 0 and n < self.total:
                    self.save_ckpt(self.model, n)
                return True

            def _on_training_end(self):
                if self.bar is not None:
                    self.bar.close()

        return Callback(*args, **kwargs)


def _write_curve(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=_CURVE_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _start_or_resume(ckpt: Path, config: dict[str, Any], env: Any, seed: int) -> tuple[Any, dict]:
    """A fresh SAC model, or the checkpointed one when it was written with this ``config``.

    Returns the model and the run's state: ``done`` (steps already taken), ``wall_before``
    (their wall time [s]), ``curve`` (learning-curve rows) and ``resumed_at`` (steps).
    """
    from stable_baselines3 import SAC

    meta_path = ckpt / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text())["config"] == json.loads(
        json.dumps(config)
    ):
        meta = json.loads(meta_path.read_text())
        model = SAC.load(ckpt / "model.zip", env=env, device="cpu")
        model.load_replay_buffer(ckpt / "buffer.pkl")
        done = meta["done"]
        print(f"resuming from the checkpoint at step {done} in {ckpt}", file=sys.stderr)
        state = {
            "done": done,
            "wall_before": meta["wall_time_s"],
            "curve": meta["curve"],
            "resumed_at": [*meta.get("resumed_at", []), done],
        }
        return model, state
    if ckpt.exists():
        shutil.rmtree(ckpt)
    return make_cstr_sac(env, seed), {"done": 0, "wall_before": 0.0, "curve": [], "resumed_at": []}


def _checkpoint_saver(ckpt: Path, config: dict[str, Any], state: dict, t0: float) -> Any:
    """``save(model, n)``: model, replay buffer and the run's state at step ``n`` into ``ckpt``."""

    def save(model: Any, n: int) -> None:
        ckpt.mkdir(exist_ok=True)
        model.save(ckpt / "model.zip")
        model.save_replay_buffer(ckpt / "buffer.pkl")
        meta = {
            "config": config,
            "done": n,
            "wall_time_s": state["wall_before"] + time.perf_counter() - t0,
            "curve": state["curve"],
            "resumed_at": state["resumed_at"],
        }
        (ckpt / "meta.json").write_text(json.dumps(meta))

    return save


def _write_model_files(model: Any, out: Path, curve: list[dict], save_zip: bool) -> list[str]:
    """Weights, learning curve and (optionally) SB3's zip into ``out``; returns the file names."""
    nn.save_weights(nn.sac_weights(model), out / "weights.npz")
    _write_curve(out / "learning_curve.csv", curve)
    files = ["weights.npz", "learning_curve.csv"]
    if save_zip:
        model.save(out / "sac_model.zip", exclude=["replay_buffer"])
        files.append("sac_model.zip")
    return files


def _provenance(
    command: str, seed: int, steps: int, wall: float, state: dict, threads: int, xs: np.ndarray
) -> dict[str, Any]:
    """The provenance record of a training run; ``xs`` is the actor's Fig. 3 rollout."""
    curve = state["curve"]
    return {
        "command": command,
        "seed": seed,
        "steps": steps,
        "wall_time_s": round(wall, 1),
        "resumed_at_steps": state["resumed_at"],
        "torch_threads": threads,
        "algorithm": "SB3 SAC + HerReplayBuffer, MultiInputPolicy",
        "settings": CSTR_SAC_SETTINGS,
        "environment": "lgutils/CSTR-v0 (CSTREnv(), alpha/beta redrawn every step from the missing-truth sets)",
        "network_input": "sorted keys (achieved_goal, desired_goal, observation) = (c_B, g, c_A, T_R/100, T_K/100)",
        "versions": package_versions(),
        "final_eval_return": curve[-1]["eval_return"] if curve else None,
        "final_eval_final_error": curve[-1]["eval_final_error"] if curve else None,
        "fig3_check": {
            "max_c_A": float(xs[:, 0].max()),
            "max_T_R": float(xs[:, 2].max()),
            "final_c_B": float(xs[-1, 1]),
            "goal": cstr.GOAL_FIG3,
        },
    }


def _register(out: Path, files: list[str], command: str, seed: int, extra: dict) -> None:
    """Record each file in the manifest of the data folder (or of ``out``'s parent outside it)."""
    root = data_dir()
    try:
        out.resolve().relative_to(root.resolve())
    except ValueError:
        root = out.parent
    for name in files:
        record_artifact(out / name, command=command, seed=seed, extra=extra, root=root)


def train_cstr(
    seed: int = 0,
    steps: int = 100_000,
    out: str | Path | None = None,
    checkpoint_every: int = 10_000,
    eval_every: int = 2_500,
    save_zip: bool = True,
    progress: bool = True,
    command: str | None = None,
    register: bool = True,
) -> dict[str, Any]:
    """Train SAC+HER on the CSTR and write the artifacts (see the module docstring).

    Parameters
    ----------
    seed : int
        Seed of everything (torch, numpy, environment).
    steps : int
        Environment steps (the reference: 100,000).
    out : path, optional
        Output folder (default ``<data_dir>/cstr_sac``).
    checkpoint_every : int
        Steps between checkpoints.
    eval_every : int
        Steps between learning-curve rows.
    save_zip : bool
        Also write SB3's ``sac_model.zip``.
    progress : bool
        Show a progress bar.
    command : str, optional
        The command recorded in the manifest (default: reconstructed from the arguments).
    register : bool
        Record the files in the manifest (:func:`train_seeds` registers them itself, one run
        after the other, so that parallel runs never write the manifest at once).

    Returns
    -------
    dict
        The provenance record (also written to ``provenance.json``), with the list of the
        files written under ``"files"``.
    """
    import torch
    from stable_baselines3.common.monitor import Monitor

    seed = check_positive_int("seed", seed, minimum=0)
    steps = check_positive_int("steps", steps)
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    eval_every = check_positive_int("eval_every", eval_every)
    out = Path(out) if out is not None else data_dir() / "cstr_sac"
    out.mkdir(parents=True, exist_ok=True)
    if command is None:
        command = f"python -m lgutils.value_function_mpc.train cstr --seed {seed} --steps {steps} --out {out}"
    torch.set_num_threads(1)
    seed_everything(seed)

    ckpt = out / ".checkpoint"
    config = {"seed": seed, "steps": steps, "settings": CSTR_SAC_SETTINGS, "env": "lgutils/CSTR-v0"}
    model, state = _start_or_resume(ckpt, config, Monitor(CSTREnv()), seed)
    done, t0 = state["done"], time.perf_counter()
    save_ckpt = _checkpoint_saver(ckpt, config, state, t0)
    cb = _Progress(steps, done, state["curve"], eval_every, checkpoint_every, save_ckpt, progress)
    if steps > done:
        model.learn(total_timesteps=steps - done, callback=cb, reset_num_timesteps=done == 0)
    wall = state["wall_before"] + time.perf_counter() - t0

    files = _write_model_files(model, out, state["curve"], save_zip)
    xs = fig3_rollout(model)
    prov = _provenance(command, seed, steps, wall, state, torch.get_num_threads(), xs)
    (out / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n")
    files.append("provenance.json")
    if register:
        _register(out, files, command, seed, {"steps": steps, "wall_time_s": round(wall, 1)})
    if ckpt.exists():
        shutil.rmtree(ckpt)
    return {**prov, "files": files}


def train_seeds(
    seeds: list[int],
    steps: int = 100_000,
    out: str | Path | None = None,
    n_jobs: int | None = None,
    command: str | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """:func:`train_cstr` for several seeds, the runs spread over processes with joblib.

    Run ``seed`` writes into ``<out>/seed_<seed>`` (default ``out``: ``<data_dir>/cstr_sac_seeds``)
    exactly what a single run writes; each run is the same as ``train_cstr(seed=seed)`` alone
    (one torch thread per process), so the number of jobs does not change any number. The
    files are registered in the manifest after all runs, in seed order.

    Parameters
    ----------
    seeds : list of int
        Seeds (>= 0, distinct).
    steps : int
        Environment steps per run.
    out : path, optional
        Parent folder of the runs.
    n_jobs : int, optional
        Parallel processes (default: joblib's, i.e. ``parallel_config``'s or 1).
    command : str, optional
        The command recorded in the manifest.
    **options
        ``checkpoint_every``, ``eval_every``, ``save_zip`` of :func:`train_cstr`.

    Returns
    -------
    list of dict
        The provenance of each run, in seed order.
    """
    from joblib import Parallel, delayed

    seeds = [check_positive_int("seeds[i]", s, minimum=0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers >= 0, got {seeds}")
    unknown = sorted(set(options) - {"checkpoint_every", "eval_every", "save_zip"})
    if unknown:
        raise ValueError(f"options has unknown keys {unknown} of train_cstr")
    root = Path(out) if out is not None else data_dir() / "cstr_sac_seeds"
    if command is None:
        command = (
            f"python -m lgutils.value_function_mpc.train cstr --seeds {' '.join(map(str, seeds))}"
        )
    jobs = (
        delayed(train_cstr)(
            seed=s,
            steps=steps,
            out=root / f"seed_{s}",
            progress=False,
            command=command,
            register=False,
            **options,
        )
        for s in seeds
    )
    provs = Parallel(n_jobs=n_jobs)(jobs)
    for s, prov in zip(seeds, provs, strict=True):
        extra = {"steps": steps, "wall_time_s": round(prov["wall_time_s"], 1)}
        _register(root / f"seed_{s}", prov["files"], command, s, extra)
    return provs


def load_cstr_run(out: str | Path | None = None) -> dict[str, Any]:
    """Load what :func:`train_cstr` wrote, verifying each file against its manifest entry.

    Parameters
    ----------
    out : path, optional
        The output folder of a training run; default the shipped artifact
        ``<data_dir>/cstr_sac`` (written by ``python -m lgutils.value_function_mpc.train cstr``).

    Returns
    -------
    dict
        ``weights`` (see :func:`lgutils.core.nn.load_weights`), ``curve`` (column name -> numpy
        array, from ``learning_curve.csv``) and ``provenance`` (dict).
    """
    if out is None:
        root, folder = data_dir(), "cstr_sac"
    else:
        out = Path(out)
        try:  # inside the data folder: its manifest
            root, folder = data_dir(), out.resolve().relative_to(data_dir().resolve()).as_posix()
        except ValueError:
            root, folder = out.parent, out.name
    weights = nn.load_weights(data_path(f"{folder}/weights.npz", root=root))
    with open(data_path(f"{folder}/learning_curve.csv", root=root), newline="") as fh:
        rows = list(csv.DictReader(fh))
    curve = {k: np.array([float(r[k]) for r in rows]) for k in _CURVE_FIELDS}
    provenance = json.loads(data_path(f"{folder}/provenance.json", root=root).read_text())
    return {"weights": weights, "curve": curve, "provenance": provenance}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m lgutils.value_function_mpc.train", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="task", required=True)
    p = sub.add_parser("cstr", help="SAC+HER on the goal-conditioned CSTR (case study A)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="several runs, one per seed, into <out>/seed_<k> (default out: data/cstr_sac_seeds)",
    )
    p.add_argument("--n-jobs", type=int, default=None, help="parallel runs with --seeds")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--out", type=Path, default=None, help="output folder (default data/cstr_sac)")
    p.add_argument("--checkpoint-every", type=int, default=10_000)
    p.add_argument("--eval-every", type=int, default=2_500)
    p.add_argument("--no-zip", action="store_true", help="do not write the SB3 zip")
    p.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv
    command = "python -m lgutils.value_function_mpc.train " + " ".join(
        shlex.quote(a) for a in argv_used
    )
    if args.seeds is not None:
        provs = train_seeds(
            args.seeds,
            steps=args.steps,
            out=args.out,
            n_jobs=args.n_jobs,
            command=command,
            checkpoint_every=args.checkpoint_every,
            eval_every=args.eval_every,
            save_zip=not args.no_zip,
        )
        print(json.dumps([{k: p[k] for k in ("seed", "steps", "wall_time_s")} for p in provs]))
        return 0
    prov = train_cstr(
        seed=args.seed,
        steps=args.steps,
        out=args.out,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        save_zip=not args.no_zip,
        progress=not args.no_progress,
        command=command,
    )
    print(json.dumps({k: prov[k] for k in ("steps", "wall_time_s", "fig3_check")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
