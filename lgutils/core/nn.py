"""Neural networks as CasADi expressions: a trained SAC actor and critic inside an MPC.

A Stable-Baselines3 SAC agent (Raffin et al., 2021) has

- an actor: features ``s`` -> hidden layers (Linear + activation) -> ``mu`` (Linear), whose
  deterministic action is ``tanh(mu)`` in ``[-1, 1]`` and, rescaled,
  ``low + (tanh(mu) + 1) (high - low) / 2`` in the environment's action space;
- twin critics ``Q_j(s, a)``: the MLP on the concatenation ``(s, a)``, with ``a`` the action
  scaled to ``[-1, 1]`` (SB3 stores and evaluates scaled actions).

For a Dict observation, ``s`` is the concatenation of the entries in sorted key order
(SB3's ``CombinedExtractor`` with flattening only). This module copies the weights into plain
numpy arrays (:func:`sac_weights`), saves and loads them as a pickle-free ``.npz``
(:func:`save_weights`, :func:`load_weights`) and writes the networks as pure CasADi
:class:`casadi.Function` objects (:func:`mlp_function`, :func:`actor_function`,
:func:`critic_function`, :func:`value_function`), so an NLP solver can differentiate through
them. No compiled extension is involved.

Weights layout (keys of the ``.npz``)
-------------------------------------
``actor.W0, actor.b0, ..., actor.W{L}, actor.b{L}`` (the last pair is ``mu``),
``critic{j}.W0, ..., critic{j}.b{L}`` for ``j = 0, 1``, ``activation`` (a string),
``action_low``, ``action_high`` (shape ``(m,)``), ``obs_keys`` (strings, the sorted keys) and
``obs_dims`` (their flattened sizes). ``W`` has shape ``(out, in)`` as in torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import casadi as ca
import gymnasium as gym
import numpy as np

from lgutils.core.validate import as_array, as_vector

__all__ = [
    "ACTIVATIONS",
    "sac_weights",
    "save_weights",
    "load_weights",
    "mlp_layers",
    "mlp_function",
    "actor_function",
    "critic_function",
    "value_function",
    "mlp_numpy",
]

#: Supported hidden-layer activations.
ACTIVATIONS = ("silu", "relu", "tanh")


def _act(name: str, v: Any) -> Any:
    """Apply an activation to a CasADi expression."""
    if name == "silu":
        return v / (1 + ca.exp(-v))
    if name == "relu":
        return ca.fmax(v, 0)
    if name == "tanh":
        return ca.tanh(v)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def _act_np(name: str, v: np.ndarray) -> np.ndarray:
    if name == "silu":
        return v / (1 + np.exp(-v))
    if name == "relu":
        return np.maximum(v, 0)
    if name == "tanh":
        return np.tanh(v)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def _torch_mlp(seq: Any) -> tuple[list[tuple[np.ndarray, np.ndarray]], str | None]:
    """Weights and activation name of a torch ``Sequential`` of Linear and activation layers."""
    import torch.nn as tnn

    names = {tnn.SiLU: "silu", tnn.ReLU: "relu", tnn.Tanh: "tanh"}
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    act: str | None = None
    for mod in seq:
        if isinstance(mod, tnn.Linear):
            w = mod.weight.detach().cpu().double().numpy().copy()
            b = (
                mod.bias.detach().cpu().double().numpy().copy()
                if mod.bias is not None
                else np.zeros(w.shape[0])
            )
            layers.append((w, b))
        elif type(mod) in names:
            if act is not None and act != names[type(mod)]:
                raise ValueError("networks with mixed activations are not supported")
            act = names[type(mod)]
        else:
            raise ValueError(
                f"layer {type(mod).__name__} is not supported; expected Linear, SiLU, ReLU or Tanh"
            )
    return layers, act


def sac_weights(model: Any) -> dict[str, np.ndarray]:
    """Copy the actor and both critics of a Stable-Baselines3 SAC model into numpy arrays.

    Parameters
    ----------
    model : stable_baselines3.SAC
        A SAC model with an MLP (``MlpPolicy`` or ``MultiInputPolicy`` on Box entries)
        without state-dependent exploration.

    Returns
    -------
    dict of str -> numpy.ndarray
        The layout of the module docstring (float64 weights).
    """
    policy = getattr(model, "policy", None)
    if policy is None or not hasattr(policy, "actor") or not hasattr(policy, "critic"):
        raise ValueError(f"model must be a stable_baselines3 SAC model, got {type(model).__name__}")
    if getattr(policy.actor, "use_sde", False):
        raise ValueError("model must not use state-dependent exploration (use_sde=False)")
    space = model.observation_space
    if isinstance(space, gym.spaces.Dict):
        keys = list(space.spaces.keys())
        dims = [int(np.prod(space.spaces[k].shape)) for k in keys]
    else:
        keys, dims = ["obs"], [int(np.prod(space.shape))]
    out: dict[str, np.ndarray] = {}
    hidden, act = _torch_mlp(policy.actor.latent_pi)
    mu, _ = _torch_mlp([policy.actor.mu])
    for i, (w, b) in enumerate(hidden + mu):
        out[f"actor.W{i}"], out[f"actor.b{i}"] = w, b
    for j, qnet in enumerate(policy.critic.q_networks):
        layers, act_q = _torch_mlp(qnet)
        if act_q not in (None, act):
            raise ValueError("actor and critic must use the same activation")
        for i, (w, b) in enumerate(layers):
            out[f"critic{j}.W{i}"], out[f"critic{j}.b{i}"] = w, b
    out["activation"] = np.array(act or "relu")
    out["action_low"] = np.asarray(model.action_space.low, dtype=float)
    out["action_high"] = np.asarray(model.action_space.high, dtype=float)
    out["obs_keys"] = np.array(keys)
    out["obs_dims"] = np.array(dims)
    return out


def save_weights(weights: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Save :func:`sac_weights` output as an uncompressed, pickle-free ``.npz``."""
    path = Path(path)
    if not isinstance(weights, Mapping) or "activation" not in weights:
        raise ValueError("weights must be the dict returned by sac_weights")
    np.savez(path, **{k: np.asarray(v) for k, v in weights.items()})
    return path


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Load a ``.npz`` written by :func:`save_weights` (``allow_pickle=False``)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"path must be an existing .npz file, got {str(path)!r}")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def mlp_layers(
    weights: Mapping[str, np.ndarray], prefix: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(W, b)`` pairs of the network ``prefix`` (``"actor"``, ``"critic0"``, ``"critic1"``)."""
    layers = []
    i = 0
    while f"{prefix}.W{i}" in weights:
        layers.append(
            (
                np.asarray(weights[f"{prefix}.W{i}"], float),
                np.asarray(weights[f"{prefix}.b{i}"], float),
            )
        )
        i += 1
    if not layers:
        raise ValueError(
            f"prefix must name a network in weights, got {prefix!r} (keys: {sorted(weights)})"
        )
    for k in range(1, len(layers)):
        if layers[k][0].shape[1] != layers[k - 1][0].shape[0]:
            raise ValueError(f"layer {k} of {prefix!r} does not fit layer {k - 1}")
    return layers


def _sym(sym: str):
    if sym not in ("SX", "MX"):
        raise ValueError(f"sym must be 'SX' or 'MX', got {sym!r}")
    return ca.SX if sym == "SX" else ca.MX


def mlp_function(
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    activation: str,
    name: str = "mlp",
    sym: str = "SX",
) -> ca.Function:
    """A CasADi function of an MLP: activation after every layer but the last.

    Parameters
    ----------
    layers : sequence of (W, b)
        ``W`` of shape ``(out, in)``, ``b`` of shape ``(out,)``.
    activation : {"silu", "relu", "tanh"}
    name : str
    sym : {"SX", "MX"}
        Scalar graph (``SX``: every multiply-add a node, fastest for small networks and when
        the NLP is expanded) or matrix graph (``MX``: one node per layer; its derivatives stay
        matrix-level, which keeps second derivatives of large networks cheap to build).

    Returns
    -------
    casadi.Function
        ``y = f(x)``, ``x`` of shape ``(in, 1)``, ``y`` of shape ``(out, 1)``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if not layers:
        raise ValueError("layers must hold at least one (W, b) pair")
    x = _sym(sym).sym("x", layers[0][0].shape[1])
    h = x
    for k, (w, b) in enumerate(layers):
        w = as_array(f"layers[{k}][0]", w)
        b = as_vector(f"layers[{k}][1]", b, w.shape[0])
        h = ca.mtimes(ca.DM(w), h) + ca.DM(b)
        if k < len(layers) - 1:
            h = _act(activation, h)
    return ca.Function(name, [x], [h], ["x"], ["y"])


def mlp_numpy(
    layers: Sequence[tuple[np.ndarray, np.ndarray]], activation: str, x: np.ndarray
) -> np.ndarray:
    """The same MLP in numpy on a batch ``x`` of shape ``(n, in)``; returns ``(n, out)``."""
    h = as_array("x", x)
    for k, (w, b) in enumerate(layers):
        h = h @ np.asarray(w).T + np.asarray(b)
        if k < len(layers) - 1:
            h = _act_np(activation, h)
    return h


def actor_function(
    weights: Mapping[str, np.ndarray], scaled: bool = False, sym: str = "SX"
) -> ca.Function:
    """Deterministic SAC action as a CasADi function of the network input ``s``.

    Parameters
    ----------
    weights : dict
        From :func:`sac_weights` or :func:`load_weights`.
    scaled : bool
        If True, return ``tanh(mu(s))`` in ``[-1, 1]`` (what the critics take); otherwise the
        action in the environment's units, ``low + (tanh(mu) + 1) (high - low) / 2``.
    sym : {"SX", "MX"}
        Graph type (see :func:`mlp_function`).

    Returns
    -------
    casadi.Function
        ``a = pi(s)``, ``s`` of shape ``(n_s, 1)``, ``a`` of shape ``(m, 1)``.
    """
    act = str(weights["activation"])
    net = mlp_function(mlp_layers(weights, "actor"), act, "actor_mu", sym)
    s = _sym(sym).sym("s", net.size1_in(0))
    a = ca.tanh(net(s))
    if not scaled:
        low = ca.DM(np.asarray(weights["action_low"], float))
        high = ca.DM(np.asarray(weights["action_high"], float))
        a = low + 0.5 * (a + 1) * (high - low)
    return ca.Function("actor", [s], [a], ["s"], ["a"])


def critic_function(
    weights: Mapping[str, np.ndarray], index: int = 0, sym: str = "SX"
) -> ca.Function:
    """Critic ``Q_index(s, a)`` as a CasADi function; ``a`` scaled to ``[-1, 1]`` as in SB3.

    ``sym`` chooses the graph type (see :func:`mlp_function`).

    Returns
    -------
    casadi.Function
        ``q = Q(s, a)``, ``s`` of shape ``(n_s, 1)``, ``a`` of shape ``(m, 1)``, ``q`` scalar.
    """
    if index not in (0, 1):
        raise ValueError(f"index must be 0 or 1, got {index!r}")
    layers = mlp_layers(weights, f"critic{index}")
    m = int(np.asarray(weights["action_low"]).size)
    n_s = layers[0][0].shape[1] - m
    net = mlp_function(layers, str(weights["activation"]), f"q{index}_mlp", sym)
    s = _sym(sym).sym("s", n_s)
    a = _sym(sym).sym("a", m)
    return ca.Function(f"critic{index}", [s, a], [net(ca.vertcat(s, a))], ["s", "a"], ["q"])


def value_function(
    weights: Mapping[str, np.ndarray], index: int = 0, sym: str = "SX"
) -> ca.Function:
    """``V(s) = Q_index(s, pi(s))`` with the scaled deterministic action, as a CasADi function.

    ``sym`` chooses the graph type (see :func:`mlp_function`).

    Returns
    -------
    casadi.Function
        ``v = V(s)``, ``s`` of shape ``(n_s, 1)``, ``v`` scalar.
    """
    pi = actor_function(weights, scaled=True, sym=sym)
    q = critic_function(weights, index, sym=sym)
    s = _sym(sym).sym("s", pi.size1_in(0))
    return ca.Function("value", [s], [q(s, pi(s))], ["s"], ["v"])
