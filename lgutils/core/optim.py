"""Adam (Kingma and Ba), the one optimiser step of the book's hand-written learners.

The arithmetic is that of ``torch.optim.Adam`` with its defaults, so that a learner written in
numpy here and one trained with PyTorch take the same steps (case study B checks it against
``torch.autograd`` and ``torch.optim.Adam``).
"""

from __future__ import annotations

import numpy as np

from lgutils.core.validate import as_array, check_in_open_interval, check_positive_int

__all__ = ["adam_step"]


def adam_step(
    phi: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Adam step that *descends* ``grad`` (pass ``-grad`` to ascend).

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``phi <- phi - lr / (1 - b1^k) * m / (sqrt(v) / sqrt(1 - b2^k) + eps)``.

    Parameters
    ----------
    phi, grad, m, v : array_like, same shape
        Parameters, gradient of the loss, first and second moment estimates (zeros at first).
    step : int
        The step count k >= 1 (after incrementing).
    lr : float
        Learning rate > 0.
    betas : (float, float)
        Moment decay rates in [0, 1).
    eps : float
        Denominator guard > 0.

    Returns
    -------
    (phi, m, v) : the updated arrays.
    """
    phi = as_array("phi", phi)
    grad = as_array("grad", grad, phi.shape)
    m = as_array("m", m, phi.shape)
    v = as_array("v", v, phi.shape)
    if np.any(v < 0):
        raise ValueError(f"v (Adam's second moment estimate) must be >= 0, got {v!r}")
    step = check_positive_int("step", step)
    lr = check_in_open_interval("lr", lr, 0.0, np.inf)
    if isinstance(betas, (str, bytes)) or np.ndim(betas) != 1 or len(betas) != 2:
        raise ValueError(f"betas must be a pair (b1, b2) of numbers in [0, 1), got {betas!r}")
    b1, b2 = (check_in_open_interval(f"betas[{i}]", b, -1e-300, 1.0) for i, b in enumerate(betas))
    eps = check_in_open_interval("eps", eps, 0.0, np.inf)
    return adam_kernel(phi, grad, m, v, step, lr, b1, b2, eps)


def adam_kernel(phi, grad, m, v, step, lr, b1, b2, eps):
    """:func:`adam_step` without the checks, for inner loops that checked their inputs once."""
    m = b1 * m + (1.0 - b1) * grad
    v = b2 * v + (1.0 - b2) * grad * grad
    bc1 = 1.0 - b1**step
    bc2 = 1.0 - b2**step
    denom = np.sqrt(v) / np.sqrt(bc2) + eps
    return phi - (lr / bc1) * m / denom, m, v
