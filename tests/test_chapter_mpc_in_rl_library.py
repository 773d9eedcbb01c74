"""Chapter 09 writes the differentiable MPC; the library's layer must be the same function.

The chapter's ``MPCFunction`` (a ``torch.autograd.Function``: forward = the MPC's batch solve
with sensitivities, backward = the vector-Jacobian products of eq. mpc-in-rl-library-vjp) is
the step the chapter teaches; :mod:`lgutils.mpc_in_rl_library.layer` holds the version the runs
use (input checks, sensitivities only when needed, pluggable solvers). Both must give the same
actions, values and gradients on small cases, including an input-constrained MPC at states
where a bound is strictly active, and the chapter's gradients must match finite differences,
so that a change on either side fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _chapter_code import chapter_function
from test_mpc_in_rl_library import PHI_LQ  # the chapter's small LQ problem, 15 parameters

from lgutils.mpc import Bounds, SolverOptions, linear_quadratic_mpc
from lgutils.mpc_in_rl_library import layer, solvers
from lgutils.mpc_reinforce import model

CHAPTER = "09_mpc_in_rl_library"
TIGHT = SolverOptions(ipopt={"tol": 1e-12})

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def chapter_mpc_function():
    return chapter_function(CHAPTER, "MPCFunction")


def _gradients(outputs_fn, S: np.ndarray, phi: np.ndarray, seed: int):
    """``u``, ``V`` and the gradients of a random linear loss ``w . u + c . V`` w.r.t. S, phi.

    The gradient w.r.t. phi is None when ``outputs_fn`` does not differentiate through ``p``.
    """
    states = torch.tensor(S, requires_grad=True)
    p = torch.tensor(phi, requires_grad=True)
    u, V = outputs_fn(states, p)
    rng = np.random.default_rng(seed)
    w, c = torch.tensor(rng.normal(size=tuple(u.shape))), torch.tensor(rng.normal(size=len(V)))
    ((w * u).sum() + (c * V).sum()).backward()
    return [None if t is None else t.detach().numpy() for t in (u, V, states.grad, p.grad)]


def _assert_same(got: list[np.ndarray], ref: list[np.ndarray], rtol: float) -> None:
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.abs(b).max()))


def test_chapter_function_is_the_library_layer_with_bounds(chapter_mpc_function) -> None:
    """|u| <= 1: one state per active-set category (u_0 on a bound, a later input, none)."""
    mpc = linear_quadratic_mpc(2, 1, 4, bounds=Bounds(u_lb=-1.0, u_ub=1.0), solver=TIGHT)
    phi = mpc.flatten_phi(PHI_LQ)
    cand = np.random.default_rng(0).normal(size=(300, 2)) * 3.0
    S, labels = layer.gradcheck_states(mpc, phi, cand)
    assert labels == list(layer.GRADCHECK_CATEGORIES)
    library = linear_quadratic_mpc(2, 1, 4, bounds=Bounds(u_lb=-1.0, u_ub=1.0), solver=TIGHT)
    got = _gradients(lambda s, p: chapter_mpc_function.apply(s, p, mpc), S, phi, seed=1)
    ref = _gradients(
        lambda s, p: layer.mpc_layer(s, p, solvers.MPCSolver(library), with_value=True),
        S,
        phi,
        seed=1,
    )
    _assert_same(got, ref, rtol=1e-8)
    np.testing.assert_allclose(got[0][:2, 0], [1.0, -1.0], atol=1e-7)  # u_0 on its bounds


def test_chapter_function_through_ipopt_is_the_closed_form_layer(chapter_mpc_function) -> None:
    """Case study B: the chapter's function on the CasADi MPC against MPCLayer's Riccati solver."""
    rng = np.random.default_rng(2)
    phi = rng.uniform(-1, 1, 20)
    S = rng.normal(size=(4, 4)) * 2.0
    mpc = model.case_b_mpc(horizon=5, solver=TIGHT)
    got = _gradients(lambda s, p: chapter_mpc_function.apply(s, p, mpc), S, phi, seed=3)
    net = layer.MPCLayer(solvers.RiccatiSolver.case_b(), phi, with_value=True)

    def through_module(s: torch.Tensor, p: torch.Tensor):
        # the module holds phi as its own parameters: copy p in, then read their gradients back
        with torch.no_grad():
            net.phi["A"].copy_(p[:16].reshape(4, 4))
            net.phi["B"].copy_(p[16:].reshape(4, 1))
        return net(s)

    u, V, dS, _ = _gradients(through_module, S, phi, seed=3)
    dphi = np.concatenate([net.phi["A"].grad.numpy().ravel(), net.phi["B"].grad.numpy().ravel()])
    _assert_same(got, [u, V, dS, dphi], rtol=1e-7)


def test_chapter_function_passes_gradcheck(chapter_mpc_function) -> None:
    """Finite differences of the forward pass against the chapter's backward pass."""
    mpc = linear_quadratic_mpc(2, 1, 4, solver=TIGHT)
    S = torch.tensor(np.random.default_rng(4).normal(size=(3, 2)) * 2.0, requires_grad=True)
    phi = torch.tensor(mpc.flatten_phi(PHI_LQ), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s, p: chapter_mpc_function.apply(s, p, mpc), (S, phi), eps=1e-6, atol=1e-5
    )
