"""The exploration steps written out in chapter 10 pick the same actions as lgutils.exploration.

The chapter writes one step of each strategy (Gaussian noise, epsilon-greedy, cost perturbation,
ensemble bonus) and of the dual agent (its action and its belief update); ``explore`` and
``dual_control`` run the library's versions at scale. On seeded cases both must pick the same
action and draw the same random numbers, so this test fails if either side changes.
"""

from __future__ import annotations

import numpy as np
import pytest
from _chapter_code import chapter_functions

from lgutils.exploration import dual, learning, speed_limit, strategies

CHAPTER = chapter_functions(
    "10_exploration",
    "gaussian_step",
    "epsilon_greedy_step",
    "perturbed_step",
    "ensemble_step",
    "belief_update",
    "dual_step",
)
PROB = speed_limit.speed_limit_problem()
#: on the tightened limit, below it, and above the limit (after a gust)
STATES = [np.array([-1.0, 0.48]), np.array([-1.8, 0.1]), np.array([-0.4, 0.55])]
SEEDS = [0, 1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def mpc():
    return strategies.exploration_mpc(PROB, horizon=3)


@pytest.fixture(scope="module")
def ensemble():
    members = [
        learning.value_weight(H0, 2)
        for H0 in learning.ensemble_prior(PROB, 4, np.random.default_rng(7))
    ]
    return strategies.exploration_mpc(PROB, horizon=3, n_members=4), members


def _both(mpc, chapter_call, library_call, seed):
    """The actions of both sides from the same seed, each MPC solve starting cold, and the
    random number each generator draws next (the same if both drew as many numbers)."""
    out = []
    for call in (chapter_call, library_call):
        rng = np.random.default_rng(seed)
        mpc.reset_warm_start()
        out.append((np.asarray(call(rng)), rng.random()))
    return out


#: strategy -> (the chapter's step, the library's step), both called as f(mpc, phi, x, rng)
RANDOM_STEPS = {
    "gaussian": (
        lambda mpc, phi, x, rng: CHAPTER["gaussian_step"](mpc, phi, x, 0.3, PROB.u_max, rng),
        lambda mpc, phi, x, rng: strategies.gaussian_action(mpc, phi, x, 0.3, PROB.u_max, rng),
    ),
    "epsilon": (
        lambda mpc, phi, x, rng: CHAPTER["epsilon_greedy_step"](mpc, phi, x, 0.5, PROB.u_max, rng),
        lambda mpc, phi, x, rng: strategies.epsilon_greedy_action(
            mpc, phi, x, 0.5, PROB.u_max, rng
        ),
    ),
    "perturbed": (
        lambda mpc, phi, x, rng: CHAPTER["perturbed_step"](mpc, phi, x, PROB.Q, PROB.R, 1.0, rng),
        lambda mpc, phi, x, rng: strategies.perturbed_action(mpc, phi, x, PROB, 1.0, rng),
    ),
}


@pytest.mark.parametrize("strategy", RANDOM_STEPS)
@pytest.mark.parametrize("x", STATES, ids=["on-limit", "below", "above"])
def test_random_steps(mpc, strategy, x) -> None:
    chapter, library = RANDOM_STEPS[strategy]
    phi = strategies.greedy_parameters(np.diag([2.0, 0.5]))
    for seed in SEEDS:
        (u_ch, next_ch), (u_lib, next_lib) = _both(
            mpc,
            lambda rng: chapter(mpc, phi, x, rng),
            lambda rng: library(mpc, phi, x, rng),
            seed,
        )
        np.testing.assert_array_equal(u_ch, u_lib)
        assert next_ch == next_lib


def test_the_seeds_explore_and_exploit_with_epsilon_one_half() -> None:
    """Both branches of epsilon-greedy are among the compared cases."""
    explored = [np.random.default_rng(seed).random() < 0.5 for seed in SEEDS]
    assert any(explored) and not all(explored)


@pytest.mark.parametrize("x", STATES, ids=["on-limit", "below", "above"])
def test_ensemble_step(ensemble, x) -> None:
    mpc, members = ensemble
    phi = strategies.greedy_parameters(PROB.Q)
    for beta in (0.0, 2.0):
        (u_ch, _), (u_lib, _) = _both(
            mpc,
            lambda rng, beta=beta: CHAPTER["ensemble_step"](mpc, phi, x, members, beta),
            lambda rng, beta=beta: strategies.ensemble_action(mpc, phi, x, members, beta),
            0,
        )
        np.testing.assert_array_equal(u_ch, u_lib)


def test_the_bonus_changes_the_action(ensemble) -> None:
    """The case above is not trivial: the bonus moves the action."""
    mpc, members = ensemble
    phi, x = strategies.greedy_parameters(PROB.Q), STATES[1]
    mpc.reset_warm_start()
    u0 = CHAPTER["ensemble_step"](mpc, phi, x, members, 0.0)
    mpc.reset_warm_start()
    assert abs(CHAPTER["ensemble_step"](mpc, phi, x, members, 2.0) - u0)[0] > 1e-3


def test_dual_step() -> None:
    rng = np.random.default_rng(8)
    x, mean = rng.normal(0, 1, 40), rng.normal(0, 0.7, 40)
    var = rng.uniform(0.001, 1.5, 40)
    for eta in (0.0, 0.05, 0.3, 3.0):
        ours = [
            CHAPTER["dual_step"](*args, 0.1, 0.1, 1.0, eta)
            for args in zip(x, mean, var, strict=True)
        ]
        np.testing.assert_allclose(
            ours, dual.dual_action(x, mean, var, 0.1, 0.1, 1.0, eta), rtol=0, atol=1e-9
        )


def test_belief_update() -> None:
    rng = np.random.default_rng(9)
    mean, var, u, y = (
        rng.normal(size=5),
        rng.uniform(0.1, 2, 5),
        rng.normal(size=5),
        rng.normal(size=5),
    )
    ours = CHAPTER["belief_update"](mean, var, u, y, 0.1)
    theirs = dual.posterior_update(mean, var, u, y, 0.1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14)
