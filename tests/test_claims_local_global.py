"""Claims of paper Sec. III.B (Figs. 1-2) on the full-fidelity metrics of chapter 05 (local
actions and global optimality).

Skipped until `make book` has written _build/metrics/05_local_global.json.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims


def test_local_plan_moves_away_and_residual_ranks_returns() -> None:
    """(The notebook asserts that the plan arrives, that the wall holds, that the exact terminal
    cost has zero residual and that policy iteration never gets worse.)"""
    m = book_metrics("05_local_global")
    # the plan moves well away from the goal before it arrives; the myopic agent never does
    assert m["localglobal.plan_max_distance"] > m["localglobal.plan_initial_distance"] + 0.2
    assert m["localglobal.myopic_final_distance"] > 0.5
    assert m["localglobal.residual_return_spearman"] < -0.8
    # policy iteration by fitted MPC values ends at the Riccati solution and at the LQR return
    assert m["localglobal.policy_iteration_final_P_rel_gap"] < 1e-8
    returns = np.asarray(m["localglobal.policy_iteration_returns"])
    assert returns[-1] == pytest.approx(m["localglobal.J_lqr"], rel=1e-6)
