"""One seed for every source of randomness the book uses."""

from __future__ import annotations

import random

import numpy as np

from lgutils.core.validate import check_positive_int

__all__ = ["seed_everything", "spawn_seeds"]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's :mod:`random`, numpy's legacy global state and torch (if installed).

    Parameters
    ----------
    seed : int
        A non-negative integer below ``2**64`` (the range torch accepts).

    Returns
    -------
    numpy.random.Generator
        A fresh generator seeded with ``seed``; prefer passing it around to global state.
    """
    seed = check_positive_int("seed", seed, minimum=0)
    if seed >= 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (libraries that still use the global state)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is in the lock
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def spawn_seeds(seed: int, n: int) -> list[int]:
    """Derive ``n`` independent integer seeds from one seed (for independent runs).

    Uses :class:`numpy.random.SeedSequence`, so the i-th child seed does not depend on ``n``.
    """
    seed = check_positive_int("seed", seed, minimum=0)
    n = check_positive_int("n", n, minimum=0)
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]
