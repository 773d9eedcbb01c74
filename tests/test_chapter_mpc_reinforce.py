"""Chapter 08's REINFORCE update (the score through the MPC's action Jacobian, one state at a
time, then Adam) agrees with the library's vectorised update (the adjoint of the Riccati
recursion, batched over runs) on a small seeded case: two updates of two runs."""

from __future__ import annotations

import numpy as np
import pytest
from _chapter_code import chapter_functions

from lgutils.mpc_reinforce import model, reinforce

ENV = model.case_b()
CHAPTER = chapter_functions("08_mpc_reinforce", "reinforce_gradient", "reinforce_step")


def chapter_update(phi, adam_m, adam_v, k, batch):
    """The chapter's update of one run from the episodes that the library played."""
    A_phi, B_phi = model.split_phi(phi, 4, 1)
    states, actions = batch.states[:, :-1], batch.actions  # (N, T, 4), (N, T, 1)
    returns = batch.rewards.sum(axis=1)
    grad = CHAPTER["reinforce_gradient"](states, actions, returns, A_phi, B_phi, ENV.Q, ENV.R, 0.01)
    return grad, CHAPTER["reinforce_step"](phi, adam_m, adam_v, k, grad)


def test_chapter_update_equals_library_update() -> None:
    rng = np.random.default_rng(808)
    r, N, T = 2, 6, ENV.horizon
    phi = rng.uniform(-1, 1, (r, 20))
    m, v = np.zeros_like(phi), np.zeros_like(phi)
    for k in (1, 2):  # the second update exercises Adam's moments and bias correction
        eps, w = rng.standard_normal((r, N, T, 1)), rng.standard_normal((r, N, T, 4))
        lib = reinforce.reinforce_update(phi, m, v, k, eps, w)
        Gn = reinforce.normalise_returns(lib["returns"])
        A, B = model.split_phi(phi, 4, 1)
        lib_grad = reinforce.surrogate_gradient(lib["batch"], Gn, A, B, ENV.Q, ENV.R, 0.01)
        for i in range(r):
            batch = type(lib["batch"])(*(field[i] for field in lib["batch"]))
            grad, (phi_i, m_i, v_i) = chapter_update(phi[i], m[i], v[i], k, batch)
            scale = np.abs(lib_grad[i]).max()
            np.testing.assert_allclose(grad, lib_grad[i], rtol=0, atol=1e-10 * scale)
            assert np.linalg.norm(grad) == pytest.approx(lib["grad_norm"][i], rel=1e-10)
            np.testing.assert_allclose(phi_i, lib["phi"][i], rtol=0, atol=1e-12)
            np.testing.assert_allclose(m_i, lib["adam_m"][i], rtol=1e-9, atol=1e-12 * scale)
            np.testing.assert_allclose(v_i, lib["adam_v"][i], rtol=1e-9, atol=1e-12 * scale**2)
        phi, m, v = lib["phi"], lib["adam_m"], lib["adam_v"]
    assert np.all(lib["grad_norm"] > 10.0)  # the clipping was exercised


def test_chapter_gradient_is_the_score_through_the_mpc() -> None:
    """Independently of both: central differences of the chapter's surrogate loss in phi."""
    rng = np.random.default_rng(9)
    phi = rng.uniform(-1, 1, 20)
    eps, w = rng.standard_normal((1, 4, ENV.horizon, 1)), rng.standard_normal((1, 4, 10, 4))
    batch = reinforce.reinforce_update(phi[None], 0 * phi[None], 0 * phi[None], 1, eps, w)["batch"]
    S, a = batch.states[0, :, :-1], batch.actions[0]
    G = batch.rewards[0].sum(axis=1)
    Gn = (G - G.mean()) / (G.std(ddof=1) + 1e-8)

    def loss(p: np.ndarray) -> float:  # -(1/N) sum_i Gn_i sum_t log N(a; -K(p) s, 0.01^2) + const
        K = model.mpc_gain(*model.split_phi(p, 4, 1), ENV.Q, ENV.R)
        log_pi = -0.5 * ((a[..., 0] + S @ K[0]) / 0.01) ** 2
        return float(-(Gn * log_pi.sum(axis=1)).mean())

    h = 1e-6
    fd = np.array([(loss(phi + h * e) - loss(phi - h * e)) / (2 * h) for e in np.eye(20)])
    grad = CHAPTER["reinforce_gradient"](S, a, G, *model.split_phi(phi, 4, 1), ENV.Q, ENV.R, 0.01)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())
