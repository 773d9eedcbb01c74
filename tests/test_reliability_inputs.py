"""Bad input gets a clear error: property-based tests (hypothesis) of lgutils' public API.

Every public function is called with a random valid case (random sizes and values drawn by
hypothesis) in which one argument is then corrupted in one way: NaN or infinite entries, text,
a wrong number of dimensions, a wrong length, a non-symmetric or indefinite weight matrix, a
zero, negative or fractional horizon, unknown or missing parameter names, ... Each call must

- either succeed with finite results (``-inf`` only where a function documents it for a
  diverging return),
- or raise a ``ValueError`` (or a subclass) raised by lgutils' own code (not a raw
  numpy/scipy/CasADi exception) whose message names the corrupted argument,

never return NaN silently. Solver failures of well-formed MPC problems (indefinite weights)
may raise :class:`lgutils.mpc.MPCSolveError`, the dedicated exception that carries the status.

The cases are parametrised by (function, argument, corruption), so each combination is always
exercised; hypothesis draws the rest (sizes, values, which entry is corrupted) with a fixed
seed (``derandomize=True``: the same examples on every run). Known gaps go in the
``KNOWN`` table (marked ``xfail(strict=True)``, the reason saying what is missing); it is
empty at present.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lgutils
from lgutils.core import dp, lqr, metrics, optim, paths, seeding, validate
from lgutils.core.envs import LinearQuadraticEnv
from lgutils.mpc import (
    MPC,
    Bounds,
    Cost,
    Model,
    MPCSolveError,
    Params,
    SolverOptions,
    closed_loop,
    linear_quadratic_mpc,
)
from lgutils.mpc_reinforce import model, reinforce, rollout, training

LGUTILS = Path(lgutils.__file__).resolve().parent


def property_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate),  # no shrinking: failures stay fast to report
    )


# ------------------------------------------------------------------------------------------
# the property
# ------------------------------------------------------------------------------------------
def _floats(obj: Any):
    """Every float array inside a result (arrays, numbers, tuples, dicts, dataclasses)."""
    if obj is None or isinstance(obj, (str, bytes, bool, np.bool_, slice, Path, int, np.integer)):
        return
    if isinstance(obj, (float, np.floating)):
        yield np.array([obj], dtype=float)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc":
            yield obj
        elif obj.dtype.kind == "O":
            for item in obj.ravel():
                yield from _floats(item)
    elif scipy.sparse.issparse(obj):
        yield obj.data
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _floats(getattr(obj, f.name))
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _floats(value)
    elif isinstance(obj, (tuple, list)):
        for value in obj:
            yield from _floats(value)


def assert_finite(out: Any, neg_inf_ok: bool = False) -> None:
    for arr in _floats(out):
        bad = np.isnan(arr) | (np.isposinf(arr) if neg_inf_ok else ~np.isfinite(arr))
        assert not np.any(bad), f"a result holds NaN or infinity (silently): {arr!r}"


def assert_clear_error(exc: ValueError, names: tuple[str, ...]) -> None:
    """A ValueError raised by lgutils' own code, whose message names one of ``names``."""
    assert not isinstance(exc, np.linalg.LinAlgError), f"raw numpy LinAlgError: {exc}"
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    assert Path(frame.filename).resolve().is_relative_to(LGUTILS), (
        f"raw {type(exc).__name__} from {frame.filename}:{frame.lineno}: {exc}"
    )
    message = str(exc)
    named = any(
        re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message) for n in names
    )
    assert named, f"the message does not name any of {names}: {message}"


def check(
    call: Callable[[], Any],
    names: tuple[str, ...],
    *,
    must_raise: bool = False,
    neg_inf_ok: bool = False,
    solve_error_ok: bool = False,
) -> Any:
    """Finite result, or a clear ValueError naming one of ``names``; nothing else."""
    try:
        out = call()
    except MPCSolveError as exc:
        assert solve_error_ok, f"MPCSolveError on a well-posed problem: {exc}"
        assert exc.status and exc.state is not None and isinstance(exc.phi, dict)
        return None
    except ValueError as exc:
        assert_clear_error(exc, names)
        return None
    assert not must_raise, f"bad input was accepted without an error; returned {out!r}"[:600]
    assert_finite(out, neg_inf_ok)
    return out


# ------------------------------------------------------------------------------------------
# random valid cases
# ------------------------------------------------------------------------------------------
def matrix(data: st.DataObject, shape: tuple[int, ...], bound: float = 1.5) -> np.ndarray:
    elements = st.floats(-bound, bound, allow_nan=False, allow_subnormal=False)
    return data.draw(hnp.arrays(np.float64, shape, elements=elements))


def psd(data: st.DataObject, n: int, shift: float = 0.0) -> np.ndarray:
    L = matrix(data, (n, n))
    return L @ L.T + shift * np.eye(n)


def lq_system(data: st.DataObject, n_max: int = 3, m_max: int = 2):
    n = data.draw(st.integers(1, n_max), label="n")
    m = data.draw(st.integers(1, m_max), label="m")
    return matrix(data, (n, n)), matrix(data, (n, m)), psd(data, n), psd(data, m, 0.1)


def case_b_model(data: st.DataObject, n_max: int = 4, m_max: int = 2):
    n = data.draw(st.integers(1, n_max), label="n")
    m = data.draw(st.integers(1, m_max), label="m")
    return matrix(data, (n, n)), matrix(data, (n, m)), psd(data, n), psd(data, m, 0.1)


# ------------------------------------------------------------------------------------------
# corruptions
# ------------------------------------------------------------------------------------------
BAD_NUMBERS = {"nan": np.nan, "inf": np.inf}


def _append(arr: np.ndarray, axis: int) -> np.ndarray:
    shape = list(arr.shape)
    shape[axis] = 1
    return np.concatenate([arr, np.ones(shape)], axis=axis)


def corrupt(kind: str, value: Any, data: st.DataObject, arg: Arg) -> Any:
    """``value`` spoiled in the way ``kind`` says (see each Arg type's list)."""
    if kind in ("nan", "inf", "neg_entry"):
        arr = np.array(value, dtype=float)
        bad = -1.0 if kind == "neg_entry" else BAD_NUMBERS[kind]
        if kind == "inf":
            bad = data.draw(st.sampled_from([np.inf, -np.inf]), label="sign")
        if arr.ndim == 0:
            return bad
        arr.flat[data.draw(st.integers(0, arr.size - 1), label="entry")] = bad
        return arr
    simple = {
        "text": "abc",
        "none": None,
        "int_text": "3",
        "bool": True,
        "fraction": 2.5,
        "negative": -3 if arg.kind == "int" else -0.5,
        "below": arg.low - 1,
        "zero": 0.0,
        "above": 1.5,
        "one": 1.0,
        "scalar": 3.0,
        "empty": np.zeros(0) if arg.kind == "array" else (),
        "not_dict": ["max_iter", 5],
        "unknown": "bogus",
        "low_inf": np.inf,
        "high_inf": -np.inf,
    }
    if kind in simple:
        return simple[kind]
    arr = np.array(value, dtype=float) if not isinstance(value, (dict, list, tuple)) else None
    if kind == "ndim_up":
        return arr[None]
    if kind == "flat":
        return arr.ravel()
    if kind == "rows":
        return _append(arr, 0)
    if kind == "cols":
        return _append(arr, 1)
    if kind == "last":
        return _append(arr, -1)
    if kind == "one_col":
        return arr[..., :1]
    if kind == "asym":
        if arr.shape[0] < 2:
            return -np.abs(arr) - 1.0
        arr[0, -1] += 1.0
        return arr
    if kind == "indef":
        sym = 0.5 * (arr + arr.T)
        return arr - (np.max(np.linalg.eigvalsh(sym)) + 1.0) * np.eye(arr.shape[0])
    if kind == "singular":
        return np.zeros_like(arr)
    if arg.kind == "grids":
        grids = [np.asarray(g, dtype=float) for g in value]
        if kind == "grid_nan":
            grids[0] = grids[0].copy()
            grids[0][0] = np.nan
        elif kind == "decreasing":
            grids[0] = grids[0][::-1].copy()
        elif kind == "twod":
            grids[0] = grids[0][None]
        return tuple(grids)
    if arg.kind in ("phi", "guess"):
        phi = dict(value)
        key = data.draw(st.sampled_from(sorted(phi)), label="key")
        if kind == "unknown_key":
            return {**phi, "Z": 1.0}
        if kind == "missing_key":
            return {k: v for k, v in phi.items() if k != key}
        if kind == "nan_entry":
            return {**phi, key: corrupt("nan", phi[key], data, arg)}
        if kind == "wrong_shape":
            return {**phi, key: np.ones(np.shape(phi[key])[:1] + (7,))}
        if kind == "flat_short":
            return np.zeros(3)
        if kind == "indef_weight":
            weight = data.draw(st.sampled_from(["Q", "R"]), label="weight")
            return {**phi, weight: -np.eye(len(phi[weight])) - np.abs(phi[weight])}
        if kind == "asym_weight":
            return {**phi, "Q": phi["Q"] + np.triu(np.ones_like(phi["Q"]), 1)}
    if arg.kind == "options" and kind == "unknown_key":
        return {"max_itr": 5} if arg.name == "ipopt" else {"bogus_option": 1}
    if arg.kind == "seeds":
        return {"seeds_empty": [], "seeds_negative": [-1], "seeds_fraction": [1.5]}[kind]
    if arg.kind == "pair":
        return {"short": (0.9,), "pair_nan": (np.nan, 0.999), "pair_above": (0.9, 1.0)}[kind]
    if arg.kind == "params":
        return {
            "clash": {"A": (1, 1)},
            "shape_text": {"c": "ab"},
            "shape_negative": {"c": (-1,)},
            "shape_fraction": {"c": (2.5,)},
            "bad_name": {"1c": ()},
        }[kind]
    raise AssertionError(f"unknown corruption {kind!r} for {arg}")


#: corruptions by type of argument; every one of them must raise unless the Arg says otherwise
KINDS = {
    "array": ("nan", "inf", "text", "ndim_up", "rows"),
    "square": ("nan", "inf", "text", "ndim_up", "rows", "flat"),
    "matrix": ("nan", "inf", "text", "ndim_up", "rows", "cols", "flat"),
    "psd": ("nan", "inf", "text", "ndim_up", "rows", "flat", "asym", "indef"),
    "pd": ("nan", "inf", "text", "ndim_up", "rows", "flat", "asym", "indef", "singular"),
    "int": ("below", "negative", "fraction", "int_text", "bool"),
    "unit": ("nan", "inf", "zero", "negative", "above", "text"),
    "unit_open": ("nan", "inf", "zero", "negative", "above", "one", "text"),
    "positive": ("nan", "inf", "zero", "negative", "text"),
    "nonneg": ("nan", "inf", "negative", "text"),
    "real": ("nan", "inf", "text"),
    "grids": ("scalar", "none", "empty", "grid_nan", "decreasing", "twod"),
    "object": ("none", "text"),
    "phi": ("unknown_key", "missing_key", "nan_entry", "wrong_shape", "text", "flat_short"),
    "guess": ("unknown_key", "nan_entry", "wrong_shape"),
    "options": ("unknown_key", "not_dict"),
    "seeds": ("seeds_empty", "seeds_negative", "seeds_fraction", "text", "none"),
    "pair": ("short", "scalar", "pair_nan", "pair_above"),
    "choice": ("unknown",),
    "params": ("clash", "shape_text", "shape_negative", "shape_fraction", "bad_name"),
    "low": ("nan", "text", "rows", "low_inf"),
    "high": ("nan", "text", "rows", "high_inf"),
}


@dataclass(frozen=True)
class Arg:
    """One argument of a public function and how to spoil it.

    ``kinds`` replaces the type's corruptions, ``extra``/``skip`` add to or remove from them;
    ``may_pass`` lists corruptions that can be valid input (they must then give finite
    results); ``also`` are other argument names an error about this one may cite (e.g. ``B``
    with a column too many makes ``R`` the wrong size).
    """

    name: str
    kind: str
    low: int = 1
    also: tuple[str, ...] = ()
    kinds: tuple[str, ...] | None = None
    extra: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    may_pass: tuple[str, ...] = ()

    def corruptions(self) -> tuple[str, ...]:
        base = self.kinds if self.kinds is not None else KINDS[self.kind]
        return tuple(k for k in base + self.extra if k not in self.skip)


@dataclass(frozen=True)
class Spec:
    name: str
    build: Callable[[st.DataObject], tuple[Callable[..., Any], dict[str, Any]]]
    args: tuple[Arg, ...]
    neg_inf_ok: bool = False
    max_examples: int = 3

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)


SPECS: list[Spec] = []


def spec(name: str, *args: Arg, neg_inf_ok: bool = False, max_examples: int = 3):
    def register(build):
        SPECS.append(Spec(name, build, args, neg_inf_ok, max_examples))
        return build

    return register


# ---------------------------------------------------------------------------- lqr
SYSTEM = (
    Arg("A", "square"),
    Arg("B", "matrix", also=("A", "R")),
    Arg("Q", "psd"),
    Arg("R", "pd"),
)


@spec("lqr.dare", *SYSTEM, Arg("gamma", "unit"))
def _(data):
    A, B, Q, R = lq_system(data)
    return lqr.dare, {"A": A, "B": B, "Q": Q, "R": R, "gamma": data.draw(st.floats(0.5, 1.0))}


@spec("lqr.q_matrix", *SYSTEM, Arg("gamma", "unit"), Arg("noise_cov", "psd"))
def _(data):
    A, B, Q, R = lq_system(data)
    gamma = data.draw(st.floats(0.5, 0.99))
    return lqr.q_matrix, {
        "A": A,
        "B": B,
        "Q": Q,
        "R": R,
        "gamma": gamma,
        "noise_cov": psd(data, len(A)),
    }


@spec(
    "lqr.riccati_recursion",
    *SYSTEM,
    Arg("horizon", "int"),
    Arg("terminal", "psd"),
    Arg("gamma", "unit"),
)
def _(data):
    A, B, Q, R = lq_system(data)
    return lqr.riccati_recursion, {
        "A": A,
        "B": B,
        "Q": Q,
        "R": R,
        "horizon": data.draw(st.integers(1, 8)),
        "terminal": psd(data, len(A)),
        "gamma": data.draw(st.floats(0.5, 1.0)),
    }


@spec(
    "lqr.policy_return",
    *SYSTEM,
    Arg("K", "matrix", skip=("ndim_up",)),  # (1, m, n) is a valid time-varying gain when T = 1
    Arg("x0_mean", "array"),
    Arg("x0_cov", "psd"),
    Arg("noise_cov", "psd"),
    Arg("gamma", "unit"),
    Arg("horizon", "int"),
    Arg("action_noise_cov", "psd"),
    neg_inf_ok=True,  # documented: -inf when the expected cost diverges
)
def _(data):
    A, B, Q, R = lq_system(data)
    n, m = B.shape
    horizon = data.draw(st.one_of(st.none(), st.integers(1, 8)))
    return lqr.policy_return, {
        "A": A,
        "B": B,
        "Q": Q,
        "R": R,
        "K": matrix(data, (m, n)),
        "x0_mean": matrix(data, (n,)),
        "x0_cov": psd(data, n),
        "noise_cov": psd(data, n),
        "gamma": data.draw(st.floats(0.5, 0.99 if horizon is None else 1.0)),
        "horizon": horizon,
        "action_noise_cov": psd(data, m),
    }


# ---------------------------------------------------------------------------- envs
def make_and_step(**kwargs: Any):
    """Construct the environment, reset it with a seed and take one step."""
    env = LinearQuadraticEnv(**kwargs)
    obs, info = env.reset(seed=0)
    return obs, info["state"], env.step(np.zeros(env.n_actions))[:4]


@spec(
    "envs.LinearQuadraticEnv",
    *SYSTEM,
    Arg("x0_mean", "array"),
    Arg("x0_cov", "psd"),
    Arg("noise_cov", "psd"),
    Arg("horizon", "int"),
    Arg("action_low", "low"),
    Arg("action_high", "high", also=("action_low",)),
)
def _(data):
    A, B, Q, R = lq_system(data)
    n, m = B.shape
    return make_and_step, {
        "A": A,
        "B": B,
        "Q": Q,
        "R": R,
        "x0_mean": matrix(data, (n,)),
        "x0_cov": psd(data, n),
        "noise_cov": psd(data, n),
        "horizon": data.draw(st.integers(1, 50)),
        "action_low": -np.ones(m),
        "action_high": np.ones(m),
    }


@spec(
    "envs.LinearQuadraticEnv(noise_std)",
    Arg("x0", "array"),
    Arg("noise_std", "nonneg", extra=("rows",)),
)
def _(data):
    A, B, Q, R = lq_system(data)
    n = len(A)
    std = np.full(n, data.draw(st.floats(0.0, 1.0)))
    return functools.partial(make_and_step, A=A, B=B, Q=Q, R=R), {
        "x0": matrix(data, (n,)),
        "noise_std": std,
    }


# ---------------------------------------------------------------------------- dp
def grids(data: st.DataObject, d: int, k: int = 3) -> tuple[np.ndarray, ...]:
    return tuple(np.linspace(-1.0, 1.0, data.draw(st.integers(2, k))) for _ in range(d))


@functools.cache
def small_mdp(n: int) -> dp.GridMDP:
    return dp.discretise_lq(
        0.9 * np.eye(n),
        np.ones((n, 1)),
        np.eye(n),
        np.eye(1),
        dp.grid(-1.0, 1.0, [4] * n),
        dp.grid(-1.0, 1.0, 3),
        0.01 * np.eye(n),
        0.9,
    )


@spec(
    "dp.grid",
    Arg("low", "array", may_pass=("rows",)),  # a longer low with a scalar high broadcasts
    Arg("high", "array", may_pass=("rows",)),
    Arg("n_points", "int", low=2),
)
def _(data):
    d = data.draw(st.integers(1, 3))
    low = matrix(data, (d,), 1.0) - 1.5
    return dp.grid, {
        "low": low,
        "high": low + 1.0 + matrix(data, (d,), 1.0) ** 2,
        "n_points": data.draw(st.integers(2, 6)),
    }


@spec("dp.gauss_hermite", Arg("cov", "psd"), Arg("n_points", "int"))
def _(data):
    n = data.draw(st.integers(1, 2))
    return dp.gauss_hermite, {"cov": psd(data, n), "n_points": data.draw(st.integers(1, 4))}


@spec(
    "dp.interpolation_matrix",
    Arg("grids", "grids", also=("points",)),
    Arg("points", "matrix", skip=("rows",)),  # any number of points
)
def _(data):
    d = data.draw(st.integers(1, 2))
    return dp.interpolation_matrix, {
        "grids": grids(data, d),
        "points": matrix(data, (data.draw(st.integers(1, 5)), d), 2.0),
    }


@spec(
    "dp.discretise_lq",
    Arg("A", "square"),
    Arg("B", "matrix", also=("A", "R", "action_grids")),
    Arg("Q", "psd"),
    Arg("R", "psd"),
    Arg("state_grids", "grids"),
    Arg("action_grids", "grids"),
    Arg("noise_cov", "psd"),
    Arg("gamma", "unit_open"),
    Arg("n_quadrature", "int"),
)
def _(data):
    A, B, Q, R = lq_system(data, 2, 1)
    return dp.discretise_lq, {
        "A": A,
        "B": B,
        "Q": Q,
        "R": R,
        "state_grids": grids(data, len(A)),
        "action_grids": grids(data, 1),
        "noise_cov": psd(data, len(A)),
        "gamma": data.draw(st.floats(0.5, 0.99)),
        "n_quadrature": data.draw(st.integers(1, 3)),
    }


def _mdp_case(data):
    mdp = small_mdp(data.draw(st.integers(1, 2)))
    return mdp, matrix(data, mdp.rewards.shape, 5.0)


@spec("dp.bellman_operator", Arg("mdp", "object"), Arg("Q", "matrix"))
def _(data):
    mdp, Q = _mdp_case(data)
    return dp.bellman_operator, {"mdp": mdp, "Q": Q}


@spec(
    "dp.value_iteration",
    Arg("mdp", "object"),
    Arg("n_iterations", "int", low=0),
    Arg("Q0", "matrix"),
    Arg("tol", "nonneg"),
)
def _(data):
    mdp, Q = _mdp_case(data)
    return dp.value_iteration, {
        "mdp": mdp,
        "n_iterations": data.draw(st.integers(0, 5)),
        "Q0": Q,
        "tol": data.draw(st.floats(0.0, 1.0)),
    }


@spec(
    "dp.greedy_policy",
    Arg("mdp", "object"),
    Arg("Q", "matrix"),
    Arg("states", "matrix", skip=("rows",)),
)
def _(data):
    mdp, Q = _mdp_case(data)
    n = mdp.states.shape[1]
    states = matrix(data, (data.draw(st.integers(1, 4)), n), 2.0)
    return dp.greedy_policy, {"mdp": mdp, "Q": Q, "states": states}


@spec("dp.state_values", Arg("Q", "matrix", skip=("rows", "cols")))
def _(data):
    return dp.state_values, {"Q": matrix(data, (data.draw(st.integers(1, 4)), 3))}


@spec("dp.sup_norm", Arg("X", "array", kinds=("nan", "inf", "text", "empty")))
def _(data):
    return dp.sup_norm, {"X": matrix(data, (data.draw(st.integers(1, 4)), 2))}


# ---------------------------------------------------------------------------- mpc_reinforce
MODEL = (
    # a leading axis of one more dimension is a batch of models: then B_phi must be batched too
    Arg("A_phi", "square", also=("B_phi",)),
    Arg("B_phi", "matrix", also=("A_phi", "R")),
    Arg("Q", "psd"),
    Arg("R", "pd"),
)


def _model_kwargs(data):
    A, B, Q, R = case_b_model(data)
    return {"A_phi": A, "B_phi": B, "Q": Q, "R": R, "horizon": data.draw(st.integers(1, 6))}


@spec("mpc_reinforce.mpc_gain", *MODEL, Arg("horizon", "int"))
def _(data):
    return model.mpc_gain, _model_kwargs(data)


@spec("mpc_reinforce.mpc_gain_jacobian", *MODEL, Arg("horizon", "int"))
def _(data):
    return model.mpc_gain_jacobian, _model_kwargs(data)


@spec(
    "mpc_reinforce.mpc_action_jacobian",
    Arg("s", "array", also=("A_phi",)),
    *MODEL,
    Arg("horizon", "int"),
)
def _(data):
    kw = _model_kwargs(data)
    return model.mpc_action_jacobian, {"s": matrix(data, (len(kw["A_phi"]),)), **kw}


@spec("mpc_reinforce.mpc_plan", Arg("s", "array"), *MODEL, Arg("horizon", "int"))
def _(data):
    kw = _model_kwargs(data)
    return model.mpc_plan, {"s": matrix(data, (len(kw["A_phi"]),)), **kw}


@spec(
    "mpc_reinforce.finite_difference_action_jacobian",
    Arg("s", "array"),
    *MODEL,
    Arg("horizon", "int"),
    Arg("step", "positive"),
)
def _(data):
    kw = _model_kwargs(data)
    s = matrix(data, (len(kw["A_phi"]),))
    return model.finite_difference_action_jacobian, {"s": s, **kw, "step": 1e-5}


@spec(
    "mpc_reinforce.mpc_gain_vjp",
    *MODEL,
    Arg("cotangent", "matrix", also=("A_phi", "B_phi")),
    Arg("horizon", "int"),
)
def _(data):
    kw = _model_kwargs(data)
    m, n = kw["B_phi"].shape[1], kw["B_phi"].shape[0]
    return model.mpc_gain_vjp, {**kw, "cotangent": matrix(data, (m, n))}


@spec(
    "mpc_reinforce.split_phi",
    Arg("phi", "array", skip=("ndim_up",)),  # leading axes are batches
    Arg("n", "int", also=("phi",)),
    Arg("m", "int", also=("phi",)),
)
def _(data):
    n, m = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 2))
    return model.split_phi, {"phi": matrix(data, (n * n + n * m,)), "n": n, "m": m}


@spec(
    "mpc_reinforce.join_phi",
    Arg("A_phi", "square", skip=("ndim_up",), also=("B_phi",)),
    Arg("B_phi", "matrix", skip=("cols",)),
)
def _(data):
    n, m = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 2))
    return model.join_phi, {"A_phi": matrix(data, (n, n)), "B_phi": matrix(data, (n, m))}


def _rollout_kwargs(data, gain: bool = True):
    A, B, Q, R = case_b_model(data, 3, 2)
    n, m = B.shape
    r, N, T = (data.draw(st.integers(1, 3)) for _ in range(3))
    kw = {
        "A": A,
        "B": B,
        "Q": Q,
        "R": R,
        "K": matrix(data, (r, m, n)),
        "x0": matrix(data, (n,)),
        "noise_std": data.draw(st.floats(0.0, 1.0)),
        "action_std": data.draw(st.floats(0.0, 1.0)),
    }
    if gain:
        kw["action_noise"] = matrix(data, (r, N, T, m), 3.0)
        kw["process_noise"] = matrix(data, (r, N, T, n), 3.0)
    return kw


ROLLOUT_SYSTEM = (
    Arg("A", "square", also=("B",)),
    Arg("B", "matrix", also=("A", "R")),
    Arg("Q", "psd"),
    Arg("R", "pd"),
    Arg("K", "array", kinds=("nan", "inf", "text", "last", "flat")),
    Arg("x0", "array"),
    Arg("noise_std", "nonneg"),
    Arg("action_std", "nonneg"),
)


@spec(
    "mpc_reinforce.rollout",
    *ROLLOUT_SYSTEM,
    Arg("action_noise", "array", kinds=("nan", "inf", "text", "rows", "last", "flat")),
    Arg("process_noise", "array", kinds=("nan", "inf", "text", "rows", "last", "flat")),
    neg_inf_ok=True,  # documented: -inf rewards where the closed loop blows up
)
def _(data):
    return rollout.rollout, _rollout_kwargs(data)


@spec(
    "mpc_reinforce.expected_return",
    *ROLLOUT_SYSTEM,
    Arg("horizon", "int"),
    neg_inf_ok=True,  # documented: -inf where the numbers overflow
)
def _(data):
    return rollout.expected_return, {
        **_rollout_kwargs(data, gain=False),
        "horizon": data.draw(st.integers(1, 20)),
    }


@spec(
    "mpc_reinforce.normalise_returns",
    Arg("returns", "array", kinds=("nan", "inf", "text", "one_col")),
    Arg("eps", "nonneg"),
)
def _(data):
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(2, 6)))
    return reinforce.normalise_returns, {"returns": matrix(data, shape, 10.0), "eps": 1e-8}


@spec(
    "mpc_reinforce.clip_global_norm",
    Arg("grad", "matrix", skip=("rows", "cols")),
    Arg("max_norm", "positive"),
)
def _(data):
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5)))
    return training.clip_global_norm, {
        "grad": matrix(data, shape, 10.0),
        "max_norm": data.draw(st.floats(0.1, 10.0)),
    }


@spec(
    "optim.adam_step",
    Arg("phi", "array", skip=("ndim_up",), also=("grad",)),
    Arg("grad", "array"),
    Arg("m", "array"),
    Arg("v", "array", extra=("neg_entry",)),
    Arg("step", "int"),
    Arg("lr", "positive"),
    Arg("betas", "pair"),
    Arg("eps", "positive"),
)
def _(data):
    k = data.draw(st.integers(1, 6))
    return optim.adam_step, {
        "phi": matrix(data, (k,)),
        "grad": matrix(data, (k,)),
        "m": matrix(data, (k,)),
        "v": matrix(data, (k,)) ** 2,
        "step": data.draw(st.integers(1, 50)),
        "lr": 0.1,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
    }


@spec(
    "mpc_reinforce.reinforce_update",
    Arg("phi", "matrix", kinds=("nan", "inf", "text", "cols", "flat"), also=("adam_m",)),
    Arg("adam_m", "matrix", kinds=("nan", "inf", "text", "rows", "cols")),
    Arg("adam_v", "matrix", kinds=("nan", "inf", "text", "rows", "cols")),
    Arg("step", "int"),
    Arg("action_noise", "array", kinds=("nan", "inf", "text", "rows", "last", "flat")),
    Arg("process_noise", "array", kinds=("nan", "inf", "text", "rows", "last", "flat")),
    Arg("lr", "positive"),
    Arg("max_grad_norm", "positive"),
    Arg("clamp", "positive"),
    Arg("action_std", "positive"),
    Arg("horizon_mpc", "int"),
    Arg("return_eps", "nonneg"),
    Arg("env", "object", kinds=("text",)),  # None means case study B
    max_examples=2,
)
def _(data):
    r, N, T = (
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(2, 4)),
        data.draw(st.integers(1, 4)),
    )
    return reinforce.reinforce_update, {
        "phi": matrix(data, (r, 20)),
        "adam_m": np.zeros((r, 20)),
        "adam_v": np.zeros((r, 20)),
        "step": 1,
        "action_noise": matrix(data, (r, N, T, 1), 3.0),
        "process_noise": matrix(data, (r, N, T, 4), 3.0),
        "lr": 0.1,
        "max_grad_norm": 10.0,
        "clamp": 2.0,
        "action_std": 0.01,
        "horizon_mpc": data.draw(st.integers(1, 5)),
        "return_eps": 1e-8,
        "env": model.case_b(),
    }


@spec(
    "mpc_reinforce.run_reinforce",
    Arg("seeds", "seeds"),
    Arg("n_updates", "int", low=0),
    Arg("batch_size", "int", low=2),
    Arg("lr", "positive"),
    Arg("action_std", "positive"),
    Arg("horizon_mpc", "int"),
    Arg("init_scale", "positive"),
    max_examples=2,
)
def _(data):
    return reinforce.run_reinforce, {
        "seeds": [data.draw(st.integers(0, 2**32))],
        "n_updates": data.draw(st.integers(0, 2)),
        "batch_size": data.draw(st.integers(2, 4)),
        "lr": 0.1,
        "action_std": 0.01,
        "horizon_mpc": data.draw(st.integers(1, 5)),
        "init_scale": 1.0,
    }


@functools.cache
def tiny_runs() -> training.ReinforceRuns:
    return reinforce.run_reinforce([1, 2], n_updates=1, batch_size=4)


@spec("mpc_reinforce.curve_summary", Arg("runs", "object"), Arg("J_star", "real"))
def _(data):
    return reinforce.curve_summary, {
        "runs": tiny_runs(),
        "J_star": data.draw(st.floats(-10.0, 0.0)),
    }


# ---------------------------------------------------------------------------- mpc
def lq_phi(data: st.DataObject, nx: int, nu: int) -> dict[str, np.ndarray]:
    return {
        "A": matrix(data, (nx, nx)),
        "B": matrix(data, (nx, nu)),
        "Q": psd(data, nx),
        "R": psd(data, nu, 0.1),
        "P": psd(data, nx),
    }


def lq_mpc_from_options(
    nx,
    nu,
    horizon,
    u_lb,
    u_ub,
    x_lb,
    x_ub,
    discount,
    move_weight,
    ipopt,
    nlpsol,
    default_phi,
    initial_guess,
    params,
) -> MPC:
    """linear_quadratic_mpc with every option of its dataclasses as one argument."""
    return linear_quadratic_mpc(
        nx,
        nu,
        horizon,
        discount=discount,
        move_weight=move_weight,
        params=Params(params, default=default_phi),
        bounds=Bounds(u_lb, u_ub, x_lb, x_ub),
        solver=SolverOptions(ipopt=ipopt, nlpsol=nlpsol, initial_guess=initial_guess),
    )


@spec(
    "mpc.linear_quadratic_mpc",
    Arg("nx", "int"),
    Arg("nu", "int"),
    Arg("horizon", "int"),
    Arg("u_lb", "low"),
    Arg("u_ub", "high", also=("u_lb",)),
    Arg("x_lb", "low"),
    Arg("x_ub", "high", also=("x_lb",)),
    Arg("discount", "unit"),
    Arg("move_weight", "psd", skip=("flat", "asym")),  # a vector is diag(W); x'Wx ignores W - W'
    Arg("ipopt", "options"),
    Arg("nlpsol", "options"),
    Arg("default_phi", "phi", skip=("flat_short",), extra=("flat_short",)),
    Arg("initial_guess", "guess"),
    Arg("params", "params"),
    max_examples=2,
)
def _(data):
    nx, nu = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    H = data.draw(st.integers(1, 4))
    return lq_mpc_from_options, {
        "nx": nx,
        "nu": nu,
        "horizon": H,
        "u_lb": -np.ones(nu),
        "u_ub": np.ones(nu),
        "x_lb": np.full(nx, -10.0),
        "x_ub": np.full(nx, 10.0),
        "discount": data.draw(st.floats(0.5, 1.0)),
        "move_weight": psd(data, nu),
        "ipopt": {"max_iter": 200},
        "nlpsol": {"expand": True},
        "default_phi": {**lq_phi(data, nx, nu), "extra": np.zeros(2)},
        "initial_guess": {"u": np.zeros(nu), "x": np.zeros(nx)},
        "params": {"extra": (2,)},
    }


@functools.cache
def boxed_lq_mpc(nx: int, nu: int, horizon: int) -> MPC:
    """Input bounds only: with PSD weights the problem is a feasible convex QP."""
    return linear_quadratic_mpc(nx, nu, horizon, bounds=Bounds(u_lb=-2.0, u_ub=2.0))


PHI = Arg(
    "phi", "phi", extra=("indef_weight", "asym_weight"), may_pass=("indef_weight", "asym_weight")
)


def _mpc_case(data):
    nx, nu = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    mpc = boxed_lq_mpc(nx, nu, data.draw(st.integers(1, 4)))
    return mpc, matrix(data, (nx,), 3.0), matrix(data, (nu,), 2.0), lq_phi(data, nx, nu)


@spec("mpc.MPC.policy", Arg("s", "array"), PHI)
def _(data):
    mpc, s, _, phi = _mpc_case(data)
    return mpc.policy, {"s": s, "phi": phi}


@spec("mpc.MPC.q_value", Arg("s", "array"), Arg("a", "array"), PHI)
def _(data):
    mpc, s, a, phi = _mpc_case(data)
    return mpc.q_value, {"s": s, "a": a, "phi": phi}


@spec("mpc.MPC.policy_sensitivity", Arg("s", "array"), PHI)
def _(data):
    mpc, s, _, phi = _mpc_case(data)
    return mpc.policy_sensitivity, {"s": s, "phi": phi}


@spec("mpc.MPC.q_sensitivity", Arg("s", "array"), Arg("a", "array"), PHI)
def _(data):
    mpc, s, a, phi = _mpc_case(data)
    return mpc.q_sensitivity, {"s": s, "a": a, "phi": phi}


@spec(
    "mpc.MPC.policy_batch",
    Arg("S", "matrix", skip=("rows",)),
    PHI,
    Arg("method", "choice"),
)
def _(data):
    mpc, s, _, phi = _mpc_case(data)
    S = np.stack([s, -s])
    return mpc.policy_batch, {
        "S": S,
        "phi": phi,
        "method": data.draw(st.sampled_from(["loop", "map"])),
    }


@spec(
    "mpc.closed_loop",
    Arg("x0", "array"),
    Arg("steps", "int", also=("noise",)),
    Arg("noise", "matrix"),
    PHI,
    Arg("on_failure", "choice"),
)
def _(data):
    mpc, s, _, phi = _mpc_case(data)
    steps = data.draw(st.integers(1, 4))

    def plant(x, u, A=phi["A"], B=phi["B"]):
        return A @ x + B @ u

    return functools.partial(closed_loop, mpc, plant), {
        "x0": s,
        "steps": steps,
        "noise": matrix(data, (steps, mpc.nu), 0.5),
        "phi": phi,
        "on_failure": "raise",
    }


# ------------------------------------------------------------------------------------------
# known gaps (none at present): (function, argument, corruption) -> reason, marked
# xfail(strict=True) so that a fixed gap fails until its entry is removed
# ------------------------------------------------------------------------------------------
KNOWN: dict[tuple[str, str, str], str] = {}


def cases(prefixes: tuple[str, ...]) -> list:
    """(spec, argument, corruption) for the functions whose name starts with one of ``prefixes``."""
    out = []
    for sp in SPECS:
        if not sp.name.startswith(prefixes):
            continue
        out.append(pytest.param(sp, None, "valid", id=f"{sp.name}-valid"))
        for arg in sp.args:
            for kind in arg.corruptions():
                reason = KNOWN.get((sp.name, arg.name, kind))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                out.append(
                    pytest.param(sp, arg, kind, marks=marks, id=f"{sp.name}-{arg.name}-{kind}")
                )
    return out


def run_case(spec_: Spec, arg: Arg | None, kind: str, data: st.DataObject) -> None:
    fn, kwargs = spec_.build(data)
    if arg is None:  # a random valid case: finite, or a data-dependent error naming an argument
        check(lambda: fn(**kwargs), spec_.names, neg_inf_ok=spec_.neg_inf_ok)
        return
    kwargs[arg.name] = corrupt(kind, kwargs[arg.name], data, arg)
    check(
        lambda: fn(**kwargs),
        (arg.name, *arg.also),
        must_raise=kind not in arg.may_pass,
        neg_inf_ok=spec_.neg_inf_ok,
        solve_error_ok=kind == "indef_weight",
    )


def property_test(*prefixes: str):
    """One test function per module: hypothesis slows down (and then breaks) when a single
    ``@given`` test is parametrised with many hundreds of cases."""

    @pytest.mark.parametrize(("spec_", "arg", "kind"), cases(prefixes))
    @given(data=st.data())
    @property_settings(3)
    def test(spec_, arg, kind, data):
        run_case(spec_, arg, kind, data)

    return test


test_lqr_inputs = property_test("lqr.")
test_envs_inputs = property_test("envs.")
test_dp_inputs = property_test("dp.")
test_mpc_reinforce_model_inputs = property_test(
    "mpc_reinforce.mpc_", "mpc_reinforce.finite", "mpc_reinforce.split", "mpc_reinforce.join"
)
test_mpc_reinforce_training_inputs = property_test(
    "mpc_reinforce.rollout",
    "mpc_reinforce.expected",
    "mpc_reinforce.normalise",
    "mpc_reinforce.clip",
    "mpc_reinforce.adam",
    "mpc_reinforce.reinforce",
    "mpc_reinforce.run",
    "mpc_reinforce.curve",
)
test_mpc_inputs = property_test("mpc.")


# ------------------------------------------------------------------------------------------
# free-form values: validate, seeding, metrics, paths
# ------------------------------------------------------------------------------------------
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e308, -0.0])
NUMBERS = st.one_of(st.floats(-1e3, 1e3, allow_nan=False), SPECIAL)
ANYTHING = st.one_of(
    NUMBERS,
    st.integers(-5, 5),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(NUMBERS, max_size=4),
    st.lists(st.lists(NUMBERS, min_size=2, max_size=2), max_size=3),
    st.lists(st.lists(NUMBERS, max_size=3), max_size=3),  # ragged
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
        elements=NUMBERS,
    ),
    st.dictionaries(st.text(max_size=2), NUMBERS, max_size=2),
)
SHAPES = st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(0, 3)), max_size=3))


@given(value=ANYTHING, shape=SHAPES)
@property_settings(50)
def test_validate_array_helpers(value, shape):
    out = check(lambda: validate.as_array("arg", value, shape), ("arg",))
    if out is not None:
        assert out.dtype == np.float64 and np.all(np.isfinite(out))
        if shape is not None:
            assert out.ndim == len(shape)
            assert all(s is None or s == k for s, k in zip(shape, out.shape, strict=True))
    n = None if not shape or shape[0] is None else shape[0]
    vec = check(lambda: validate.as_vector("arg", value, n), ("arg",))
    if vec is not None:
        assert vec.ndim == 1 and (n is None or len(vec) == n)
    mat = check(lambda: validate.as_matrix("arg", value, n), ("arg",))
    if mat is not None:
        assert mat.ndim == 2 and (n is None or mat.shape[0] == n)


@given(value=ANYTHING, n=st.one_of(st.none(), st.integers(1, 3)))
@property_settings(50)
def test_validate_weight_matrices(value, n):
    for helper, strict in ((validate.check_psd, False), (validate.check_pd, True)):
        M = check(lambda helper=helper: helper("W", value, n), ("W",))
        if M is not None:
            np.testing.assert_array_equal(M, M.T)
            lam = np.linalg.eigvalsh(M)
            assert lam.min() > 0 if strict else lam.min() >= -1e-9 * max(1.0, np.abs(M).max())


@given(value=ANYTHING, minimum=st.integers(-2, 3), low=NUMBERS, width=NUMBERS)
@property_settings(50)
def test_validate_scalar_helpers(value, minimum, low, width):
    k = check(lambda: validate.check_positive_int("k", value, minimum), ("k",))
    assert k is None or (type(k) is int and k >= minimum)
    high = low + abs(width)
    v = check(lambda: validate.check_in_open_interval("x", value, low, high), ("x",))
    assert v is None or low < v < high
    p = check(lambda: validate.check_probability("p", value), ("p",))
    assert p is None or 0.0 <= p <= 1.0


NOT_INTS = st.one_of(st.floats(0, 10), st.text(max_size=2), st.none(), st.booleans())


@given(
    seed=st.one_of(st.integers(-5, 2**70), NOT_INTS),
    n=st.one_of(st.integers(-3, 5), NOT_INTS),
)
@property_settings(40)
def test_seeding(seed, n):
    rng = check(lambda: seeding.seed_everything(seed), ("seed",))
    assert rng is None or isinstance(rng, np.random.Generator)
    seeds = check(lambda: seeding.spawn_seeds(seed, 3), ("seed",))
    assert seeds is None or (len(seeds) == 3 and all(0 <= s < 2**32 for s in seeds))
    seeds = check(lambda: seeding.spawn_seeds(0, n), ("n",))
    assert seeds is None or len(seeds) == n


METRIC_VALUES = st.recursive(
    st.one_of(NUMBERS, st.integers(-5, 5), st.booleans(), st.none(), st.text(max_size=3)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=5,
)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not np.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


@given(
    notebook=st.one_of(st.sampled_from(["01_mdp", "", "a/b"]), st.none(), st.integers()),
    values=st.one_of(st.dictionaries(st.text(max_size=3), METRIC_VALUES, max_size=3), ANYTHING),
)
@property_settings(40)
def test_metrics_record_and_load(notebook, values):
    with tempfile.TemporaryDirectory() as folder:
        path = check(
            lambda: metrics.record(notebook, values, directory=folder),
            ("notebook", "values", "metric"),
        )
        if path is None:
            assert not Path(folder, f"{notebook}.json").exists()
            return
        assert isinstance(values, dict) and not _has_non_finite(values)
        back = metrics.load(notebook, directory=folder)
        assert back == json.loads(json.dumps({str(k): v for k, v in values.items()}))


@given(
    name=st.one_of(
        st.sampled_from(["ok.txt", "missing.txt", "../ok.txt"]), st.none(), st.integers()
    ),
    content=st.binary(max_size=8),
    seed=st.one_of(st.none(), st.integers(-2, 5), st.floats(0, 1)),
    command=st.one_of(st.sampled_from(["python make.py", ""]), st.none()),
    extra=st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b"]), NUMBERS), st.just([1])),
)
@property_settings(40)
def test_paths_record_and_verify_artifacts(name, content, seed, command, extra):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "ok.txt").write_bytes(content)
        entry = check(
            lambda: paths.record_artifact(root / "ok.txt", command, seed, extra, root=root),
            ("command", "seed", "extra"),
        )
        if entry is None:
            assert paths.load_manifest(root) == {}  # nothing half-written
            return
        assert entry["sha256"] == paths.sha256(root / "ok.txt") and entry["command"] == command
        found = check(
            lambda: paths.data_path(name, root=root), ("name", "missing.txt", "../ok.txt")
        )
        assert (found is not None) == (name == "ok.txt")
        (root / "ok.txt").write_bytes(content + b"!")  # corrupt it: always caught
        with pytest.raises(paths.CorruptArtifactError, match="python make.py"):
            paths.data_path("ok.txt", root=root)


# ------------------------------------------------------------------------------------------
# the environment's step and reset, and the MPC's callables
# ------------------------------------------------------------------------------------------
@given(
    action=st.one_of(
        NUMBERS,
        st.none(),
        st.lists(NUMBERS, max_size=3),
        hnp.arrays(np.float64, st.sampled_from([(1,), (2,), (1, 1), (2, 1), ()]), elements=NUMBERS),
    )
)
@property_settings(50)
def test_env_step_takes_an_action_or_names_it(action):
    env = LinearQuadraticEnv(
        A=[[1.0, 0.1], [0.0, 1.0]], B=[[0.0], [0.1]], action_low=-1.0, action_high=1.0
    )
    env.reset(seed=0)
    out = check(lambda: env.step(action), ("action",))
    if out is not None:
        assert np.all(np.abs(out[4]["applied_action"]) <= 1.0)


@pytest.mark.parametrize("action", ["abc", object(), [[0.1], []]], ids=["text", "object", "ragged"])
def test_env_step_names_a_non_numeric_action(action):
    env = LinearQuadraticEnv()
    env.reset(seed=0)
    check(lambda: env.step(action), ("action",), must_raise=True)


def test_env_reset_rejects_unknown_options():
    env = LinearQuadraticEnv()
    check(lambda: env.reset(seed=0, options={"x_0": [1.0]}), ("options",), must_raise=True)


def test_mpc_callables_asking_for_an_unknown_parameter_are_named():
    with pytest.raises(ValueError, match=r"p\['b'\].*params declares only \['a'\]"):
        MPC(
            Model(1, 1, dynamics=lambda x, u, p: p["a"] * x + p["b"] * u),
            Cost(lambda x, u, p: x**2 + u**2),
            3,
            params={"a": ()},
        )


def test_misspelt_options_passed_through_are_named():
    check(
        lambda: reinforce.run_experiment(0, 1, 1, 4, learning_rate=0.1),
        ("learning_rate",),
        must_raise=True,
    )


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: linear_quadratic_mpc(2, 1, 3, terminl_cost=True), "terminl_cost"),
        (lambda: model.case_b_mpc(3, u_bound=1.0), "u_bound"),
        (lambda: Bounds(u_lb=0.0, u_upper=1.0), "u_upper"),
        (lambda: SolverOptions(ipopt_options={}), "ipopt_options"),
    ],
)
def test_misspelt_mpc_options_are_named(call, name):
    """The MPC's options are explicit keywords and dataclass fields: Python names a misspelt one."""
    with pytest.raises(TypeError, match=name):
        call()


# ------------------------------------------------------------------------------------------
# overflow and user callables: never a silent NaN
# ------------------------------------------------------------------------------------------
def test_mpc_reinforce_model_overflow_is_reported():
    env = model.case_b()
    check(lambda: model.mpc_gain(1e200 * env.A, env.B, env.Q, env.R), ("A_phi",), must_raise=True)
    check(
        lambda: model.mpc_plan(env.x0, 1e200 * env.A, env.B, env.Q, env.R),
        ("A_phi",),
        must_raise=True,
    )
    K = 1e3 * model.mpc_gain(env.A, env.B, env.Q, env.R)[None]  # a violently unstable closed loop
    rng = np.random.default_rng(0)
    batch = rollout.rollout(
        env.A,
        env.B,
        env.Q,
        env.R,
        K,
        env.x0,
        0.01,
        0.01,
        rng.standard_normal((1, 2, 300, 1)),
        rng.standard_normal((1, 2, 300, 4)),
    )
    assert np.all(batch.rewards[..., -1] == -np.inf)  # blown up: -inf, as documented, not NaN


def test_lqr_riccati_recursion_overflow_is_reported():
    A = 1e100 * np.array([[1.0, 0.1], [0.0, 1.0]])
    check(
        lambda: lqr.riccati_recursion(A, [[0.0], [0.1]], np.eye(2), np.eye(1), 5),
        ("A", "B", "horizon"),
    )


def test_env_simulate_rejects_a_policy_returning_nan():
    env = LinearQuadraticEnv(horizon=5)
    check(
        lambda: env.simulate(lambda x: np.full((len(x), 1), np.nan), 4, seed=0),
        ("policy",),
        must_raise=True,
    )


def test_env_simulate_names_a_bad_seed():
    env = LinearQuadraticEnv(horizon=5)
    check(lambda: env.simulate(np.zeros((1, 1)), 4, seed=-1), ("seed",), must_raise=True)


def test_dp_discretise_rejects_non_finite_rewards():
    g = dp.grid(-1.0, 1.0, 3)
    check(
        lambda: dp.discretise(
            lambda x, u: x, lambda x, u: np.full(len(x), np.nan), g, g, None, 0.9
        ),
        ("reward",),
        must_raise=True,
    )
