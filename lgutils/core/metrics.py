"""The headline numbers of each chapter, kept in one JSON file per notebook.

A chapter calls :func:`record` with the numbers its text quotes; the tests and the evaluation
chapter read them back with :func:`load`. Files live in ``_build/metrics/<notebook>.json`` (the
folder can be moved with the ``LGUTILS_METRICS_DIR`` environment variable). Keys are dotted
names such as ``"fig4.J_star"``; values are numbers, booleans, strings, lists or small dicts.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from lgutils.core.paths import repo_root

__all__ = ["metrics_dir", "record", "load", "MissingMetricsError"]


class MissingMetricsError(FileNotFoundError):
    """A chapter's metrics file, or a key in it, does not exist (the chapter has not run)."""


def metrics_dir() -> Path:
    """The folder of the metrics files (``LGUTILS_METRICS_DIR`` or ``<repo>/_build/metrics``)."""
    env = os.environ.get("LGUTILS_METRICS_DIR")
    return Path(env) if env else repo_root() / "_build" / "metrics"


def _plain(name: str, value: Any) -> Any:
    """Convert numpy scalars and arrays to JSON values; NaN and infinity become ``None``."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _plain(f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(name, v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raise ValueError(
        f"metric {name!r} must be a number, bool, string, list or dict, got {type(value).__name__}"
    )


def _check_notebook(notebook: object) -> None:
    if not isinstance(notebook, str) or not notebook or "/" in notebook:
        raise ValueError(f"notebook must be a plain file stem such as '01_mdp', got {notebook!r}")


def _folder(directory: object) -> Path:
    if directory is None:
        return metrics_dir()
    if not isinstance(directory, (str, os.PathLike)):
        raise ValueError(
            f"directory must be a path (str or pathlib.Path), got {type(directory).__name__}"
        )
    return Path(directory)


def record(notebook: str, values: dict[str, Any], directory: Path | None = None) -> Path:
    """Merge ``values`` into the metrics file of ``notebook`` and return its path.

    Parameters
    ----------
    notebook : str
        The notebook's name without extension, e.g. ``"08_mpc_reinforce"``.
    values : dict
        Dotted key -> value: numbers, bools, strings, ``None``, and lists, tuples, dicts and
        numpy arrays of them. NaN and infinities are recorded as ``null`` (JSON has no such
        numbers), e.g. the returns of a run that overflowed. Existing keys are overwritten,
        others kept.
    directory : Path, optional
        Overrides :func:`metrics_dir`.
    """
    _check_notebook(notebook)
    if not isinstance(values, dict):
        raise ValueError(
            f"values must be a dict of metric name -> value, got {type(values).__name__}"
        )
    folder = _folder(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"values keys (metric names) must be non-empty strings, got {key!r}")
        doc[key] = _plain(key, value)
    path.write_text(json.dumps(dict(sorted(doc.items())), indent=1) + "\n")
    return path


def load(
    notebook: str, directory: Path | None = None, keys: list[str] | None = None
) -> dict[str, Any]:
    """Read the metrics of ``notebook``; raise :class:`MissingMetricsError` if it never ran.

    Parameters
    ----------
    notebook : str
        The notebook's name without extension.
    directory : Path, optional
        Overrides :func:`metrics_dir`.
    keys : list of str, optional
        Keys that must be present; a missing one raises :class:`MissingMetricsError`.
    """
    _check_notebook(notebook)
    path = _folder(directory) / f"{notebook}.json"
    if not path.exists():
        raise MissingMetricsError(
            f"no metrics file {path}: execute the notebook chapters/{notebook}.ipynb first "
            "(make book or make test run every chapter)"
        )
    doc = json.loads(path.read_text())
    missing = [k for k in keys or [] if k not in doc]
    if missing:
        raise MissingMetricsError(
            f"{path} lacks the keys {missing}; re-run chapters/{notebook}.ipynb"
        )
    return doc
