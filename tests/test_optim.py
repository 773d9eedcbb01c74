"""The one Adam step against torch.optim.Adam, descending and ascending."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgutils.core import optim


@pytest.mark.parametrize("maximize", [False, True])
def test_adam_step_matches_torch(maximize: bool) -> None:
    rng = np.random.default_rng(4)
    p0 = rng.normal(size=(2, 3))
    grads = rng.normal(size=(5, 2, 3))
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for k, g in enumerate(grads, start=1):
        p, m, v = optim.adam_step(p, -g if maximize else g, m, v, k, lr=0.05)
    tp = torch.tensor(p0, requires_grad=True, dtype=torch.float64)
    opt = torch.optim.Adam([tp], lr=0.05, maximize=maximize)
    for g in grads:
        opt.zero_grad()
        tp.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12)
