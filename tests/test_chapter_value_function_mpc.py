"""Chapter 07 writes the RL+MPC agent's composition; the library's agent must be the same agent.

The chapter builds the learned terminal value ``V(x, g) = Q_1(s, mu(s))`` from the actor and
critic networks as a CasADi expression (``mlp``, ``learned_value``) and the objective of one
scenario as the negated reward-shaped stage cost plus ``-V`` at the last state
(``stage_cost``, ``scenario_objective``). The library builds the fast version the runs use:
:func:`lgutils.value_function_mpc.agents.value_casadi` (``V`` as an ``SX`` or ``MX`` graph) and
:func:`~lgutils.value_function_mpc.agents.rlmpc_costs`, the two callables that
:func:`~lgutils.value_function_mpc.agents.rlmpc` hands to its MPC. Both must give the same
value at random states and goals, on the shipped SAC weights and on random ones, so that a
change on either side fails here.
"""

from __future__ import annotations

import inspect

import casadi as ca
import numpy as np
import pytest
from _chapter_code import chapter_functions

from lgutils.value_function_mpc import agents, cstr, train

CHAPTER = "07_value_function_mpc"
TOL = 1e-12


@pytest.fixture(scope="module")
def chapter() -> dict:
    return chapter_functions(CHAPTER, "mlp", "learned_value", "stage_cost", "scenario_objective")


def _random_weights(seed: int) -> dict[str, np.ndarray]:
    """SAC-shaped SiLU networks with random weights: actor 5-64-64-2, critics 7-64-64-1."""
    rng = np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {}
    for net, sizes in [("actor", [5, 64, 64, 2]), ("critic0", [7, 64, 64, 1])]:
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            w[f"{net}.W{i}"] = rng.normal(0.0, 1.5 / np.sqrt(n_in), (n_out, n_in))
            w[f"{net}.b{i}"] = rng.normal(0.0, 0.5, n_out)
    w["activation"] = np.array("silu")
    w["action_low"], w["action_high"] = cstr.A_LOW.copy(), cstr.A_HIGH.copy()
    return w


@pytest.fixture(scope="module", params=["shipped", "random"])
def weights(request) -> dict[str, np.ndarray]:
    if request.param == "shipped":
        return train.load_cstr_run()["weights"]
    return _random_weights(3)


def _states_and_goals(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """States in a box a little larger than the constraint box, goals across the c_B range."""
    rng = np.random.default_rng(seed)
    margin = 0.1 * (cstr.X_HIGH - cstr.X_LOW)
    return rng.uniform(cstr.X_LOW - margin, cstr.X_HIGH + margin, (n, 4)), rng.uniform(0.1, 2.0, n)


def test_the_chapters_value_is_the_librarys(chapter, weights) -> None:
    V = chapter["learned_value"](weights)
    xs, gs = _states_and_goals(100, 0)
    ours = np.array([float(V(x, g)) for x, g in zip(xs, gs, strict=True)])
    for sym in ("SX", "MX"):  # the chapter's figures use SX, the MPC uses MX
        V_lib = agents.value_casadi(weights, sym=sym)
        library = np.array([float(V_lib(x, g)) for x, g in zip(xs, gs, strict=True)])
        np.testing.assert_allclose(ours, library, rtol=TOL, atol=TOL)
    # and both are the networks evaluated independently in numpy (other arithmetic: looser)
    np.testing.assert_allclose(ours, agents.value_numpy(weights, xs, gs), rtol=1e-10, atol=1e-10)
    assert np.ptp(ours) > 0.1  # a value that varies, not a constant that agrees trivially


def test_the_chapters_objective_is_what_rlmpc_hands_to_its_mpc(chapter, weights) -> None:
    V = chapter["learned_value"](weights)
    stage, terminal = agents.rlmpc_costs(weights)
    rng = np.random.default_rng(1)
    for horizon in (1, 2, 5):
        for _ in range(10):
            x_pred, _ = _states_and_goals(horizon + 1, int(rng.integers(1 << 30)))
            p = {"g": rng.uniform(0.1, 2.0)}
            ours = float(chapter["scenario_objective"](x_pred, p["g"], V))
            library = sum(stage(x, None, p) for x in x_pred[:-1]) + terminal(x_pred[-1], p)
            assert ours == pytest.approx(float(library), rel=TOL, abs=TOL)


def test_the_chapters_costs_are_the_librarys_on_the_mpcs_symbols(chapter, weights) -> None:
    # the MPC calls its costs on MX symbols of one scenario's state and of the goal parameter
    x, u, g = ca.MX.sym("x", 4), ca.MX.sym("u", 2), ca.MX.sym("g")
    stage, terminal = agents.rlmpc_costs(weights)
    V = chapter["learned_value"](weights)
    both = ca.Function(
        "both",
        [x, u, g],
        [
            chapter["stage_cost"](x, g) - stage(x, u, {"g": g}),
            -V(x, g) - terminal(x, {"g": g}),
        ],
    )
    xs, gs = _states_and_goals(50, 2)
    for xi, gi in zip(xs, gs, strict=True):
        d_stage, d_terminal = both(xi, np.zeros(2), gi)
        assert abs(float(d_stage)) <= TOL and abs(float(d_terminal)) <= TOL


def test_the_chapters_stage_width_is_rlmpcs_default(chapter) -> None:
    width = inspect.signature(chapter["stage_cost"]).parameters["width"].default
    assert width == inspect.signature(agents.rlmpc).parameters["stage_width"].default
    assert width == inspect.signature(chapter["scenario_objective"]).parameters["width"].default


def test_rlmpc_solves_with_the_costs_of_rlmpc_costs(monkeypatch) -> None:
    # the agent the runs use takes its objective from rlmpc_costs and nothing else
    weights = train.load_cstr_run()["weights"]
    calls: dict[str, int] = {"stage": 0, "terminal": 0}
    asked: list[float] = []
    original = agents.rlmpc_costs

    def spy(w, stage_width=0.1, **kwargs):
        asked.append(stage_width)
        stage, terminal = original(w, stage_width, **kwargs)

        def counted_stage(x, u, p):
            calls["stage"] += 1
            return stage(x, u, p)

        def counted_terminal(x, p):
            calls["terminal"] += 1
            return terminal(x, p)

        return counted_stage, counted_terminal

    monkeypatch.setattr(agents, "rlmpc_costs", spy)
    agent = agents.rlmpc(weights, horizon=1)
    u = agent.act(cstr.X0_FIG3, cstr.GOAL_FIG3)
    assert asked == [0.1] and calls["stage"] > 0 and calls["terminal"] > 0
    assert agent.failures == 0 and np.all((u >= cstr.U_LOW) & (u <= cstr.U_HIGH))
