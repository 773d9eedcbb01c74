"""Tests of lgutils.mpc_in_rl_library: the differentiable MPC layer, its SB3 policy and predict wrapper.

The references are independent of the layer: central finite differences (torch's gradcheck),
the CasADi/IPOPT MPC against the closed-form Riccati solver, a hand-written rollout loop against
SB3's evaluate_policy, and PPO through two different solvers.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv

from lgutils.core.envs import LinearQuadraticEnv
from lgutils.mpc import Bounds, Constraints, MPCSolveError, SolverOptions, linear_quadratic_mpc
from lgutils.mpc_in_rl_library import layer, ppo, sb3, solvers
from lgutils.mpc_reinforce import bounded, model, reinforce

torch.set_num_threads(1)

#: A small LQ problem with every weight learnable (15 parameters), unstable open loop.
PHI_LQ = {
    "A": [[1.1, 0.3], [0.0, 0.9]],
    "B": [[0.5], [1.0]],
    "Q": np.diag([1.0, 0.5]),
    "R": [[0.1]],
    "P": np.diag([2.0, 1.0]),
}
TIGHT = {"tol": 1e-12}
#: PPO settings of a few hundred steps (4 environments, 2 episodes each per rollout).
SMALL_PPO = dict(
    n_envs=4,
    episodes_per_env=2,
    n_epochs=2,
    batch_size=40,
    learning_rate=1e-2,
    log_std_init=np.log(0.3),
)


@pytest.fixture(scope="module")
def lq_unconstrained():
    return linear_quadratic_mpc(2, 1, 4, solver=SolverOptions(ipopt=TIGHT))


@pytest.fixture(scope="module")
def lq_constrained():
    return linear_quadratic_mpc(
        2, 1, 4, bounds=Bounds(u_lb=-1.0, u_ub=1.0), solver=SolverOptions(ipopt=TIGHT)
    )


@pytest.fixture(scope="module")
def case_b_mpc():
    return model.case_b_mpc(horizon=5, solver=SolverOptions(ipopt=TIGHT))


# ------------------------------------------------------------------------------ solvers
def test_stage_gains_are_the_gains_of_shorter_horizons() -> None:
    env = model.case_b()
    rng = np.random.default_rng(3)
    A, B = rng.uniform(-1, 1, (4, 4)), rng.uniform(-1, 1, (4, 1))
    gains = solvers.stage_gains(A, B, env.Q, env.R, 5)
    for k in range(5):
        np.testing.assert_allclose(gains[k], model.mpc_gain(A, B, env.Q, env.R, horizon=5 - k))
    assert np.all(gains[-1] == 0.0)


def test_riccati_solver_matches_the_casadi_mpc(case_b_mpc) -> None:
    """Closed form and IPOPT + implicit differentiation: same u0, V and all six derivatives."""
    rng = np.random.default_rng(0)
    phi = rng.uniform(-1, 1, 20)
    S = rng.normal(size=(5, 4)) * 2.0
    ref = solvers.MPCSolver(case_b_mpc).solve(S, phi, sensitivities=True)
    got = solvers.RiccatiSolver.case_b().solve(S, phi, sensitivities=True)
    for field in solvers.PolicySolution._fields:
        a, b = getattr(got, field), getattr(ref, field)
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * max(1.0, np.abs(b).max()))
    # V is the cost of the plan: x^T P_0 x with the Riccati P_0 of the model
    no_sens = solvers.RiccatiSolver.case_b().solve(S, phi)
    assert no_sens.d_action_d_phi is None
    np.testing.assert_allclose(no_sens.actions, ref.actions, rtol=1e-8)


def test_riccati_solver_validates_and_reports_overflow() -> None:
    solver = solvers.RiccatiSolver.case_b()
    with pytest.raises(ValueError, match="S must have shape"):
        solver.solve(np.zeros((2, 3)), np.zeros(20))
    with pytest.raises(ValueError, match="phi must be a vector"):
        solver.solve(np.zeros((2, 4)), np.zeros(19))
    phi = np.zeros(20)
    phi[:16] = 1e200 * np.eye(4).ravel()
    phi[16] = 1.0
    with pytest.raises(MPCSolveError) as info:
        solver.solve(np.ones((2, 4)), phi)
    assert info.value.status == "non_finite" and info.value.index == 0


def test_mpc_solver_rejects_an_mpc_with_memory() -> None:
    mpc = linear_quadratic_mpc(2, 1, 3, move_weight=[1.0])
    with pytest.raises(ValueError, match="use_u_prev"):
        solvers.MPCSolver(mpc)
    with pytest.raises(ValueError, match="method must be"):
        solvers.MPCSolver(linear_quadratic_mpc(2, 1, 3), method="threads")


# ------------------------------------------------------------------------------ gradcheck
def test_gradcheck_unconstrained(lq_unconstrained) -> None:
    S = np.random.default_rng(1).normal(size=(3, 2)) * 2.0
    phi = lq_unconstrained.flatten_phi(PHI_LQ)
    assert layer.gradcheck_layer(solvers.MPCSolver(lq_unconstrained), S, phi)


def test_gradcheck_input_constrained(lq_unconstrained, lq_constrained) -> None:
    """Bounds strictly active and strictly inactive (u_0 and later inputs), never at a kink."""
    phi = lq_constrained.flatten_phi(PHI_LQ)
    cand = np.random.default_rng(0).normal(size=(300, 2)) * 3.0
    S, labels = layer.gradcheck_states(lq_constrained, phi, cand)
    assert labels == list(layer.GRADCHECK_CATEGORIES)
    for s, label in zip(S, labels, strict=True):
        act = layer.active_set(lq_constrained, s, phi)
        assert (label == "no input on a bound") == (not act.any())
    assert layer.gradcheck_layer(solvers.MPCSolver(lq_constrained), S, phi)
    sens = solvers.MPCSolver(lq_constrained).solve(S, phi, sensitivities=True)
    free = solvers.MPCSolver(lq_unconstrained).solve(S, phi, sensitivities=True)
    # u_0 pinned to a bound does not move (exact zero derivative, and u_0 = +-1)
    np.testing.assert_allclose(sens.actions[:2, 0], [1.0, -1.0], atol=1e-7)
    np.testing.assert_allclose(sens.d_action_d_phi[:2], 0.0, atol=1e-8)
    np.testing.assert_allclose(sens.d_action_d_state[:2], 0.0, atol=1e-8)
    # a later bound changes how u_0 responds; without bounds the two problems agree
    assert np.abs(sens.d_action_d_phi[2] - free.d_action_d_phi[2]).max() > 1e-2
    np.testing.assert_allclose(sens.d_action_d_phi[3], free.d_action_d_phi[3], atol=1e-6)


def test_gradcheck_riccati_solver() -> None:
    rng = np.random.default_rng(2)
    assert layer.gradcheck_layer(
        solvers.RiccatiSolver.case_b(), rng.normal(size=(3, 4)), rng.uniform(-1, 1, 20)
    )


def test_layer_module_gradient_matches_finite_differences(case_b_mpc) -> None:
    """The ParameterDict of MPCLayer gets d loss / d A, d loss / d B of a scalar loss."""
    rng = np.random.default_rng(4)
    A, B = rng.uniform(-1, 1, (4, 4)), rng.uniform(-1, 1, (4, 1))
    S = rng.normal(size=(6, 4))
    w = rng.normal(size=6)
    net = layer.MPCLayer(solvers.MPCSolver(case_b_mpc), {"A": A, "B": B}, with_value=True)
    u, V = net(torch.tensor(S, dtype=torch.float32))  # float32 in, float64 out
    assert u.dtype == torch.float64 and u.shape == (6, 1) and V.shape == (6,)
    (torch.tensor(w) @ u[:, 0] + V.sum()).backward()
    grad = np.concatenate([net.phi["A"].grad.numpy().ravel(), net.phi["B"].grad.numpy()[:, 0]])
    S32 = S.astype(np.float32).astype(float)
    solver = solvers.RiccatiSolver.case_b()

    def loss(phi: np.ndarray) -> float:
        sol = solver.solve(S32, phi)
        return float(w @ sol.actions[:, 0] + sol.values.sum())

    phi0, h = model.join_phi(A, B), 1e-6
    fd = np.array([(loss(phi0 + h * e) - loss(phi0 - h * e)) / (2 * h) for e in np.eye(20)])
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


def test_no_sensitivities_without_gradients(case_b_mpc) -> None:
    calls = []

    class Spy(solvers.RiccatiSolver):
        def solve(self, S, phi, sensitivities=False):
            calls.append(sensitivities)
            return super().solve(S, phi, sensitivities)

    net = layer.MPCLayer(Spy.case_b(), np.zeros(20))
    with torch.no_grad():
        net(torch.zeros(2, 4))
    net(torch.zeros(2, 4))
    assert calls == [False, True]


def test_layer_input_checks() -> None:
    solver = solvers.RiccatiSolver.case_b()
    phi = torch.zeros(20, dtype=torch.float64)
    with pytest.raises(ValueError, match="float64"):
        layer.mpc_layer(torch.zeros(2, 4), phi, solver)
    with pytest.raises(ValueError, match="shape"):
        layer.mpc_layer(torch.zeros(2, 3, dtype=torch.float64), phi, solver)
    with pytest.raises(ValueError, match="finite"):
        layer.mpc_layer(torch.full((2, 4), float("nan"), dtype=torch.float64), phi, solver)
    with pytest.raises(ValueError, match="keys"):
        layer.MPCLayer(solver, {"A": np.eye(4)})
    one = layer.mpc_layer(torch.ones(4, dtype=torch.float64), phi, solver)
    assert one.shape == (1,)


# ------------------------------------------------------------------------------ failures
def test_failed_solve_raises_through_the_layer() -> None:
    """x_H = 0 is out of reach with |u| <= 0.1 from (5, 5): IPOPT reports infeasibility."""
    mpc = linear_quadratic_mpc(
        2,
        1,
        3,
        terminal_cost=False,
        constraints=Constraints(terminal_eq=lambda x, p: x),
        bounds=Bounds(u_lb=-0.1, u_ub=0.1),
        solver=SolverOptions(ipopt={"max_iter": 50}),
    )
    phi = {"A": np.eye(2), "B": [[0.0], [1.0]], "Q": np.eye(2), "R": [[1.0]]}
    S = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    for method in ("loop", "map"):
        net = layer.MPCLayer(solvers.MPCSolver(mpc, method=method), phi)
        for grad in (True, False):
            if grad and method == "map":
                continue  # sensitivities always use the loop
            with torch.set_grad_enabled(grad), pytest.raises(MPCSolveError) as info:
                net(S)
            assert info.value.index == 1
            np.testing.assert_allclose(info.value.state, [5.0, 5.0])
            assert net.phi["A"].grad is None  # nothing was propagated
    # the feasible state alone solves
    np.testing.assert_allclose(net(S[:1]).detach().numpy(), [[0.0]], atol=1e-8)


# ------------------------------------------------------------------------------ SB3
def _obs_space(n: int) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)


def test_policy_is_an_actor_critic_with_the_mpc_as_mean() -> None:
    solver = solvers.RiccatiSolver.case_b()
    phi = np.random.default_rng(5).uniform(-1, 1, 20)
    policy = sb3.MPCActorCriticPolicy(
        _obs_space(4),
        gym.spaces.Box(-100.0, 100.0, (1,), np.float32),
        lambda _: 1e-3,
        solver=solver,
        phi_init=phi,
        log_std_init=np.log(0.3),
    )
    assert isinstance(policy, ActorCriticPolicy)
    assert any(p is policy.mpc_layer.phi["A"] for p in policy.parameters())
    obs = np.random.default_rng(6).normal(size=(5, 4)).astype(np.float32)
    dist = policy.get_distribution(torch.as_tensor(obs))
    mean = dist.distribution.mean.detach().numpy()
    np.testing.assert_allclose(mean, solver.solve(obs.astype(float), phi).actions, rtol=1e-6)
    np.testing.assert_allclose(dist.distribution.stddev.detach().numpy(), 0.3, rtol=1e-6)
    action, _ = policy.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, mean, rtol=1e-6)
    assert policy.predict_values(torch.as_tensor(obs)).shape == (5, 1)
    with pytest.raises(ValueError, match="observation_space"):
        sb3.MPCActorCriticPolicy(
            _obs_space(3), policy.action_space, lambda _: 1e-3, solver=solver, phi_init=phi
        )


def test_episode_end_is_a_termination() -> None:
    env = sb3.EpisodeEndIsTermination(LinearQuadraticEnv.case_study_b())
    env.reset(seed=0)
    flags = [env.step(np.zeros(1))[2:4] for _ in range(10)]
    assert flags[-1] == (True, False) and all(f == (False, False) for f in flags[:-1])


def test_ppo_runs_and_changes_phi_identically_with_both_solvers(case_b_mpc) -> None:
    """A few hundred PPO steps through IPOPT (MPCSolver) change phi exactly as the closed form."""
    phi0 = reinforce.run_reinforce([7], n_updates=0).phi[0, 0]
    settings = dict(seed=3, **SMALL_PPO)
    ipopt = ppo.train_ppo(solvers.MPCSolver(case_b_mpc), phi0, 4, **settings)
    closed = ppo.train_ppo(solvers.RiccatiSolver.case_b(), phi0, 4, **settings)
    assert ipopt.steps == 320 and ipopt.phi.shape == (5, 20)
    np.testing.assert_array_equal(ipopt.episodes, [0, 8, 16, 24, 32])
    np.testing.assert_allclose(ipopt.phi[0], phi0)
    assert np.linalg.norm(ipopt.phi[-1] - phi0) > 1e-2  # PPO moved the model
    np.testing.assert_allclose(ipopt.phi, closed.phi, atol=1e-6)
    np.testing.assert_allclose(ipopt.log_std, closed.log_std, atol=1e-6)


def _manual_returns(policy, n_envs: int, episodes: int, seed: int, uses_u_prev: bool):
    """Episode returns with the plain gymnasium loop, env i seeded seed + i (as VecEnv.seed)."""
    out = []
    for i in range(n_envs):
        env = LinearQuadraticEnv.case_study_b(action_low=-100.0, action_high=100.0)
        obs, _ = env.reset(seed=seed + i)
        rets = []
        for _ in range(episodes):
            total, done, u_prev = 0.0, False, np.zeros(1)
            while not done:
                u = policy(obs.astype(float), u_prev) if uses_u_prev else policy(obs.astype(float))
                u_prev = np.asarray(u, dtype=float)
                obs, r, term, trunc, _ = env.step(u_prev.astype(np.float32))
                total += r
                done = term or trunc
            obs, _ = env.reset()
            rets.append(total)
        out.append(rets)
    return np.array(out)  # (n_envs, episodes)


def _vec_env(n_envs: int, seed: int) -> DummyVecEnv:
    venv = DummyVecEnv(
        [
            lambda: Monitor(LinearQuadraticEnv.case_study_b(action_low=-100.0, action_high=100.0))
            for _ in range(n_envs)
        ]
    )
    venv.seed(seed)
    return venv


def test_evaluate_policy_scores_an_mpc_agent(case_b_mpc) -> None:
    env = model.case_b()
    phi = {"A": env.A, "B": env.B}
    agent = sb3.SB3Agent(case_b_mpc, phi)
    mean, _ = evaluate_policy(agent, _vec_env(1, 123), n_eval_episodes=5)
    manual = _manual_returns(lambda x: case_b_mpc.policy(x, phi).action, 1, 5, 123, False)
    assert mean == pytest.approx(manual.mean(), abs=1e-5)  # Monitor rounds returns to 1e-6
    # the closed-form solver and a plain batch callable score the same episodes alike
    for other in (
        sb3.SB3Agent(solvers.RiccatiSolver.case_b(), model.join_phi(env.A, env.B)),
        sb3.SB3Agent(lambda X: -X @ model.mpc_gain(env.A, env.B, env.Q, env.R).T),
    ):
        assert evaluate_policy(other, _vec_env(1, 123), n_eval_episodes=5)[0] == pytest.approx(
            mean, abs=1e-5
        )


def test_evaluate_policy_keeps_the_previous_input_per_environment() -> None:
    """An MPC with a move penalty needs u_prev: SB3Agent carries it as the recurrent state."""
    env = model.case_b()
    mpc = linear_quadratic_mpc(4, 1, 3, terminal_cost=False, move_weight=[0.05])
    phi = {"A": env.A, "B": env.B, "Q": env.Q, "R": env.R}
    agent = sb3.SB3Agent(mpc, phi)
    rets, lens = evaluate_policy(
        agent, _vec_env(2, 11), n_eval_episodes=4, return_episode_rewards=True
    )
    assert lens == [10] * 4
    manual = _manual_returns(lambda x, up: mpc.policy(x, phi, u_prev=up).action, 2, 2, 11, True)
    # evaluate_policy appends env 0 then env 1 at each (simultaneous) episode end
    np.testing.assert_allclose(rets, manual.T.ravel(), atol=1e-5)
    # without the previous input the numbers differ: the penalty matters
    assert (
        np.abs(
            manual
            - _manual_returns(
                lambda x, up: mpc.policy(x, phi, u_prev=0 * up).action, 2, 2, 11, True
            )
        ).max()
        > 1e-4
    )


def test_sb3_agent_rejects_unknown_agents() -> None:
    with pytest.raises(ValueError, match="agent must be"):
        sb3.SB3Agent(42)
    with pytest.raises(ValueError, match="phi is required"):
        sb3.SB3Agent(solvers.RiccatiSolver.case_b())


# ------------------------------------------------------------------------------ case B helpers
def test_case_b_expected_returns_match_monte_carlo() -> None:
    """Exact expected return of two models against 4000 simulated episodes each."""
    env = model.case_b()
    lq = LinearQuadraticEnv.case_study_b()
    rng = np.random.default_rng(8)
    phi = np.stack([model.join_phi(env.A, env.B), rng.uniform(-1, 1, 20)])
    exact = ppo.case_b_expected_returns(phi[None], action_std=0.05)
    assert exact.shape == (1, 2)
    for j in range(2):
        K = model.mpc_gain(*model.split_phi(phi[j], 4, 1), env.Q, env.R)
        noise = np.random.default_rng(j)

        def policy(X, K=K, noise=noise):
            return -X @ K.T + 0.05 * noise.standard_normal((len(X), 1))

        G = lq.simulate(policy, 4000, seed=10 + j).rewards.sum(axis=1)
        assert abs(G.mean() - exact[0, j]) < 4 * G.std(ddof=1) / np.sqrt(len(G))


def test_case_b_mismatch() -> None:
    env = model.case_b()
    phi = np.random.default_rng(9).uniform(-1, 1, (3, 20))
    mA, mB = ppo.case_b_mismatch(phi)
    for i in range(3):
        assert mA[i] == pytest.approx(np.linalg.norm(phi[i, :16].reshape(4, 4) - env.A))
        assert mB[i] == pytest.approx(np.linalg.norm(phi[i, 16:] - env.B.ravel()))


# ------------------------------------------------------------------------------ the QP route


def test_ppo_through_the_qp_route_is_the_closed_form() -> None:
    """The unconstrained MPC through MPCSolver(method="qp") trains exactly as the Riccati form."""
    phi0 = reinforce.run_reinforce([7], n_updates=0).phi[0, 0]
    mpc_qp = model.case_b_mpc(horizon=5, solver=SolverOptions(method="qp"))
    qp = ppo.train_ppo(solvers.MPCSolver(mpc_qp, method="map"), phi0, 3, seed=3, **SMALL_PPO)
    closed = ppo.train_ppo(solvers.RiccatiSolver.case_b(), phi0, 3, seed=3, **SMALL_PPO)
    assert np.linalg.norm(qp.phi[-1] - phi0) > 1e-2
    np.testing.assert_allclose(qp.phi, closed.phi, atol=1e-8)
    np.testing.assert_allclose(qp.log_std, closed.log_std, atol=1e-8)


def test_bounded_qp_solver_is_the_active_set_solution() -> None:
    """MPCSolver on the input-bounded QP: chapter 08's exact box-QP solution and derivative."""
    env = model.case_b()
    u_max = 1.0
    box = model.case_b_mpc(
        horizon=5, bounds=Bounds(-u_max, u_max), solver=SolverOptions(method="qp")
    )
    rng = np.random.default_rng(11)
    phi = rng.uniform(-1, 1, 20)
    A, B = model.split_phi(phi, 4, 1)
    S = rng.normal(size=(12, 4)) * 2.0
    sol = solvers.MPCSolver(box, method="map").solve(S, phi, sensitivities=True)
    ref = bounded.solve_box_qp(A, B, env.Q, env.R, S, u_max)
    np.testing.assert_allclose(sol.actions, ref.U[0, :, :1], atol=1e-7)
    saturated = 0
    for i, s in enumerate(S):
        u0, du, active = bounded.bounded_action_jacobian(s, A, B, env.Q, env.R, u_max)
        saturated += active[0] != 0
        np.testing.assert_allclose(sol.d_action_d_phi[i], du, atol=1e-6 * max(1, np.abs(du).max()))
    assert 0 < saturated < len(S)  # both kinds of state were checked


class _Recorder(gym.Wrapper):
    """Records the actions the environment receives."""

    def __init__(self, env: gym.Env, log: list) -> None:
        super().__init__(env)
        self.log = log

    def step(self, action):
        self.log.append(np.array(action, dtype=float))
        return self.env.step(action)


def test_bounded_ppo_acts_inside_the_actuator_limit() -> None:
    """PPO on the bounded MPC, actuator limit as the action space: every applied action in it."""
    box = model.case_b_mpc(horizon=5, bounds=Bounds(-0.5, 0.5), solver=SolverOptions(method="qp"))
    phi0 = reinforce.run_reinforce([5], n_updates=0).phi[0, 0]
    log: list = []

    def limited():
        env = LinearQuadraticEnv.case_study_b(action_low=-0.5, action_high=0.5)
        return _Recorder(env, log)

    run = ppo.train_ppo(solvers.MPCSolver(box), phi0, 2, seed=1, make_env=limited, **SMALL_PPO)
    assert run.phi.shape == (3, 20) and np.linalg.norm(run.phi[-1] - phi0) > 0
    applied = np.concatenate(log)
    assert applied.size == run.steps
    assert np.abs(applied).max() <= 0.5  # SB3 clipped the Gaussian samples to the box
    assert np.sum(np.abs(applied) == 0.5) > 0  # and some were clipped


def test_train_ppo_runs_are_the_single_runs() -> None:
    """Runs through joblib (1 or 2 processes) equal train_ppo called run by run."""
    seeds = [4, 9]
    phi0 = reinforce.run_reinforce(seeds, n_updates=0).phi[:, 0]
    single = [
        ppo.train_ppo(solvers.RiccatiSolver.case_b(), p, 2, seed=s, **SMALL_PPO)
        for p, s in zip(phi0, seeds, strict=True)
    ]
    for n_jobs in (1, 2):
        runs = ppo.train_ppo_runs(
            solvers.RiccatiSolver.case_b, phi0, seeds, 2, n_jobs=n_jobs, **SMALL_PPO
        )
        for a, b in zip(runs, single, strict=True):
            np.testing.assert_array_equal(a.phi, b.phi)
            np.testing.assert_array_equal(a.log_std, b.log_std)
    with pytest.raises(ValueError, match="make_solver must be callable"):
        ppo.train_ppo_runs(solvers.RiccatiSolver.case_b(), phi0, seeds, 2)
    with pytest.raises(ValueError, match="phi_init"):
        ppo.train_ppo_runs(solvers.RiccatiSolver.case_b, phi0[:1], seeds, 2)


# ------------------------------------------------------------------------------ scoring runs
def test_case_b_bounded_returns_is_chapter_08s_monte_carlo() -> None:
    """The true model draws exactly the episodes of bounded_reference_returns; shapes, chunks."""
    env = model.case_b()
    ref = bounded.bounded_reference_returns(1.0, n_episodes=300, seed=4)
    true = model.join_phi(env.A, env.B)
    assert ppo.case_b_bounded_returns(true, 1.0, n_episodes=300, seed=4) == ref["J_true_model_mpc"]
    phi = np.random.default_rng(2).uniform(-1, 1, (2, 3, 20))
    J = ppo.case_b_bounded_returns(phi, 1.0, n_episodes=50, seed=1)
    assert J.shape == (2, 3)
    np.testing.assert_allclose(
        ppo.case_b_bounded_returns(phi, 1.0, n_episodes=50, seed=1, chunk=1), J, rtol=1e-12
    )
    with pytest.raises(ValueError, match="phi must have shape"):
        ppo.case_b_bounded_returns(np.zeros(19), 1.0)


def test_case_b_bounded_returns_without_a_binding_bound_is_the_exact_return() -> None:
    """With a bound no input reaches, the Monte Carlo return estimates the exact expected return."""
    env = model.case_b()
    phi = model.join_phi(env.A, env.B)
    # 8 independent estimates of 500 episodes each: their mean and its standard error
    G = [ppo.case_b_bounded_returns(phi, 1e6, n_episodes=500, seed=s) for s in range(8)]
    exact = ppo.case_b_expected_returns(phi)
    assert abs(np.mean(G) - exact) < 4 * np.std(G, ddof=1) / np.sqrt(len(G))


def test_paired_comparison_on_known_differences() -> None:
    b = np.random.default_rng(3).normal(size=10)
    out = ppo.paired_comparison(b + 1.0, b)
    assert out["median_difference"] == pytest.approx(1.0)
    assert out["ci_low"] == pytest.approx(1.0) and out["ci_high"] == pytest.approx(1.0)
    assert out["n_a_better"] == 10 and out["n"] == 10
    assert out["p_value"] == pytest.approx(2 / 2**10)  # exact two-sided signed-rank test
    assert out["median_b"] == pytest.approx(np.median(b))
    assert out["q25_a"] == pytest.approx(np.quantile(b, 0.25) + 1.0)
    same = ppo.paired_comparison(b, b)
    assert same["p_value"] == 1.0 and same["median_difference"] == 0.0
    with pytest.raises(ValueError, match="b"):
        ppo.paired_comparison(b, b[:3])
