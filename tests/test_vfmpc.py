"""Tests of the case-study-A agents and their evaluation: metrics, the RL agent, the value function
and the robust MPCs."""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC

from lgutils.core import nn
from lgutils.mpc import MPCSolveError
from lgutils.mpc.scenario import scenario_grid
from lgutils.value_function_mpc import agents, cstr, evaluation, train
from lgutils.value_function_mpc.env import CSTREnv

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sac_model():
    model = SAC(
        "MultiInputPolicy",
        CSTREnv(),
        policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.SiLU},
        buffer_size=100,
        seed=1,
        device="cpu",
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model


def test_trajectory_metrics_on_a_hand_made_trajectory():
    g = 0.65
    xs = np.array(
        [
            [0.8, 0.30, 100.0, 100.0],
            [2.5, 0.50, 141.0, 100.0],  # c_A 0.5 over, T_R 1 over
            [1.0, 0.62, 120.0, 100.0],  # near goal
            [1.0, 0.75, 120.0, 100.0],  # away again
            [1.0, 0.66, 120.0, 100.0],  # near goal
            [1.0, 0.64, 120.0, 100.0],  # near goal
        ]
    )
    m = evaluation.trajectory_metrics(xs, g)
    assert m["max_violation"] == pytest.approx(1.0)
    np.testing.assert_allclose(m["max_violation_by_state"], [0.5, 0.0, 1.0, 0.0])
    assert m["final_cb_error"] == pytest.approx(0.01)
    assert m["steps_to_target"] == 4
    assert m["time_near_goal"] == pytest.approx(3 / 5)
    assert m["time_outside"] == pytest.approx(1 / 5)
    err = np.abs(xs[1:, 1] - g)
    assert m["l1_error"] == pytest.approx(err.mean())
    assert m["l2_error"] == pytest.approx(np.sqrt((err**2).mean()))
    assert evaluation.trajectory_metrics(xs[:4], g)["steps_to_target"] is None
    with pytest.raises(ValueError, match="states must have shape"):
        evaluation.trajectory_metrics(xs[:1], g)


def test_summarize_is_the_normal_confidence_interval():
    a = np.array([1.0, 2.0, 4.0, 7.0])
    s = evaluation.summarize(a)
    half = 1.96 * np.std(a, ddof=1) / 2.0
    assert s["mean"] == pytest.approx(3.5)
    assert s["ci_high"] - s["mean"] == pytest.approx(half)
    assert s["n"] == 4


def test_rl_agent_equals_sb3_deterministic_prediction(sac_model):
    agent = agents.RLAgent(nn.sac_weights(sac_model))
    env = CSTREnv()
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        a, _ = sac_model.predict(obs, deterministic=True)
        np.testing.assert_allclose(
            agent.act(info["x"], env.goal), cstr.action_to_input(a), rtol=1e-4, atol=1e-3
        )


def test_run_agent_is_the_plain_closed_loop_and_times_each_call(sac_model):
    agent = agents.RLAgent(nn.sac_weights(sac_model))
    betas = np.linspace(0.9, 1.1, 6)
    run = evaluation.run_agent(agent, cstr.X0_FIG3, 0.7, 6, alpha=1.05, beta=betas, method="rk4")
    x = cstr.X0_FIG3
    for t in range(6):
        u = np.clip(agent.act(x, 0.7), cstr.U_LOW, cstr.U_HIGH)
        x = cstr.rk4_step(x, u, 1.05, betas[t])
        np.testing.assert_array_equal(run.inputs[t], u)
        np.testing.assert_array_equal(run.states[t + 1], x)
    assert run.step_times.shape == (6,) and np.all(run.step_times > 0) and run.failures == 0
    with pytest.raises(ValueError, match="agent must have act"):
        evaluation.run_agent(object(), cstr.X0_FIG3, 0.7, 2)


def test_value_casadi_equals_value_numpy_and_has_the_finite_difference_gradient(sac_model):
    w = nn.sac_weights(sac_model)
    V = agents.value_casadi(w)
    x = ca.SX.sym("x", 4)
    grad = ca.Function("g", [x], [ca.gradient(V(x, 0.7), x)])
    rng = np.random.default_rng(0)
    xs = rng.uniform(cstr.X_LOW, cstr.X_HIGH, (6, 4))
    np.testing.assert_allclose(
        [float(V(xi, 0.7)) for xi in xs], agents.value_numpy(w, xs, 0.7), rtol=1e-10
    )
    for xi in xs[:3]:
        fd = np.array(
            [
                (
                    agents.value_numpy(w, (xi + h * e)[None], 0.7)[0]
                    - agents.value_numpy(w, (xi - h * e)[None], 0.7)[0]
                )
                / (2 * h)
                for e, h in zip(np.eye(4), [1e-6, 1e-6, 1e-4, 1e-4], strict=True)
            ]
        )
        np.testing.assert_allclose(np.asarray(grad(xi)).ravel(), fd, rtol=1e-5, atol=1e-6)


def test_value_derivatives_are_the_automatic_derivatives_of_value_casadi(sac_model):
    # the closed form RL+MPC gives IPOPT, against CasADi's AD of the V the chapter composes
    w = nn.sac_weights(sac_model)
    derivatives = agents.value_derivatives(w)
    x, g = ca.SX.sym("x", 4), ca.SX.sym("g")
    v = agents.value_casadi(w)(x, g)
    ad = ca.Function("ad", [x, g], [ca.gradient(v, x), ca.hessian(v, x)[0]])
    xm, gm = ca.MX.sym("x", 4), ca.MX.sym("g")
    cf = ca.Function("cf", [xm, gm], list(derivatives(xm, gm)))
    rng = np.random.default_rng(1)
    for xi, gi in zip(
        rng.uniform(cstr.X_LOW, cstr.X_HIGH, (5, 4)), rng.uniform(0.3, 1.3, 5), strict=True
    ):
        for got, want in zip(cf(xi, gi), ad(xi, gi), strict=True):
            np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-9, atol=1e-12)


def test_rlmpc_hands_ipopt_the_automatic_derivatives_of_its_nlp():
    # RL+MPC's IPOPT takes V's derivatives in closed form and the rest expanded; CasADi's AD of
    # the whole NLP (the slow, plain route) must give the same numbers
    agent = agents.rlmpc(train.load_cstr_run()["weights"], horizon=2)
    b = agent.mpc.mpc.problem("policy")
    w, P, f, g = (b.nlp[k] for k in ("x", "p", "f", "g"))
    lam_f, lam_g = ca.MX.sym("lam_f"), ca.MX.sym("lam_g", g.numel())
    hess = ca.Function(
        "hl", [w, P, lam_f, lam_g], [ca.triu(ca.hessian(lam_f * f + ca.dot(lam_g, g), w)[0])]
    )
    grad = ca.Function("gf", [w, P], [ca.gradient(f, w)])
    rng = np.random.default_rng(2)
    wv = rng.uniform(0.3, 1.5, b.n_w)
    pv = np.r_[np.tile(cstr.X0_FIG3 / agents.X_SCALE, 9), 0.6]
    lg = rng.normal(size=g.numel())
    got = b.solver.get_function("nlp_hess_l")(wv, pv, 0.8, lg)
    np.testing.assert_allclose(
        np.array(ca.densify(got)), np.array(ca.densify(hess(wv, pv, 0.8, lg))), atol=1e-10
    )
    got = b.solver.get_function("nlp_grad_f")(wv, pv)[1]
    np.testing.assert_allclose(np.array(got), np.array(grad(wv, pv)), atol=1e-12)


def test_baseline_mpc_plans_are_consistent_with_the_plant_of_each_scenario():
    agent = agents.baseline_mpc(horizon=4)
    agent.reset()
    x0 = np.array([0.8, 0.5, 134.14, 130.0])  # do-mpc example's initial state
    u = agent.act(x0, 0.6)
    res = agent.last
    assert res.status in ("Solve_Succeeded", "Solved_To_Acceptable_Level")
    assert res.x_pred.shape == (9, 5, 4) and res.u_pred.shape == (9, 4, 2)
    # non-anticipative first input, applied input within the bounds
    np.testing.assert_allclose(res.u_pred[:, 0], np.tile(u, (9, 1)), atol=1e-8)
    assert np.all(u >= cstr.U_LOW - 1e-6) and np.all(u <= cstr.U_HIGH + 1e-6)
    # every branch's collocation prediction matches CVODES under that branch's (alpha, beta)
    scen = scenario_grid(cstr.ALPHA_SCENARIOS, cstr.BETA_SCENARIOS)
    for i, (al, be) in enumerate(scen):
        x = x0
        for k in range(4):
            x = cstr.cvodes_step(x, res.u_pred[i, k], al, be)
        np.testing.assert_allclose(res.x_pred[i, -1], x, rtol=2e-3)
    # hard bounds of the predictions
    assert np.all(res.x_pred[:, 1:, :2] >= 0.1 - 1e-6) and np.all(
        res.x_pred[:, 1:, :2] <= 2.0 + 1e-6
    )


def test_mpc_agent_holds_its_input_when_the_problem_is_infeasible():
    agent = agents.baseline_mpc(horizon=3)
    x_bad = np.array(
        [1.99, 1.45, 60.0, 60.0]
    )  # c_A exceeds 2 within one step: hard bounds infeasible
    run = evaluation.run_agent(agent, x_bad, 0.7, 2)
    assert run.failures >= 1
    np.testing.assert_allclose(run.inputs[0], np.clip([0.0, 0.0], cstr.U_LOW, cstr.U_HIGH))
    strict = agents.MPCAgent(agent.mpc, "MPC", on_failure="raise")
    with pytest.raises(MPCSolveError):
        strict.act(x_bad, 0.7)


def test_rlmpc_is_feasible_where_the_baseline_is_not(sac_model):
    agent = agents.rlmpc(nn.sac_weights(sac_model), horizon=2)
    x_bad = np.array([1.99, 1.45, 60.0, 60.0])  # infeasible for the baseline (hard bounds)
    run = evaluation.run_agent(agent, x_bad, 0.7, 2)
    assert run.failures == 0
    assert agent.last.slack.min() >= -1e-7


def test_warm_started_baseline_steps_equal_cold_solves():
    # the agent's warm start (previous primal-dual solution, small barrier parameter) changes
    # IPOPT's path, not the solution: each step's input equals a cold solve from the same data
    agent = agents.baseline_mpc(horizon=6)
    cold = agents.baseline_mpc(horizon=6)
    agent.reset()
    x, g = np.array(cstr.X0_FIG3), cstr.GOAL_FIG3
    iters, cold_iters = [], []
    for _ in range(10):
        u_prev = agent._u_prev.copy()
        u = agent.act(x, g)
        iters.append(agent.last.iterations)
        cold.reset()
        cold._u_prev = u_prev
        u_cold = cold.act(x, g)
        cold_iters.append(cold.last.iterations)
        # the optimal cost is well determined; Qdot's move penalty is tiny, so the cost is
        # nearly flat in Qdot and its optimum is fixed only to about 1e-3 (scaled by 2000)
        assert cold.last.value == pytest.approx(agent.last.value, rel=1e-5)
        np.testing.assert_array_less(np.abs(u_cold - u), 1e-3 * agents.U_SCALE)
        x = cstr.plant_step(x, u, method="cvodes")
    assert "warm_solver" in agent.mpc.mpc.problem("policy").cache
    assert iters[0] == cold_iters[0]  # the first step is a cold solve
    assert sum(iters[1:]) < 0.9 * sum(cold_iters[1:])


def test_rlmpc_variants_swap_one_piece_each(sac_model):
    w = nn.sac_weights(sac_model)
    default = agents.rlmpc(w, horizon=2)
    assert default.name == "RL+MPC"
    # the stage costs: the Gaussian of the RL reward or the baseline's (c_B - g)^2
    x, p = np.array([1.0, 0.52, 120.0, 110.0]), {"g": 0.6}
    gauss, term = agents.rlmpc_costs(w)
    quad, no_term = agents.rlmpc_costs(None, stage="quadratic", terminal_value=False)
    assert float(gauss(x, None, p)) == pytest.approx(-np.exp(-0.5 * (0.08 / 0.1) ** 2))
    assert float(quad(x, None, p)) == pytest.approx(0.08**2)
    assert no_term is None
    assert float(term(x, p)) == pytest.approx(-agents.value_numpy(w, x[None], 0.6)[0])
    with pytest.raises(ValueError, match="stage must be"):
        agents.rlmpc_costs(w, stage="huber")
    with pytest.raises(ValueError, match="weights are required"):
        agents.rlmpc_costs(None)
    with pytest.raises(ValueError, match="bounds must be"):
        agents.rlmpc(w, bounds="none")
    # "hard" bounds are the baseline's, "soft" the soft upper bounds of RL+MPC
    hard = agents.rlmpc(None, horizon=2, terminal_value=False, stage="quadratic", bounds="hard")
    base = agents.baseline_mpc(horizon=2)
    assert hard.name == "RL+MPC (no V, quadratic stage cost, hard bounds)"
    for attr in ("x_lb", "x_ub", "u_lb", "u_ub", "soft_ub"):
        np.testing.assert_array_equal(getattr(hard.mpc, attr), getattr(base.mpc, attr))
    np.testing.assert_array_equal(default.mpc.soft_ub, agents.RLMPC_SOFT_UB)
    assert np.all(np.isinf(default.mpc.x_ub)) and not hard.mpc.uses_u_prev
    # without V and with the baseline's bounds the problem of x_bad is infeasible, as the baseline's
    x_bad = np.array([1.99, 1.45, 60.0, 60.0])
    assert evaluation.run_agent(hard, x_bad, 0.7, 2).failures >= 1
    no_v = agents.rlmpc(None, horizon=2, terminal_value=False)
    assert no_v.name == "RL+MPC (no V)"
    assert evaluation.run_agent(no_v, x_bad, 0.7, 2).failures == 0


def test_evaluate_in_parallel_equals_serial(sac_model):
    from functools import partial

    w = nn.sac_weights(sac_model)
    rng = np.random.default_rng(3)
    x0s = rng.uniform(cstr.X_LOW, cstr.X_HIGH, size=(3, 4))
    goals, alphas = [0.6, 0.7, 0.8], [1.0, 1.05, 0.92]
    factories = {
        "RL": partial(agents.RLAgent, w),
        "MPC": partial(agents.baseline_mpc, horizon=2),
    }
    serial = evaluation.evaluate(factories, x0s, goals, 3, alphas, progress=False)
    parallel = evaluation.evaluate(
        factories, x0s, goals, 3, alphas, progress=False, n_jobs=2, states_per_job=1
    )
    # one agent object used for every state gives the same runs as fresh agents
    objects = {name: f() for name, f in factories.items()}
    reused = evaluation.evaluate(objects, x0s, goals, 3, alphas, progress=False)
    for other in (parallel, reused):
        assert list(other) == ["RL", "MPC"]
        for name in serial:
            for a, b in zip(serial[name], other[name], strict=True):
                a, b = dict(a), dict(b)
                a.pop("median_step_time"), b.pop("median_step_time")
                assert a == b
    # and each is the plain closed loop of its agent on its plant
    run = evaluation.run_agent(objects["MPC"], x0s[1], goals[1], 3, alphas[1], 1.0)
    m = evaluation.trajectory_metrics(run.states, goals[1])
    assert serial["MPC"][1]["l2_error"] == m["l2_error"]
    assert serial["MPC"][1]["solver_failures"] == run.failures
    with pytest.raises(ValueError, match="must be an agent or a callable"):
        evaluation.evaluate({"x": 3}, x0s, goals, 3, progress=False)


def test_run_agents_equals_run_agent(sac_model):
    from functools import partial

    w = nn.sac_weights(sac_model)
    runs = evaluation.run_agents(
        {"RL": partial(agents.RLAgent, w), "H2": partial(agents.rlmpc, w, horizon=2)},
        cstr.X0_FIG3,
        0.65,
        3,
        n_jobs=2,
    )
    assert list(runs) == ["RL", "H2"]
    ref = evaluation.run_agent(agents.rlmpc(w, horizon=2), cstr.X0_FIG3, 0.65, 3)
    np.testing.assert_array_equal(runs["H2"].states, ref.states)
    np.testing.assert_array_equal(
        runs["RL"].states, evaluation.run_agent(agents.RLAgent(w), cstr.X0_FIG3, 0.65, 3).states
    )


def test_by_state_names_the_four_states():
    d = evaluation.by_state([0.5, 0.0, 1.25, 0.0])
    assert d == {"c_A": 0.5, "c_B": 0.0, "T_R": 1.25, "T_K": 0.0}
    with pytest.raises(ValueError, match="values"):
        evaluation.by_state([1.0, 2.0])


def test_study_plants_draws_the_out_of_tree_plants_after_the_others():
    draws = evaluation.study_plants(40, seed=7)
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(draws["x0"], rng.uniform(cstr.X_LOW, cstr.X_HIGH, (40, 4)))
    np.testing.assert_array_equal(draws["goals"], rng.choice(cstr.GOALS, 40))
    scen = scenario_grid(cstr.ALPHA_SCENARIOS, cstr.BETA_SCENARIOS)[rng.integers(9, size=40)]
    plants = draws["plants"]
    assert list(plants) == ["nominal", "uncertain", "out_of_tree"]
    np.testing.assert_array_equal(plants["nominal"], np.ones((2, 40)))
    np.testing.assert_array_equal(plants["uncertain"], scen.T)
    wide = np.column_stack(plants["out_of_tree"])
    np.testing.assert_array_equal(wide, rng.uniform([0.9, 0.8], [1.1, 1.2], (40, 2)))
    assert wide[:, 0].min() < 0.95 and wide[:, 1].max() > 1.1  # outside the tree's range


def test_evaluation_study_runs_every_plant_and_the_pair_without_v(sac_model, monkeypatch):
    calls = []

    def fake_evaluate(agents_, x0s, goals, n_steps, alphas=None, betas=None, **kw):
        calls.append((list(agents_), alphas, kw))
        return {name: [] for name in agents_}

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    study = evaluation.evaluation_study(nn.sac_weights(sac_model), 5, 4, seed=7, n_jobs=2)
    draws = evaluation.study_plants(5, seed=7)
    assert list(study["runs"]) == ["nominal", "uncertain", "out_of_tree"]
    assert [c[0] for c in calls] == [["RL", "MPC", "RL+MPC"]] * 3 + [["RL+MPC (no V)"]]
    np.testing.assert_array_equal(calls[2][1], draws["plants"]["out_of_tree"][0])
    assert calls[3][1] is None and all(c[2]["n_jobs"] == 2 for c in calls)
    assert study["plants"]["uncertain"][1] == draws["plants"]["uncertain"][1].tolist()


def test_run_values_and_summary_table_against_the_runs_by_hand():
    runs = [
        {"time_near_goal": 0.5, "max_violation_by_state": [0.0, 0.0, 2.0, 0.0]},
        {"time_near_goal": 0.7, "max_violation_by_state": [0.3, 0.0, 0.0, 1.0]},
        {"time_near_goal": 0.9, "max_violation_by_state": [0.0, 0.1, 4.0, 0.0]},
    ]
    np.testing.assert_array_equal(evaluation.run_values(runs, "time_near_goal"), [0.5, 0.7, 0.9])
    np.testing.assert_array_equal(evaluation.run_values(runs, "max_violation_T_R"), [2, 0, 4])
    np.testing.assert_array_equal(evaluation.run_values(runs, "max_violation_c_A"), [0, 0.3, 0])
    with pytest.raises(ValueError, match="metric must be"):
        evaluation.run_values(runs, "max_violation_T_X")
    rows = evaluation.summary_table({"p": {"a": runs, "b": runs[:2]}}, ["max_violation_T_R"])
    assert [(r["plant"], r["agent"], r["n"]) for r in rows] == [("p", "a", 3), ("p", "b", 2)]
    # mean 2, sample standard deviation 2: half-width 1.96 * 2 / sqrt(3)
    assert rows[0]["mean"] == pytest.approx(2.0)
    assert rows[0]["ci_high"] == pytest.approx(2.0 + 1.96 * 2.0 / np.sqrt(3.0))
    assert rows[1]["ci_low"] == pytest.approx(1.0 - 1.96 * np.sqrt(2.0) / np.sqrt(2.0))


def test_cold_solves_without_restoration_give_the_same_closed_loop():
    # from x_bad the baseline's hard bounds cannot be met: its cold solves fail, with IPOPT's
    # restoration phase (its default) or without it (the agents' option); the loop is the same
    x_bad = np.array([1.99, 1.45, 60.0, 60.0])
    runs = [
        evaluation.run_agent(agents.baseline_mpc(horizon=3, ipopt_options=opts), x_bad, 0.7, 6)
        for opts in ({}, {"max_resto_iter": 3000000})
    ]
    assert agents.IPOPT_OPTIONS["max_resto_iter"] == 0
    assert runs[0].failures == runs[1].failures >= 1
    np.testing.assert_array_equal(runs[0].states, runs[1].states)
    # from a feasible start no solve passes through restoration: the same loop again
    runs = [
        evaluation.run_agent(agents.baseline_mpc(horizon=3, ipopt_options=opts), x0, 0.65, 4)
        for opts, x0 in [({}, cstr.X0_FIG3), ({"max_resto_iter": 3000000}, cstr.X0_FIG3)]
    ]
    assert runs[0].failures == runs[1].failures == 0
    np.testing.assert_allclose(runs[0].states, runs[1].states, rtol=1e-12)


class _CountingBuilder:
    """Builds an RL agent and counts the builds (picklable, for evaluate's jobs)."""

    calls = 0

    def __init__(self, weights, tag):
        self.weights, self.tag = weights, tag

    def __call__(self):
        type(self).calls += 1
        return agents.RLAgent(self.weights)


def test_evaluate_builds_an_agent_once_per_process_and_builder(sac_model):
    w = nn.sac_weights(sac_model)
    rng = np.random.default_rng(5)
    x0s, goals = rng.uniform(cstr.X_LOW, cstr.X_HIGH, size=(3, 4)), [0.6, 0.7, 0.8]
    _CountingBuilder.calls = 0
    runs = evaluation.evaluate(
        {"RL": _CountingBuilder(w, "a")}, x0s, goals, 3, progress=False, states_per_job=1
    )
    assert _CountingBuilder.calls == 1  # three jobs in this process, one build
    evaluation.evaluate({"RL": _CountingBuilder(w, "a")}, x0s, goals, 3, progress=False)
    assert _CountingBuilder.calls == 1  # an equal builder: the same agent again
    evaluation.evaluate({"RL": _CountingBuilder(w, "b")}, x0s, goals, 3, progress=False)
    assert _CountingBuilder.calls == 2  # another builder: built anew
    for i in range(3):  # and each run is the fresh agent's closed loop
        fresh = evaluation.run_agent(agents.RLAgent(w), x0s[i], goals[i], 3)
        m = evaluation.trajectory_metrics(fresh.states, goals[i])
        assert runs["RL"][i]["l2_error"] == m["l2_error"]


class _CountingRLAgent(agents.RLAgent):
    """An RL agent that counts its runs (every run resets its agent once)."""

    resets = 0

    def reset(self):
        type(self).resets += 1


def test_run_cache_runs_only_what_it_has_not_seen(sac_model):
    from functools import partial

    w = nn.sac_weights(sac_model)
    rng = np.random.default_rng(11)
    x0s, goals = rng.uniform(cstr.X_LOW, cstr.X_HIGH, size=(4, 4)), [0.6, 0.7, 0.8, 0.7]
    nominal, mixed = np.ones(4), np.array([1.0, 1.05, 1.0, 0.95])
    agents_ = {"RL": partial(_CountingRLAgent, w), "MPC": partial(agents.baseline_mpc, horizon=2)}
    cache = evaluation.RunCache()
    first = evaluation.evaluate(agents_, x0s, goals, 3, nominal, progress=False, cache=cache)
    assert len(cache) == 8 and cache.hits == 0
    _CountingRLAgent.resets = 0
    second = evaluation.evaluate(
        agents_, x0s, goals, 3, mixed, progress=False, cache=cache, states_per_job=1
    )
    assert _CountingRLAgent.resets == 2  # states 1 and 3 have new plants; 0 and 2 are cached
    assert cache.hits == 4 and len(cache) == 12
    fresh = evaluation.evaluate(agents_, x0s, goals, 3, mixed, progress=False)
    for name in agents_:
        for i in range(4):
            a, b = dict(second[name][i]), dict(fresh[name][i])
            assert a.pop("median_step_time") > 0
            b.pop("median_step_time")
            assert a == b  # a cached run scores as a new one
        assert second[name][0] == first[name][0]  # the very run of the nominal plant
    # a different plant parameter, goal or length is a different run
    other = evaluation.evaluate(agents_, x0s, goals, 4, mixed, progress=False, cache=cache)
    assert cache.hits == 4 and len(other["RL"]) == 4
    # agents given as objects are run every time
    objects = evaluation.RunCache()
    evaluation.evaluate({"RL": agents.RLAgent(w)}, x0s, goals, 3, progress=False, cache=objects)
    assert len(objects) == 0
    with pytest.raises(ValueError, match="cache must be a RunCache or None, got dict"):
        evaluation.evaluate(agents_, x0s, goals, 3, progress=False, cache={})
