"""Tests of the CasADi conversion of SB3 SAC networks: values and gradients against torch."""

from __future__ import annotations

import copy

import casadi as ca
import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC

from lgutils.core import nn
from lgutils.value_function_mpc import cstr
from lgutils.value_function_mpc.env import CSTREnv

torch.set_num_threads(1)


def _perturbed_sac(env, activation, seed=0):
    """A SAC model whose weights are random and O(1), so that every layer matters."""
    model = SAC(
        "MultiInputPolicy" if isinstance(env.observation_space, gym.spaces.Dict) else "MlpPolicy",
        env,
        policy_kwargs={"net_arch": [64, 64], "activation_fn": activation},
        buffer_size=100,
        seed=seed,
        device="cpu",
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return model


def _split(model, s):
    """Torch observation (dict in sorted key order, or tensor) from flat inputs s (n, n_s)."""
    space = model.observation_space
    if not isinstance(space, gym.spaces.Dict):
        return s
    out, i = {}, 0
    for key, sub in space.spaces.items():
        d = int(np.prod(sub.shape))
        out[key] = s[:, i : i + d]
        i += d
    return out


def _actor64(actor, obs):
    """SB3's deterministic actor forward in float64 (SB3's preprocessing would cast to float32)."""
    return torch.tanh(actor.mu(actor.latent_pi(actor.features_extractor(obs))))


def _critics64(critic, obs, a):
    """SB3's twin-critic forward in float64: q_j(cat(features, a))."""
    x = torch.cat([critic.features_extractor(obs), a], dim=1)
    return [q(x) for q in critic.q_networks]


def _inputs(model, n, rng):
    n_s = sum(
        int(np.prod(v.shape))
        for v in getattr(model.observation_space, "spaces", {"o": model.observation_space}).values()
    )
    return rng.normal(size=(n, n_s)) * 1.5


@pytest.fixture(scope="module")
def cstr_model():
    return _perturbed_sac(CSTREnv(), torch.nn.SiLU)


@pytest.mark.parametrize("scaled", [True, False])
def test_actor_matches_torch_values_and_jacobian(cstr_model, scaled):
    model = cstr_model
    w = nn.sac_weights(model)
    f = nn.actor_function(w, scaled=scaled)
    sym = f.mx_in(0)
    jac = ca.Function("j", [sym], [ca.jacobian(f(sym), sym)])
    rng = np.random.default_rng(0)
    low, high = model.action_space.low.astype(float), model.action_space.high.astype(float)
    actor64 = copy.deepcopy(model.actor).double()  # torch in float64, same weights
    for s in _inputs(model, 10, rng):
        st = torch.tensor(s[None], dtype=torch.float64, requires_grad=True)
        a = _actor64(actor64, _split(model, st))[0]
        if not scaled:
            a = torch.as_tensor(low) + 0.5 * (a + 1) * torch.as_tensor(high - low)
        np.testing.assert_allclose(
            np.asarray(f(s)).ravel(), a.detach().numpy(), rtol=1e-6, atol=1e-9
        )
        tj = np.stack(
            [torch.autograd.grad(a[i], st, retain_graph=True)[0][0].numpy() for i in range(len(a))]
        )
        np.testing.assert_allclose(np.asarray(jac(s)), tj, rtol=1e-6, atol=1e-9)


def test_unscaled_actor_matches_sb3_predict(cstr_model):
    model = cstr_model
    f = nn.actor_function(nn.sac_weights(model))
    env = CSTREnv()
    obs, info = env.reset(seed=1)
    a, _ = model.predict(obs, deterministic=True)
    s = cstr.network_input(info["x"], env.goal)
    np.testing.assert_allclose(np.asarray(f(s)).ravel(), a, rtol=1e-5, atol=1e-5)  # torch float32
    # SB3's own float32 forward of the critics (with its preprocessing and concatenation)
    obs_t = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
    a_t = torch.tensor([[0.3, -0.2]])
    with torch.no_grad():
        q32 = model.critic(obs_t, a_t)
    for j in (0, 1):
        np.testing.assert_allclose(
            float(nn.critic_function(nn.sac_weights(model), j)(s, [0.3, -0.2])),
            q32[j].item(),
            rtol=1e-5,
            atol=1e-5,
        )


@pytest.mark.parametrize("index", [0, 1])
def test_critic_matches_torch_values_and_gradient(cstr_model, index):
    model = cstr_model
    w = nn.sac_weights(model)
    q = nn.critic_function(w, index)
    s_sym, a_sym = ca.MX.sym("s", q.size1_in(0)), ca.MX.sym("a", 2)
    grad = ca.Function(
        "g", [s_sym, a_sym], [ca.gradient(q(s_sym, a_sym), ca.vertcat(s_sym, a_sym))]
    )
    rng = np.random.default_rng(1)
    critic64 = copy.deepcopy(model.critic).double()
    for s in _inputs(model, 10, rng):
        a = rng.uniform(-1, 1, 2)
        st = torch.tensor(s[None], requires_grad=True, dtype=torch.float64)
        at = torch.tensor(a[None], requires_grad=True, dtype=torch.float64)
        qt = _critics64(critic64, _split(model, st), at)[index][0, 0]
        np.testing.assert_allclose(float(q(s, a)), qt.item(), rtol=1e-6, atol=1e-9)
        gs, ga = torch.autograd.grad(qt, (st, at))
        np.testing.assert_allclose(
            np.asarray(grad(s, a)).ravel(),
            np.r_[gs[0].numpy(), ga[0].numpy()],
            rtol=1e-6,
            atol=1e-9,
        )


def test_value_function_is_critic_at_the_scaled_actor_mean_and_has_the_right_gradient(
    cstr_model, tmp_path
):
    model = cstr_model
    path = nn.save_weights(nn.sac_weights(model), tmp_path / "w.npz")
    w = nn.load_weights(path)  # round trip through the pickle-free file
    v = nn.value_function(w)
    rng = np.random.default_rng(2)
    actor64 = copy.deepcopy(model.actor).double()
    critic64 = copy.deepcopy(model.critic).double()
    for s in _inputs(model, 5, rng):
        st = torch.tensor(s[None], requires_grad=True, dtype=torch.float64)
        obs = _split(model, st)
        vt = _critics64(critic64, obs, _actor64(actor64, obs))[0][0, 0]
        np.testing.assert_allclose(float(v(s)), vt.item(), rtol=1e-6, atol=1e-9)
        (gt,) = torch.autograd.grad(vt, st)
        sym = ca.SX.sym("s", len(s))
        g = ca.Function("g", [sym], [ca.gradient(v(sym), sym)])
        np.testing.assert_allclose(np.asarray(g(s)).ravel(), gt[0].numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("activation", [torch.nn.ReLU, torch.nn.Tanh])
def test_other_activations_on_a_box_observation(activation):
    env = gym.make("Pendulum-v1")
    model = _perturbed_sac(env, activation, seed=3)
    w = nn.sac_weights(model)
    assert str(w["activation"]) == {torch.nn.ReLU: "relu", torch.nn.Tanh: "tanh"}[activation]
    f, q = nn.actor_function(w, scaled=True), nn.critic_function(w, 1)
    rng = np.random.default_rng(3)
    actor64 = copy.deepcopy(model.actor).double()
    critic64 = copy.deepcopy(model.critic).double()
    for s in rng.normal(size=(10, 3)):
        st = torch.tensor(s[None], dtype=torch.float64)
        a = rng.uniform(-1, 1, 1)
        np.testing.assert_allclose(
            np.asarray(f(s)).ravel(),
            _actor64(actor64, st)[0].detach().numpy(),
            rtol=1e-6,
            atol=1e-9,
        )
        qt = _critics64(critic64, st, torch.tensor(a[None]))[1].item()
        np.testing.assert_allclose(float(q(s, a)), qt, rtol=1e-6, atol=1e-9)


def test_mlp_numpy_equals_casadi_and_errors():
    rng = np.random.default_rng(4)
    layers = [
        (rng.normal(size=(5, 3)), rng.normal(size=5)),
        (rng.normal(size=(2, 5)), rng.normal(size=2)),
    ]
    x = rng.normal(size=(4, 3))
    f = nn.mlp_function(layers, "silu")
    np.testing.assert_allclose(np.asarray(f(x.T)).T, nn.mlp_numpy(layers, "silu", x), rtol=1e-12)
    # an independent evaluation of the same network
    h = x @ layers[0][0].T + layers[0][1]
    h = h * (1 / (1 + np.exp(-h)))
    np.testing.assert_allclose(
        nn.mlp_numpy(layers, "silu", x), h @ layers[1][0].T + layers[1][1], rtol=1e-12
    )
    with pytest.raises(ValueError, match="activation must be one of"):
        nn.mlp_function(layers, "gelu")
    with pytest.raises(ValueError, match="prefix must name a network"):
        nn.mlp_layers({"activation": np.array("silu")}, "actor")
    with pytest.raises(ValueError, match="model must be a stable_baselines3 SAC model"):
        nn.sac_weights(object())


def test_mx_graphs_equal_sx_graphs(cstr_model):
    w = nn.sac_weights(cstr_model)
    rng = np.random.default_rng(5)
    for s in _inputs(cstr_model, 4, rng):
        a = rng.uniform(-1, 1, 2)
        np.testing.assert_allclose(
            float(nn.value_function(w, sym="MX")(s)), float(nn.value_function(w)(s)), rtol=1e-12
        )
        np.testing.assert_allclose(
            np.asarray(nn.actor_function(w, sym="MX")(s)),
            np.asarray(nn.actor_function(w)(s)),
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            float(nn.critic_function(w, 1, sym="MX")(s, a)),
            float(nn.critic_function(w, 1)(s, a)),
            rtol=1e-12,
        )
    with pytest.raises(ValueError, match="sym must be 'SX' or 'MX'"):
        nn.value_function(w, sym="DM")


@pytest.mark.parametrize("activation", ["silu", "relu", "tanh"])
def test_closed_form_value_derivatives_equal_casadis_automatic_ones(activation):
    # the edge-pushing gradient and Hessian against CasADi's AD of the same network, on random
    # weights of the shipped networks' shapes (O(1), so that every layer's curvature counts)
    from lgutils.core.nn_hessian import value_derivatives

    rng = np.random.default_rng(3)
    shapes = {"actor": [(64, 5), (64, 64), (2, 64)], "critic0": [(64, 7), (64, 64), (1, 64)]}
    weights = {"activation": np.array(activation), "action_low": -np.ones(2)}
    weights["action_high"] = np.ones(2)
    for net, layers in shapes.items():
        for k, (n_out, n_in) in enumerate(layers):
            weights[f"{net}.W{k}"] = rng.normal(size=(n_out, n_in)) / np.sqrt(n_in)
            weights[f"{net}.b{k}"] = 0.3 * rng.normal(size=n_out)
    gradient, hessian = value_derivatives(weights)
    s = ca.SX.sym("s", 5)
    v = nn.value_function(weights, sym="SX")(s)
    ad = ca.Function("ad", [s], [ca.gradient(v, s), ca.hessian(v, s)[0]])
    for point in rng.normal(size=(5, 5)):
        g_ad, h_ad = (np.array(m) for m in ad(point))
        np.testing.assert_allclose(np.array(gradient(point)), g_ad, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.array(hessian(point)), h_ad, rtol=1e-9, atol=1e-11)
        assert activation == "relu" or np.abs(h_ad).max() > 1e-2  # there is curvature to get


def test_value_derivatives_rejects_a_third_critic():
    from lgutils.core.nn_hessian import value_derivatives

    with pytest.raises(ValueError, match="index must be 0 or 1"):
        value_derivatives({"activation": np.array("silu")}, index=2)
