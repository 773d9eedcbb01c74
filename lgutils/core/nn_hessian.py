"""The learned value's gradient and Hessian in closed form, for the MPCs that use it as a cost.

``V(s) = Q(s, tanh(mu(s)))`` (:func:`lgutils.core.nn.value_function`) is a chain of affine layers
and elementwise activations. For such a chain the Hessian is a sum over the activations' units
(Griewank and Walther, *Evaluating Derivatives*, 2008, the "edge-pushing" form of
second-order reverse mode)::

    d2V/ds2 = sum_units  hbar_j * sigma''(y_j) * grad_s(y_j) grad_s(y_j)^T

where ``y_j`` is a unit's input, ``grad_s(y_j)`` its Jacobian row with respect to ``s`` (forward
pass) and ``hbar_j = dV/dsigma(y_j)`` the adjoint of its output (reverse pass). The affine
layers add no curvature. :func:`value_derivatives` builds this from dense matrix products: one
forward pass that carries the Jacobians, one reverse pass. On the 64x64 networks of case study A
it costs about a third of what CasADi's automatic Hessian of the same ``MX`` graph costs, and it
agrees with it to rounding (``tests/test_nn.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import casadi as ca
import numpy as np

from lgutils.core.nn import ACTIVATIONS, mlp_layers

__all__ = ["value_derivatives"]


def _activation(name: str, y: ca.MX) -> tuple[ca.MX, ca.MX, ca.MX]:
    """``sigma(y)``, ``sigma'(y)`` and ``sigma''(y)``, elementwise."""
    if name == "silu":  # y * sig(y)
        sig = 1 / (1 + ca.exp(-y))
        return y * sig, sig * (1 + y * (1 - sig)), sig * (1 - sig) * (2 + y * (1 - 2 * sig))
    if name == "relu":
        return ca.fmax(y, 0), y > 0, ca.MX.zeros(y.shape)
    if name == "tanh":
        t = ca.tanh(y)
        return t, 1 - t**2, -2 * t * (1 - t**2)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def _scale_rows(v: ca.MX, J: ca.MX) -> ca.MX:
    """``diag(v) @ J``."""
    return J * ca.repmat(v, 1, J.shape[1])


def _forward(layers, activation: str, h: ca.MX, J: ca.MX, units: list):
    """An MLP's output and its Jacobian; appends ``(W, Jy, sigma', sigma'')`` of each hidden layer."""
    for k, (W, b) in enumerate(layers):
        W = ca.DM(np.asarray(W, float))
        y, Jy = W @ h + ca.DM(np.asarray(b, float)), W @ J
        if k == len(layers) - 1:
            return y, Jy
        h, d1, d2 = _activation(activation, y)
        units.append((W, Jy, d1, d2))
        J = _scale_rows(d1, Jy)
    raise ValueError("layers must hold at least one (W, b) pair")


def _reverse(units: list, hbar: ca.MX, n_s: int) -> tuple[ca.MX, ca.MX]:
    """From the adjoint of the last hidden output: the adjoint of the input and the curvature."""
    H = ca.MX(n_s, n_s)
    for W, Jy, d1, d2 in reversed(units):
        H += Jy.T @ _scale_rows(hbar * d2, Jy)
        hbar = W.T @ (hbar * d1)
    return hbar, H


def value_derivatives(
    weights: Mapping[str, np.ndarray], index: int = 0
) -> tuple[ca.Function, ca.Function]:
    """``dV/ds`` and ``d2V/ds2`` of ``V(s) = Q_index(s, tanh(mu(s)))``, in closed form.

    Two functions, so that a caller that needs only the gradient does not pay for the Hessian's
    forward Jacobians. ``V`` itself is :func:`lgutils.core.nn.value_function`.

    Parameters
    ----------
    weights : dict
        From :func:`lgutils.core.nn.sac_weights` or :func:`lgutils.core.nn.load_weights`.
    index : {0, 1}
        Which critic.

    Returns
    -------
    gradient, hessian : casadi.Function
        ``g = gradient(s)`` of shape ``(n_s, 1)`` and ``h = hessian(s)`` of shape
        ``(n_s, n_s)``, ``s`` of shape ``(n_s, 1)``; matrix-level ``MX``.
    """
    if index not in (0, 1):
        raise ValueError(f"index must be 0 or 1, got {index!r}")
    act = str(weights["activation"])
    actor, critic = mlp_layers(weights, "actor"), mlp_layers(weights, f"critic{index}")
    n_s = actor[0][0].shape[1]
    s = ca.MX.sym("s", n_s)
    eye = ca.MX(ca.DM.eye(n_s))
    # forward: the actor's mean, the squashed action, the critic; every Jacobian w.r.t. s
    actor_units: list = []
    z, Jz = _forward(actor, act, s, eye, actor_units)
    a, da, d2a = _activation("tanh", z)
    critic_units: list = []
    _forward(critic, act, ca.vertcat(s, a), ca.vertcat(eye, _scale_rows(da, Jz)), critic_units)
    # reverse through the critic, then the squashing, then the actor
    in_bar, H = _reverse(critic_units, ca.DM(np.asarray(critic[-1][0], float)).T, n_s)
    s_bar, a_bar = in_bar[:n_s], in_bar[n_s:]
    H += Jz.T @ _scale_rows(a_bar * d2a, Jz)
    z_bar = a_bar * da
    actor_bar, H_actor = _reverse(
        actor_units, ca.DM(np.asarray(actor[-1][0], float)).T @ z_bar, n_s
    )
    return (
        ca.Function("value_gradient", [s], [s_bar + actor_bar], ["s"], ["grad"]),
        ca.Function("value_hessian", [s], [H + H_actor], ["s"], ["hess"]),
    )
