"""Checks of public arguments, with errors that say what is wrong.

Every public function of :mod:`lgutils` checks its inputs with these helpers, so that a wrong
shape, a non-finite value or an indefinite weight matrix gives a :class:`ValueError` naming the
argument, what was given and what was expected, instead of a traceback from deep in numpy or
CasADi.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "as_array",
    "as_matrix",
    "as_vector",
    "check_positive_int",
    "check_psd",
    "check_pd",
    "check_probability",
    "check_in_open_interval",
    "check_nonnegative",
]


def _shape_text(shape: Sequence[int | None]) -> str:
    return (
        "("
        + ", ".join("any" if s is None else str(s) for s in shape)
        + (",)" if len(shape) == 1 else ")")
    )


def as_array(name: str, value: object, shape: Sequence[int | None] | None = None) -> np.ndarray:
    """Convert ``value`` to a finite float64 array, optionally of a given shape.

    Parameters
    ----------
    name : str
        Argument name used in the error message.
    value : array_like
        The value to convert.
    shape : sequence of int or None, optional
        Expected shape; ``None`` entries match any length.

    Returns
    -------
    numpy.ndarray
        A float64 copy of ``value``.

    Raises
    ------
    ValueError
        If ``value`` is not numeric, has the wrong shape or contains NaN or infinity.
    """
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {type(value).__name__}: {value!r}") from exc
    if shape is not None:
        ok = arr.ndim == len(shape) and all(
            s is None or s == n for s, n in zip(shape, arr.shape, strict=True)
        )
        if not ok:
            raise ValueError(f"{name} must have shape {_shape_text(shape)}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr!r}")
    return arr


def as_vector(name: str, value: object, n: int | None = None) -> np.ndarray:
    """Convert ``value`` to a finite 1-D float array of length ``n`` (a scalar counts as length 1)."""
    arr = np.atleast_1d(as_array(name, value))
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"({n},)" if n is not None else "(any,)"
        raise ValueError(f"{name} must be a vector of shape {want}, got shape {arr.shape}")
    return arr


def as_matrix(
    name: str, value: object, rows: int | None = None, cols: int | None = None
) -> np.ndarray:
    """Convert ``value`` to a finite 2-D float array of shape ``(rows, cols)``.

    A scalar becomes a 1x1 matrix and a vector is *not* silently reshaped.
    """
    arr = as_array(name, value)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    return as_array(name, arr, (rows, cols))


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_in_open_interval(
    name: str, value: object, low: float, high: float, closed_high: bool = False
) -> float:
    """Return ``value`` as a float if ``low < value < high`` (``<= high`` with ``closed_high``)."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    ok = low < v <= high if closed_high else low < v < high
    if not ok or not np.isfinite(v):
        right = "]" if closed_high else ")"
        raise ValueError(f"{name} must lie in ({low}, {high}{right}, got {value!r}")
    return v


def check_probability(name: str, value: object) -> float:
    """Return ``value`` as a float in [0, 1], else raise ValueError."""
    v = check_in_open_interval(name, value, -np.inf, np.inf)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return v


def _check_symmetric(name: str, M: np.ndarray) -> np.ndarray:
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {M.shape}")
    scale = max(1.0, float(np.max(np.abs(M))))
    if not np.allclose(M, M.T, atol=1e-9 * scale):
        raise ValueError(f"{name} must be symmetric, got {M!r}")
    # halves first: 0.5 * (M + M.T) would overflow for entries near the largest float
    return 0.5 * M + 0.5 * M.T


def check_psd(name: str, value: object, n: int | None = None) -> np.ndarray:
    """Return ``value`` as a symmetric positive semidefinite ``(n, n)`` matrix, else raise."""
    M = _check_symmetric(name, as_matrix(name, value, n, n))
    lam = float(np.min(np.linalg.eigvalsh(M)))
    if lam < -1e-10 * max(1.0, float(np.max(np.abs(M)))):
        raise ValueError(
            f"{name} must be symmetric positive semidefinite, its smallest eigenvalue is {lam:.3g}"
        )
    return M


def check_pd(name: str, value: object, n: int | None = None) -> np.ndarray:
    """Return ``value`` as a symmetric positive definite ``(n, n)`` matrix, else raise."""
    M = _check_symmetric(name, as_matrix(name, value, n, n))
    lam = float(np.min(np.linalg.eigvalsh(M)))
    if lam <= 0.0:
        raise ValueError(
            f"{name} must be symmetric positive definite, its smallest eigenvalue is {lam:.3g}"
        )
    return M


def check_nonnegative(name: str, value: object) -> float:
    """Return ``value`` as a finite float ``>= 0``, else raise ValueError."""
    v = check_in_open_interval(name, value, -np.inf, np.inf)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v
