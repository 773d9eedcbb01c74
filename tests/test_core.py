"""Unit tests of the core helpers: validation, seeding, data artifacts, metrics, plotting."""

from __future__ import annotations

import json
import random
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lgutils.core import metrics, paths, plotting, seeding, validate

REPO = paths.repo_root()

# --- validate ---------------------------------------------------------------------------------


def test_as_array_names_argument_shape_and_expectation() -> None:
    with pytest.raises(ValueError, match=r"A must have shape \(2, 2\), got shape \(3,\)"):
        validate.as_array("A", [1, 2, 3], (2, 2))
    with pytest.raises(ValueError, match="x0 must be finite"):
        validate.as_array("x0", [1.0, np.nan])
    with pytest.raises(ValueError, match="Q must be numeric"):
        validate.as_array("Q", "abc")
    assert validate.as_matrix("R", 0.5).shape == (1, 1)
    assert validate.as_vector("u", 2.0, 1).shape == (1,)


def test_psd_checks() -> None:
    np.testing.assert_allclose(validate.check_psd("Q", np.diag([1.0, 0.0])), np.diag([1.0, 0.0]))
    with pytest.raises(ValueError, match="Q must be symmetric positive semidefinite"):
        validate.check_psd("Q", np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="R must be symmetric positive definite"):
        validate.check_pd("R", np.zeros((1, 1)))
    with pytest.raises(ValueError, match="Q must be symmetric"):
        validate.check_psd("Q", [[1.0, 2.0], [0.0, 1.0]])


def test_scalar_checks() -> None:
    assert validate.check_positive_int("horizon", 5) == 5
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
            validate.check_positive_int("horizon", bad)
    with pytest.raises(ValueError, match=r"gamma must lie in \(0, 1\]"):
        validate.check_in_open_interval("gamma", 1.5, 0, 1, closed_high=True)
    with pytest.raises(ValueError, match=r"eps must lie in \[0, 1\]"):
        validate.check_probability("eps", -0.1)
    assert validate.check_nonnegative("w_max", 0) == 0.0
    for bad in (-1e-12, np.inf, "a"):
        with pytest.raises(ValueError, match="w_max must"):
            validate.check_nonnegative("w_max", bad)


# --- seeding ----------------------------------------------------------------------------------


def test_seed_everything_reproduces_all_generators() -> None:
    def draw() -> tuple:
        rng = seeding.seed_everything(7)
        return rng.normal(), np.random.rand(), random.random()  # noqa: NPY002, torch.rand(1).item()

    assert draw() == draw()
    assert draw() != (
        seeding.seed_everything(8).normal(),
        np.random.rand(),  # noqa: NPY002
        random.random(),
        torch.rand(1).item(),
    )


def test_spawn_seeds_are_distinct_and_prefix_stable() -> None:
    s10 = seeding.spawn_seeds(0, 10)
    assert len(set(s10)) == 10
    assert seeding.spawn_seeds(0, 3) == s10[:3]
    with pytest.raises(ValueError, match="seed"):
        seeding.spawn_seeds(-1, 3)


# --- paths: artifacts and manifest ------------------------------------------------------------


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    (tmp_path / "weights.npz").write_bytes(b"not really weights")
    paths.record_artifact(
        tmp_path / "weights.npz", command="python make.py --seed 3", seed=3, root=tmp_path
    )
    return tmp_path


def test_artifact_roundtrip_and_manifest_content(data_root: Path) -> None:
    path = paths.data_path("weights.npz", root=data_root)
    entry = paths.load_manifest(data_root)["weights.npz"]
    import hashlib

    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["bytes"] == len(b"not really weights")
    assert entry["seed"] == 3 and entry["versions"]["numpy"] == np.__version__


def test_corrupted_artifact_names_file_and_command(data_root: Path) -> None:
    (data_root / "weights.npz").write_bytes(b"tampered")
    with pytest.raises(paths.CorruptArtifactError, match=r"weights\.npz.*python make\.py --seed 3"):
        paths.data_path("weights.npz", root=data_root)


def test_missing_artifact_names_command(data_root: Path) -> None:
    (data_root / "weights.npz").unlink()
    with pytest.raises(paths.MissingArtifactError, match="python make.py --seed 3"):
        paths.data_path("weights.npz", root=data_root)
    with pytest.raises(paths.MissingArtifactError, match="not listed"):
        paths.data_path("other.npz", root=data_root)


def test_outside_a_checkout_artifacts_are_fetched_and_verified(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On Colab (no checkout) data_path fetches an artifact and its manifest, then verifies it."""
    cache = tmp_path / "cache"
    monkeypatch.setattr(paths, "DOWNLOAD_CACHE", cache)
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path / "elsewhere")
    monkeypatch.delenv("LGUTILS_DATA_DIR", raising=False)
    monkeypatch.setenv("LGUTILS_DATA_URL", (REPO / "data").as_uri())
    assert paths.data_dir() == cache
    name = "cstr_sac/weights.npz"
    assert paths.sha256(paths.data_path(name)) == paths.load_manifest(REPO / "data")[name]["sha256"]
    monkeypatch.setenv("LGUTILS_DATA_URL", (tmp_path / "nowhere").as_uri())
    with pytest.raises(paths.MissingArtifactError, match="could not be fetched"):
        paths.data_path("cstr_sac/provenance.json")


def test_every_data_file_is_in_the_manifest_and_verifies() -> None:
    root = paths.repo_root() / "data"
    listed = set(paths.load_manifest(root))
    on_disk = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }  # hidden folders are a training run's transient checkpoints
    on_disk -= {paths.MANIFEST_NAME, "README.md"}
    assert on_disk == listed
    for name in listed:
        paths.data_path(name, root=root)


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_merge_and_load(tmp_path: Path) -> None:
    metrics.record("01_x", {"a.b": np.float64(1.5), "a.list": np.arange(3)}, directory=tmp_path)
    metrics.record(
        "01_x", {"a.flag": np.bool_(True), "a.obj": {"k": np.int64(2)}}, directory=tmp_path
    )
    doc = json.loads((tmp_path / "01_x.json").read_text())
    assert doc == {"a.b": 1.5, "a.flag": True, "a.list": [0, 1, 2], "a.obj": {"k": 2}}
    assert metrics.load("01_x", directory=tmp_path, keys=["a.b"])["a.list"] == [0, 1, 2]


def test_metrics_refuse_bad_values_and_missing_files(tmp_path: Path) -> None:
    metrics.record("01_x", {"a": float("nan"), "l": np.array([1.0, np.inf, -np.inf])}, tmp_path)
    assert metrics.load("01_x", directory=tmp_path) == {"a": None, "l": [1.0, None, None]}
    with pytest.raises(ValueError, match="must be a number"):
        metrics.record("01_x", {"a": object()}, directory=tmp_path)
    with pytest.raises(metrics.MissingMetricsError, match="chapters/02_y.ipynb"):
        metrics.load("02_y", directory=tmp_path)
    metrics.record("01_x", {"a": 1}, directory=tmp_path)
    with pytest.raises(metrics.MissingMetricsError, match="lacks the keys"):
        metrics.load("01_x", directory=tmp_path, keys=["b"])


def test_metrics_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LGUTILS_METRICS_DIR", str(tmp_path))
    assert metrics.metrics_dir() == tmp_path


# --- plotting ---------------------------------------------------------------------------------


def test_style_gives_opaque_figures(tmp_path: Path) -> None:
    fig, ax = plotting.subplots()
    ax.plot([0, 1], [0, 1], color=plotting.agent_color("RL+MPC"))
    fig.savefig(tmp_path / "f.png")
    plt.close(fig)
    image = plt.imread(tmp_path / "f.png")
    assert image.shape[2] == 4 and np.all(image[..., 3] == 1.0)  # no transparent pixel
    with pytest.raises(ValueError, match="name must be one of"):
        plotting.agent_color("PPO")


def test_band_mean_and_std() -> None:
    runs = np.array([[0.0, 1.0], [2.0, 3.0]])
    fig, ax = plotting.subplots()
    plotting.band(ax, [0, 1], runs, "k", "x", median=True)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.0, 2.0])
    upper = ax.collections[0].get_paths()[0].vertices[:, 1].max()
    assert upper == pytest.approx(2.0 + 2 * np.std([1.0, 3.0], ddof=1))
    plt.close(fig)
    with pytest.raises(ValueError, match=r"runs must have shape \(n_runs, 3\)"):
        plotting.band(ax, [0, 1, 2], runs, "k", "x")


def test_runs_and_median_draw_every_run_and_the_median() -> None:
    runs = np.array([[1.0, 5.0], [2.0, 1.0], [9.0, 3.0]])
    fig, ax = plotting.subplots()
    plotting.runs_and_median(ax, [0, 1], runs, "k", "PPO")
    assert len(ax.lines) == 4  # three runs, then the median
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [2.0, 1.0])
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), [2.0, 3.0])  # the median, by hand
    assert [h.get_label() for h in ax.get_legend_handles_labels()[0]] == ["PPO (median)"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"runs must have shape \(n_runs, 3\)"):
        plotting.runs_and_median(ax, [0, 1, 2], runs, "k", "x")


def test_state_profiles_draw_each_state_its_box_and_the_target() -> None:
    xs = np.array([[0.0, 1.0], [0.5, 3.0], [1.0, 2.0]])
    fig = plotting.state_profiles(
        {"MPC": xs, "other": 2 * xs}, ["a [m]", "b [s]"], [0.0, 1.5], [0.8, 2.5], 0.1, (1, 2.2)
    )
    ax_a, ax_b = fig.axes
    np.testing.assert_allclose(ax_b.lines[1].get_ydata(), [2.0, 6.0, 4.0])
    np.testing.assert_allclose(ax_b.lines[1].get_xdata(), [0.0, 0.1, 0.2])
    assert ax_a.lines[0].get_color() == plotting.agent_color("MPC")
    box = ax_b.patches[0]  # the grey band of b's constraints, in data units
    assert (box.get_y(), box.get_y() + box.get_height()) == pytest.approx((1.5, 2.5))
    np.testing.assert_allclose(ax_b.lines[-1].get_ydata(), [2.2, 2.2])  # the target
    assert ax_a.get_ylabel() == "a [m]" and ax_b.get_xlabel() == "time [h]"
    plt.close(fig)
    with pytest.raises(ValueError, match=r"states\['x'\] must have shape \(T \+ 1, 2\)"):
        plotting.state_profiles({"x": np.ones((3, 3))}, ["a", "b"], [0, 0], [1, 1], 0.1)


def test_exact_curve_is_thick_pale_and_checks_lengths() -> None:
    fig, ax = plotting.subplots()
    plotting.exact_curve(ax, [0.0, 1.0], [2.0, 3.0], "exact")
    plotting.exact_curve(ax, [0.0, 1.0], [0.0, 0.0], "other", color="#0072B2")
    exact, other = ax.lines
    np.testing.assert_array_equal(exact.get_ydata(), [2.0, 3.0])
    assert exact.get_linewidth() == 3 and exact.get_alpha() == 0.4
    assert exact.get_color() == plotting.agent_color("LQR") and other.get_color() == "#0072B2"
    assert exact.get_label() == "exact"
    with pytest.raises(ValueError, match="x and y must have the same length, got 2 and 3"):
        plotting.exact_curve(ax, [0.0, 1.0], [1.0, 2.0, 3.0], "x")
    plt.close(fig)


def test_limits_draw_constraint_lines_with_one_legend_entry() -> None:
    fig, ax = plotting.subplots()
    plotting.limits(ax, [-1.0, 1.0], label="input bounds")
    plotting.limits(ax, [0.25], axis="x", ls=":")
    low, high, budget = ax.lines
    np.testing.assert_allclose(low.get_ydata(), [-1.0, -1.0])
    np.testing.assert_allclose(high.get_ydata(), [1.0, 1.0])
    np.testing.assert_allclose(budget.get_xdata(), [0.25, 0.25])
    assert low.get_linestyle() == "--" and budget.get_linestyle() == ":"
    assert low.get_color() == budget.get_color() == plotting.PALETTE["vermillion"]
    assert ax.get_legend_handles_labels()[1] == ["input bounds"]  # one entry for both bounds
    plt.close(fig)
    with pytest.raises(ValueError, match="axis must be 'x' or 'y'"):
        plotting.limits(ax, [0.0], axis="z")
