"""The learning-curve helpers of lgutils.core.plotting draw what their docstrings say."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from lgutils.core import plotting

RUNS = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 10.0], [1.0, 1.0, 1.0]])
X = [0, 1, 2]


def test_learning_curve_bands_the_kept_runs_and_takes_the_median_of_all() -> None:
    fig, ax = plotting.subplots()
    plotting.learning_curve(ax, X, RUNS, "k", "learner", band_runs=RUNS[:2])
    mean, median = ax.lines
    np.testing.assert_allclose(mean.get_ydata(), [1.0, 2.0, 6.0])  # runs 0 and 1 only
    np.testing.assert_allclose(median.get_ydata(), [1.0, 1.0, 2.0])  # all three runs
    assert median.get_linestyle() == "--"
    assert [line.get_label() for line in ax.lines] == [
        "learner (mean)",
        "learner (median, all runs)",
    ]
    upper = ax.collections[0].get_paths()[0].vertices[:, 1].max()
    assert upper == pytest.approx(6.0 + 2 * np.std([2.0, 10.0], ddof=1))
    plt.close(fig)


def test_reference_lines_and_model_mismatch() -> None:
    fig, (ax1, ax2) = plotting.subplots(1, 2)
    plotting.reference_lines(ax1, {"J*": (-0.5, "k", "-"), "MPC": (-0.7, "b", ":")})
    assert [line.get_ydata()[0] for line in ax1.lines] == [-0.5, -0.7]
    assert [line.get_linestyle() for line in ax1.lines] == ["-", ":"]
    plotting.model_mismatch(ax2, X, RUNS, 2 * RUNS)
    np.testing.assert_allclose(ax2.lines[0].get_ydata(), RUNS.mean(axis=0))
    np.testing.assert_allclose(ax2.lines[1].get_ydata(), 2 * RUNS.mean(axis=0))
    assert ax2.get_ylabel() == "model mismatch (Frobenius norm)"
    assert ax2.get_legend() is not None
    plt.close(fig)


def test_grouped_intervals_puts_each_series_beside_its_group() -> None:
    fig, ax = plotting.subplots()
    rows = [
        {"group": g, "series": s, "mean": m, "ci_low": m - 1.0, "ci_high": m + 2.0}
        for (g, s), m in {("A", "p"): 1.0, ("A", "q"): 2.0, ("B", "p"): 3.0}.items()
    ]
    plotting.grouped_intervals(ax, rows, ["A", "B"], ["p", "q"], ["r", "b"], spread=0.2)
    centres = [c.lines[0] for c in ax.containers]  # one errorbar container per row
    assert [float(line.get_xdata()[0]) for line in centres] == pytest.approx([-0.1, 0.1, 0.9])
    assert [float(line.get_ydata()[0]) for line in centres] == [1.0, 2.0, 3.0]
    bars = ax.containers[0].lines[2][0].get_segments()[0]  # the first row's interval
    np.testing.assert_allclose(bars[:, 1], [0.0, 3.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]
    with pytest.raises(ValueError, match="colors must have one entry per group"):
        plotting.grouped_intervals(ax, rows, ["A", "B"], ["p", "q"], ["r"])
    plt.close(fig)
