"""Small helpers for the user's callables: their outputs as CasADi columns, the stage index,
the parameter dict they receive, and CasADi's option errors as clear ValueErrors."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import casadi as ca
import numpy as np

from lgutils.mpc.results import UnknownParameterError

__all__ = ["ParamDict", "accepts_stage", "call", "column", "scalar", "options_error"]


class ParamDict(dict):
    """The parameters handed to the user's callables; an unknown name says what is declared."""

    def __missing__(self, key: object) -> Any:
        raise UnknownParameterError(
            f"a callable of the MPC asked for the parameter p[{key!r}], but params declares only "
            f"{sorted(self)}: add {key!r} to params={{name: shape}} (or fix the name)"
        )


def accepts_stage(fn: Callable, n_base: int) -> bool:
    """Whether ``fn`` accepts the stage index as an extra positional argument."""
    if isinstance(fn, ca.Function):
        return fn.n_in() > n_base
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    try:
        sig.bind(*range(n_base + 1))
    except TypeError:
        return False
    return True


def call(fn: Callable, args: tuple, k: int | None, with_k: bool) -> Any:
    """``fn(*args, k)`` when it takes the stage index, else ``fn(*args)``."""
    return fn(*args, k) if with_k else fn(*args)


def options_error(exc: RuntimeError, opts: dict[str, Any]) -> ValueError:
    """CasADi's refusal of an option, as a ValueError that names the offending argument."""
    text = str(exc)
    ipopt = "IpoptInterface" in text or "IPOPT option" in text
    first = text.split("Did you mean")[0]  # CasADi's list of suggestions is long
    reason = " ".join(first.rsplit(".cpp:", 1)[-1].split(":", 1)[-1].split()) or text
    name = "SolverOptions.ipopt" if ipopt else "SolverOptions.nlpsol"
    given = opts.get("ipopt", {}) if ipopt else {k: v for k, v in opts.items() if k != "ipopt"}
    return ValueError(f"{name} was rejected by CasADi/IPOPT: {reason} (options given: {given})")


def column(name: str, value: Any, length: int | None = None) -> ca.MX:
    """A user callable's output as an MX column vector (optionally of a given length)."""
    if isinstance(value, (list, tuple)):
        value = ca.vertcat(*value) if len(value) else ca.MX(0, 1)
    if isinstance(value, (int, float, np.ndarray, np.generic)):
        value = ca.MX(ca.DM(np.atleast_1d(np.asarray(value, dtype=float))))
    if not isinstance(value, (ca.MX, ca.SX, ca.DM)):
        raise ValueError(f"{name} must return a CasADi expression, got {type(value).__name__}")
    value = ca.MX(value) if not isinstance(value, ca.MX) else value
    if value.numel() > 0 and value.size2() != 1:
        value = ca.vec(value)
    if length is not None and value.numel() != length:
        raise ValueError(f"{name} must return {length} values, got shape {value.shape}")
    return value


def scalar(name: str, value: Any) -> ca.MX:
    """A user callable's output as a 1x1 MX; the error names the callable."""
    col = column(name, value)
    if col.numel() != 1:
        raise ValueError(f"{name} must return a scalar, got shape {col.shape}")
    return col


def gradient_and_hessian(name: str, value: Any, n: int) -> tuple[ca.MX, ca.MX]:
    """A user callable's ``(gradient, hessian)`` as MX of shapes (n, 1) and (n, n)."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ValueError(f"{name} must return (gradient, hessian), got {type(value).__name__}")
    grad = column(f"{name}' gradient", value[0], n)
    hess = value[1]
    if isinstance(hess, (int, float, np.ndarray, np.generic)):
        hess = ca.DM(np.asarray(hess, dtype=float))
    if not isinstance(hess, (ca.MX, ca.SX, ca.DM)):
        raise ValueError(f"{name}' hessian must be a CasADi expression, got {type(hess).__name__}")
    if hess.shape != (n, n):
        raise ValueError(f"{name}' hessian must have shape ({n}, {n}), got {hess.shape}")
    return grad, ca.MX(hess) if not isinstance(hess, ca.MX) else hess
