"""lgutils.mpc_reinforce.reinforce against the CasADi MPC, finite differences, torch autograd, the
environment, lgutils.core.lqr and Monte Carlo; serial, joblib and dask runs agree exactly."""

from __future__ import annotations

import copy

import joblib
import numpy as np
import pytest

from lgutils.core import lqr, optim
from lgutils.core.envs import LinearQuadraticEnv
from lgutils.core.seeding import spawn_seeds
from lgutils.mpc_reinforce import model, reinforce, rollout, training

ENV = model.case_b()
N_STATES, N_INPUTS = ENV.B.shape
N_PHI = N_STATES**2 + N_STATES * N_INPUTS


def random_models(seed: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (r, 4, 4)), rng.uniform(-1, 1, (r, 4, 1))


# --------------------------------------------------------------------------- the MPC policy
def test_gain_equals_lqr_riccati_recursion() -> None:
    A, B = random_models(0, 5)
    K = model.mpc_gain(A, B, ENV.Q, ENV.R, horizon=5)
    for i in range(5):
        K_ref, _ = lqr.riccati_recursion(A[i], B[i], ENV.Q, ENV.R, 5)
        np.testing.assert_allclose(K[i], K_ref[0], rtol=1e-12, atol=1e-14)
    # one model in, one gain out
    np.testing.assert_allclose(model.mpc_gain(A[0], B[0], ENV.Q, ENV.R), K[0], rtol=0, atol=0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_three_gradients_of_u0_agree(casadi_mpc, seed: int) -> None:
    """d u_0*/d phi: CasADi's implicit differentiation, the closed form, central differences."""
    A, B = random_models(seed, 1)
    A, B = A[0], B[0]
    s = np.random.default_rng(100 + seed).normal(size=4) * 2
    sens = casadi_mpc.policy_sensitivity(s, phi={"A": A, "B": B})
    u, du = model.mpc_action_jacobian(s, A, B, ENV.Q, ENV.R, horizon=5)
    phi = model.join_phi(A, B)
    h = 1e-5
    fd = np.empty((1, N_PHI))
    for p in range(N_PHI):
        e = np.zeros(N_PHI)
        e[p] = h
        up = -model.mpc_gain(*model.split_phi(phi + e, 4, 1), ENV.Q, ENV.R) @ s
        um = -model.mpc_gain(*model.split_phi(phi - e, 4, 1), ENV.Q, ENV.R) @ s
        fd[:, p] = (up - um) / (2 * h)
    scale = np.max(np.abs(du))
    np.testing.assert_allclose(sens.result.action, u, rtol=1e-8)
    assert np.max(np.abs(sens.d_action_d_phi - du)) <= 1e-6 * scale
    assert np.max(np.abs(fd - du)) <= 1e-6 * scale
    assert np.max(np.abs(sens.d_action_d_phi - fd)) <= 1e-6 * scale


def test_plan_and_finite_difference_helpers(casadi_mpc) -> None:
    A, B = random_models(12, 1)
    s = np.array([1.0, -0.5, 0.3, 2.0])
    res = casadi_mpc.policy(s, phi={"A": A[0], "B": B[0]})
    x_pred, u_pred = model.mpc_plan(s, A[0], B[0], ENV.Q, ENV.R, horizon=5)
    np.testing.assert_allclose(x_pred, res.x_pred, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(u_pred, res.u_pred, rtol=1e-7, atol=1e-8)
    assert u_pred[-1, 0] == 0.0  # no cost sees the last move
    _, du = model.mpc_action_jacobian(s, A[0], B[0], ENV.Q, ENV.R)
    fd = model.finite_difference_action_jacobian(s, A[0], B[0], ENV.Q, ENV.R)
    np.testing.assert_allclose(fd, du, rtol=1e-6, atol=1e-8 * np.abs(du).max())


def test_reverse_mode_equals_jacobian_contraction() -> None:
    A, B = random_models(4, 6)
    K, dK = model.mpc_gain_jacobian(A, B, ENV.Q, ENV.R)
    assert dK.shape == (6, 1, 4, N_PHI)
    c = np.random.default_rng(5).normal(size=(6, 1, 4))
    g = model.mpc_gain_vjp(A, B, ENV.Q, ENV.R, c)
    ref = np.einsum("rij,rijp->rp", c, dK)
    np.testing.assert_allclose(g, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    # and the Jacobian against central differences, every model
    phi = model.join_phi(A, B)
    h = 1e-6
    for p in range(N_PHI):
        e = np.zeros(N_PHI)
        e[p] = h
        fd = (
            model.mpc_gain(*model.split_phi(phi + e, 4, 1), ENV.Q, ENV.R)
            - model.mpc_gain(*model.split_phi(phi - e, 4, 1), ENV.Q, ENV.R)
        ) / (2 * h)
        np.testing.assert_allclose(dK[..., p], fd, rtol=1e-6, atol=1e-7 * np.abs(dK).max())


def test_true_model_mpc_is_suboptimal_and_plans_no_last_move() -> None:
    ref = reinforce.reference_returns()
    assert ref["J_true_model_mpc"] < ref["J_star"] < 0
    # with horizon 1 the MPC plans u_0 only, which no cost sees: K = 0
    np.testing.assert_array_equal(model.mpc_gain(ENV.A, ENV.B, ENV.Q, ENV.R, horizon=1), 0.0)
    # the horizon-5 gain is the horizon-4 gain of the DP with a terminal cost Q (u_4 = 0)
    K4, _ = lqr.riccati_recursion(ENV.A, ENV.B, ENV.Q, ENV.R, 4, terminal=ENV.Q)
    np.testing.assert_allclose(ref["K_true_model_mpc"], K4[0], rtol=1e-12)


# --------------------------------------------------------------------------- the environment
def test_vectorised_rollout_equals_environment_step_by_step() -> None:
    A, B = random_models(6, 1)
    K = model.mpc_gain(A, B, ENV.Q, ENV.R)  # (1, 1, 4)
    env = LinearQuadraticEnv.case_study_b()
    _, info0 = env.reset(seed=123)
    gen = copy.deepcopy(env.np_random)  # replays the environment's own process-noise draws
    eps = np.random.default_rng(7).standard_normal((ENV.horizon, 1))
    sigma = 0.01
    states, rewards, w = [info0["state"]], [], []
    for t in range(ENV.horizon):
        w.append(gen.standard_normal(4))
        a = -K[0] @ states[-1] + sigma * eps[t]
        _, rew, terminated, truncated, info = env.step(a)
        states.append(info["state"])
        rewards.append(rew)
    assert truncated and not terminated
    batch = rollout.rollout(
        ENV.A,
        ENV.B,
        ENV.Q,
        ENV.R,
        K,
        ENV.x0,
        ENV.noise_std,
        sigma,
        eps[None, None],
        np.asarray(w)[None, None],
    )
    np.testing.assert_allclose(batch.states[0, 0], np.asarray(states), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(batch.rewards[0, 0], rewards, rtol=1e-12, atol=1e-15)


def test_expected_return_matches_lqr_policy_return() -> None:
    A, B = random_models(8, 4)
    K = model.mpc_gain(A, B, ENV.Q, ENV.R)
    J = rollout.expected_return(ENV.A, ENV.B, ENV.Q, ENV.R, K, ENV.x0, 0.01, 0.01, 10)
    for i in range(4):
        ref = lqr.policy_return(
            ENV.A,
            ENV.B,
            ENV.Q,
            ENV.R,
            K[i],
            ENV.x0,
            None,
            1e-4 * np.eye(4),
            horizon=10,
            action_noise_cov=[[1e-4]],
        )
        assert J[i] == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("which", ["J_star", "J_true_model_mpc"])
def test_exact_returns_agree_with_monte_carlo(which: str) -> None:
    ref = reinforce.reference_returns()
    K = ref["K_star"] if which == "J_star" else ref["K_true_model_mpc"]
    env = LinearQuadraticEnv.case_study_b()
    noise = np.random.default_rng(11)

    def policy(x: np.ndarray) -> np.ndarray:
        return -x @ K.T + 0.01 * noise.standard_normal((x.shape[0], 1))

    G = env.simulate(policy, 20_000, seed=12).rewards.sum(axis=1)
    half_width = 4 * G.std(ddof=1) / np.sqrt(G.size)
    assert abs(G.mean() - ref[which]) < half_width


# --------------------------------------------------------------------------- REINFORCE
def torch_update(phi, eps, w, opt_state=None):
    """One REINFORCE update written independently with torch autograd and torch.optim.Adam."""
    torch = pytest.importorskip("torch")
    A_t = torch.tensor(phi[:16].reshape(4, 4), dtype=torch.float64, requires_grad=True)
    B_t = torch.tensor(phi[16:].reshape(4, 1), dtype=torch.float64, requires_grad=True)
    Q = torch.tensor(ENV.Q)
    R = torch.tensor(ENV.R)
    P = torch.zeros(4, 4, dtype=torch.float64)
    for _ in range(5):
        K = torch.linalg.solve(R + B_t.T @ P @ B_t, B_t.T @ P @ A_t)
        P = Q + A_t.T @ P @ (A_t - B_t @ K)
    Kd = K.detach().numpy()
    N, T = eps.shape[:2]
    x = np.empty((N, T + 1, 4))
    x[:, 0] = ENV.x0
    a = np.empty((N, T, 1))
    for t in range(T):
        a[:, t] = -x[:, t] @ Kd.T + 0.01 * eps[:, t]
        x[:, t + 1] = x[:, t] @ ENV.A.T + a[:, t] @ ENV.B.T + 0.01 * w[:, t]
    G = -(np.einsum("ntj,jk,ntk->nt", x[:, :T], ENV.Q, x[:, :T]) + 1e-2 * a[..., 0] ** 2).sum(-1)
    G_t = torch.tensor(G)
    Gn = (G_t - G_t.mean()) / (G_t.std() + 1e-8)
    xs = torch.tensor(x[:, :T])
    mean = -(xs @ K.T)
    logp = torch.distributions.Normal(mean, 0.01).log_prob(torch.tensor(a)).sum(dim=(1, 2))
    loss = -(logp * Gn).mean()
    opt = torch.optim.Adam([A_t, B_t], lr=0.1)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_([A_t, B_t], 10.0)
    opt.step()
    with torch.no_grad():
        A_t.clamp_(-2, 2)
        B_t.clamp_(-2, 2)
    new = np.concatenate([A_t.detach().numpy().ravel(), B_t.detach().numpy().ravel()])
    return new, G, opt.state_dict()


def test_two_reinforce_updates_match_torch_autograd_and_adam() -> None:
    rng = np.random.default_rng(2024)
    r, N, T = 2, 4, ENV.horizon
    phi = rng.uniform(-1, 1, (r, N_PHI))
    m = np.zeros_like(phi)
    v = np.zeros_like(phi)
    states = [None] * r
    cur = [phi[i] for i in range(r)]
    for step in (1, 2):
        eps = rng.standard_normal((r, N, T, 1))
        w = rng.standard_normal((r, N, T, 4))
        out = reinforce.reinforce_update(phi, m, v, step, eps, w)
        for i in range(r):
            ref, G, states[i] = torch_update(cur[i], eps[i], w[i], states[i])
            np.testing.assert_allclose(out["returns"][i], G, rtol=1e-12)
            np.testing.assert_allclose(out["phi"][i], ref, rtol=1e-10, atol=1e-12)
            cur[i] = ref
        phi, m, v = out["phi"], out["adam_m"], out["adam_v"]
    assert np.all(out["grad_norm"] > 10.0)  # the clipping was exercised


def test_clipping_and_adam_by_hand() -> None:
    g = np.array([[3.0, 4.0], [0.3, 0.4]])
    clipped, norm = training.clip_global_norm(g, 1.0)
    np.testing.assert_allclose(norm, [5.0, 0.5])
    np.testing.assert_allclose(clipped[0], g[0] / (5.0 + 1e-6))
    np.testing.assert_array_equal(clipped[1], g[1])
    # first Adam step moves every parameter by lr * sign(g) (up to eps)
    phi, m, v = optim.adam_step(
        np.zeros(3), np.array([2.0, -0.5, 1e-3]), np.zeros(3), np.zeros(3), 1, 0.1
    )
    np.testing.assert_allclose(phi, [-0.1, 0.1, -0.1], rtol=1e-4)
    z = reinforce.normalise_returns(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(z, [[-1.0, 0.0, 1.0]], rtol=1e-7)


def test_runs_are_reproducible_and_independent_of_batching() -> None:
    seeds = spawn_seeds(5, 3)
    one = reinforce.run_reinforce(seeds, n_updates=3, batch_size=8)
    again = reinforce.run_reinforce(seeds, n_updates=3, batch_size=8)
    alone = reinforce.run_reinforce(seeds[1:2], n_updates=3, batch_size=8)
    for f in one._fields:
        np.testing.assert_array_equal(getattr(one, f), getattr(again, f))
        np.testing.assert_array_equal(getattr(one, f)[1:2], getattr(alone, f))
    assert one.returns.shape == (3, 4) and one.phi.shape == (3, 4, N_PHI)
    assert np.all(np.abs(one.phi) <= 2.0)
    # E = 0 is the initial model: entries uniform on [-1, 1]
    assert np.all(np.abs(one.phi[:, 0]) <= 1.0)
    A0, B0 = model.split_phi(one.phi[:, 0], 4, 1)
    np.testing.assert_allclose(one.mismatch_A[:, 0], np.linalg.norm(A0 - ENV.A, axis=(1, 2)))
    np.testing.assert_allclose(one.mismatch_B[:, 0], np.linalg.norm(B0 - ENV.B, axis=(1, 2)))


def assert_same_runs(a: training.ReinforceRuns, b: training.ReinforceRuns) -> None:
    for f in a._fields:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def test_serial_joblib_and_dask_give_identical_results() -> None:
    distributed = pytest.importorskip("distributed")
    kw = dict(n_updates=3, batch_size=8, runs_per_job=2)
    serial, _ = reinforce.run_experiment(9, 5, n_jobs=1, **kw)
    procs, _ = reinforce.run_experiment(9, 5, n_jobs=2, **kw)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
        joblib.parallel_config(backend="dask"),
    ):
        dask, _ = reinforce.run_experiment(9, 5, n_jobs=2, **kw)
    assert_same_runs(serial, procs)
    assert_same_runs(serial, dask)
    np.testing.assert_array_equal(serial.seeds, spawn_seeds(9, 5))


def test_learning_improves_the_median_return() -> None:
    runs = reinforce.run_reinforce(spawn_seeds(0, 8), n_updates=25, batch_size=64)
    assert np.median(runs.expected_returns[:, -1]) > np.median(runs.expected_returns[:, 0])


def test_curve_summary_statistics() -> None:
    runs = reinforce.run_reinforce(spawn_seeds(1, 4), n_updates=2, batch_size=8)
    s = reinforce.curve_summary(runs, -0.25)
    kept = ~runs.diverged
    np.testing.assert_allclose(s["return_mean"], runs.returns[kept].mean(axis=0))
    np.testing.assert_allclose(s["regret_median"], np.median(-0.25 - runs.expected_returns, axis=0))
    np.testing.assert_allclose(s["mismatch_B_std"], runs.mismatch_B.std(axis=0, ddof=1))


# --------------------------------------------------------------------------- input checks
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: model.mpc_gain(np.eye(3), np.ones((4, 1)), ENV.Q, ENV.R), "B_phi"),
        (lambda: model.mpc_gain(ENV.A, ENV.B, ENV.Q, ENV.R, horizon=0), "horizon"),
        (lambda: model.mpc_gain(ENV.A, ENV.B, -ENV.Q, ENV.R), "Q"),
        (lambda: model.split_phi(np.zeros(19), 4, 1), "phi"),
        (lambda: reinforce.run_reinforce([], 1), "seeds"),
        (lambda: reinforce.run_reinforce([1], 1, batch_size=1), "batch_size"),
        (lambda: reinforce.run_reinforce([1], 1, lr=-0.1), "lr"),
        (lambda: training.clip_global_norm(np.ones((2, 3)), 0.0), "max_norm"),
        (lambda: reinforce.normalise_returns(np.ones((2, 1))), "returns"),
        (
            lambda: rollout.expected_return(
                ENV.A, ENV.B, ENV.Q, ENV.R, np.ones((2, 4)), ENV.x0, 0, 0, 10
            ),
            "K",
        ),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
