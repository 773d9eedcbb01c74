"""Claims of paper Sec. IV.A on the full-fidelity metrics of chapter 06 (practical requirements
of local optimisation).

Skipped until `make book` has written _build/metrics/06_practical_optimisation.json.
"""

from __future__ import annotations

import pytest
from conftest import book_metrics

pytestmark = pytest.mark.claims


def test_practical_measurements_are_consistent() -> None:
    m = book_metrics("06_practical_optimisation")
    its = m["practical.warm_start_median_iterations"]
    assert its["primal-dual warm"] < its["cold"]
    widths = m["practical.nn_width_median_ms"]
    widest = max(widths, key=int)
    assert widths[widest] > 2 * m["practical.no_nn_median_ms"]  # a wide network dominates
    h_its = m["practical.horizon_median_iterations"]
    assert max(h_its.values()) <= 2 * min(h_its.values())  # iterations barely depend on H
