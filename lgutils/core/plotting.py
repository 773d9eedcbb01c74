"""One figure style for the whole book, and the figures that recur in several chapters.

Colour-blind-safe palette (Okabe & Ito), opaque white backgrounds so figures stay readable on the
book's dark theme, and fixed colours for the three kinds of agent (RL, MPC, RL+MPC) so that the
same agent has the same colour in every chapter. The recurring figures: a band of runs
(:func:`band`, :func:`learning_curve`), the exact answer drawn pale under the learned ones
(:func:`exact_curve`), horizontal references (:func:`reference_lines`), state profiles inside
their constraint box (:func:`state_profiles`), a model's mismatch (:func:`model_mismatch`), a
forbidden region beyond a limit (:func:`forbidden_region`) and means over runs
(:func:`mean_bars`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "PALETTE",
    "AGENT_COLORS",
    "use_style",
    "agent_color",
    "band",
    "subplots",
    "state_profiles",
    "learning_curve",
    "reference_lines",
    "model_mismatch",
    "forbidden_region",
    "mean_bars",
    "exact_curve",
    "limits",
    "runs_and_median",
    "grouped_intervals",
]

#: Okabe-Ito colour-blind-safe palette.
PALETTE: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}

#: Colours of the agents, identical in every chapter.
AGENT_COLORS: dict[str, str] = {
    "RL": PALETTE["vermillion"],
    "MPC": PALETTE["blue"],
    "RL+MPC": PALETTE["green"],
    "LQR": PALETTE["black"],
    "optimal": PALETTE["black"],
}

_STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "figure.figsize": (6.4, 4.0),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE.values())),
    "legend.frameon": False,
    "font.size": 10,
}


def use_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a chapter)."""
    mpl.rcParams.update(_STYLE)


def agent_color(name: str) -> str:
    """Colour of an agent (``"RL"``, ``"MPC"``, ``"RL+MPC"``, ``"LQR"``, ``"optimal"``)."""
    try:
        return AGENT_COLORS[name]
    except KeyError:
        raise ValueError(f"name must be one of {sorted(AGENT_COLORS)}, got {name!r}") from None


def subplots(*args, **kwargs) -> tuple[plt.Figure, np.ndarray | plt.Axes]:
    """:func:`matplotlib.pyplot.subplots` with the book style and a constrained layout."""
    use_style()
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)


def band(
    ax: plt.Axes,
    x: Sequence[float],
    runs: np.ndarray,
    color: str,
    label: str,
    k: float = 2.0,
    median: bool = False,
) -> None:
    """Plot the mean of ``runs`` (shape ``(n_runs, len(x))``) with a +-k sample-std band.

    With ``median=True`` the median is drawn too, dashed.
    """
    runs = np.asarray(runs, dtype=float)
    if runs.ndim != 2 or runs.shape[1] != len(x):
        raise ValueError(f"runs must have shape (n_runs, {len(x)}), got {runs.shape}")
    mean = runs.mean(axis=0)
    std = runs.std(axis=0, ddof=1) if runs.shape[0] > 1 else np.zeros_like(mean)
    ax.plot(x, mean, color=color, label=f"{label} (mean)")
    ax.fill_between(x, mean - k * std, mean + k * std, color=color, alpha=0.2, linewidth=0)
    if median:
        ax.plot(x, np.median(runs, axis=0), color=color, linestyle="--", label=f"{label} (median)")


# --- state profiles with their constraint box (chapter 07's Fig. 3) ---------------------------


def state_profiles(
    states: Mapping[str, Any],
    labels: Sequence[str],
    low: Sequence[float],
    high: Sequence[float],
    t_step: float,
    target: tuple[int, float] | None = None,
    target_label: str = "target",
    axes: Any = None,
) -> plt.Figure:
    """Each state against time in its own panel, one line per agent, the allowed range shaded.

    Parameters
    ----------
    states : dict
        Agent name -> states of shape (T + 1, n); agents named as in :data:`AGENT_COLORS` get
        their colour.
    labels : sequence of n str
        Axis label of each state, with its unit.
    low, high : sequence of n float
        The constraint box, drawn as a grey band in each panel.
    t_step : float
        Sampling time (the time axis is labelled in hours).
    target : (int, float), optional
        ``(index, value)``: a set-point drawn dashed in that state's panel.
    target_label : str
        Its legend entry (followed by `` = value``).
    axes : array of n matplotlib axes, optional
        Created (stacked, shared time axis) with :func:`subplots` when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(labels)
    if len(low) != n or len(high) != n:
        raise ValueError(
            f"low and high must have {n} entries (one per label), got {len(low)}, {len(high)}"
        )
    if axes is None:
        fig, axes = subplots(n, 1, figsize=(6.4, 1.9 * n), sharex=True)
    else:
        fig = axes[0].figure
    for j, ax in enumerate(axes):
        ax.axhspan(
            low[j], high[j], color="0.85", alpha=0.6, lw=0, label="constraints" if j == 0 else None
        )
        for name, xs in states.items():
            xs = np.asarray(xs, dtype=float)
            if xs.ndim != 2 or xs.shape[1] != n:
                raise ValueError(
                    f"states[{name!r}] must have shape (T + 1, {n}), got shape {xs.shape}"
                )
            color = AGENT_COLORS.get(name)
            ax.plot(
                np.arange(xs.shape[0]) * t_step,
                xs[:, j],
                color=color,
                label=name if j == 0 else None,
            )
        ax.set_ylabel(labels[j])
    if target is not None:
        j, value = target
        axes[j].axhline(value, color="k", ls="--", lw=1, label=f"{target_label} = {value}")
        axes[j].legend(loc="lower right", fontsize=8)
    axes[-1].set_xlabel("time [h]")
    axes[0].legend(loc="upper right", fontsize=8, ncols=2)
    return fig


# --- learning curves of many runs (case study B: chapters 08 and 09) ------------------------------


def learning_curve(
    ax: plt.Axes,
    x: Sequence[float],
    runs: np.ndarray,
    color: str,
    label: str,
    *,
    band_runs: np.ndarray | None = None,
    k: float = 2.0,
) -> None:
    """A heavy-tailed learning curve: a mean +- k std band and the median of all runs, dashed.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x : sequence of float, length E
        Update (or episode) of each point.
    runs : array_like, shape (n_runs, E)
        The curves of all runs (e.g. returns, reward units); their median is drawn.
    color, label : str
        Colour and legend label of the learner.
    band_runs : array_like, shape (n_kept, E), optional
        The runs the band is taken over (default ``runs``), e.g. those that never blew up.
    k : float
        Half-width of the band in sample standard deviations.
    """
    runs = np.asarray(runs, dtype=float)
    band(ax, x, runs if band_runs is None else band_runs, color, label, k)
    ax.plot(
        x, np.median(runs, axis=0), color=color, linestyle="--", label=f"{label} (median, all runs)"
    )


def reference_lines(ax: plt.Axes, references: dict[str, tuple[float, str, str]]) -> None:
    """Horizontal reference lines, ``{label: (value, colour, line style)}``, e.g. J(theta*)."""
    for label, (value, color, linestyle) in references.items():
        ax.axhline(value, color=color, linestyle=linestyle, label=label)


def model_mismatch(
    ax: plt.Axes, x: Sequence[float], mismatch_A: np.ndarray, mismatch_B: np.ndarray, k: float = 2.0
) -> None:
    """Mean +- k std bands of a learned model's mismatch ``||A_phi - A||_F``, ``||B_phi - B||_F``.

    ``mismatch_A`` and ``mismatch_B`` have shape (n_runs, len(x)); the axes get their labels
    (x: the update E) and a legend.
    """
    band(ax, x, mismatch_A, PALETTE["blue"], r"$\|A_\phi - A\|_F$", k)
    band(ax, x, mismatch_B, PALETTE["orange"], r"$\|B_\phi - B\|_F$", k)
    ax.set_xlabel("update E")
    ax.set_ylabel("model mismatch (Frobenius norm)")
    ax.legend(loc="upper left", fontsize=8)


# --- exploration (chapter 10): a forbidden region above a limit, bars of means over runs ------


def forbidden_region(
    ax: plt.Axes,
    limit: float,
    edge: float,
    label: str | None = None,
    lw: float | None = None,
) -> None:
    """Draw an upper limit ``y = limit`` and shade the forbidden band ``limit < y < edge``.

    The limit (a constraint such as a speed limit, in the units of the y axis) is a line in the
    violation colour (vermillion), labelled ``label`` for the legend; the band above it is
    shaded lightly. ``lw`` is the line's width in points (default: the style's).
    """
    color = PALETTE["vermillion"]
    ax.axhspan(limit, edge, color=color, alpha=0.12)
    ax.axhline(limit, color=color, label=label, **({} if lw is None else {"lw": lw}))


def mean_bars(
    ax: plt.Axes,
    groups: Sequence[Sequence[float]],
    colors: Sequence[str],
    labels: Sequence[str],
    log: bool = False,
) -> None:
    """One bar per group at the mean of its values, with every value drawn as a dot on it.

    ``groups[j]`` holds the values of group ``j`` (e.g. one per seed or repetition), drawn at
    ``x = j`` in ``colors[j]`` and labelled ``labels[j]`` on the x axis; ``log`` sets a
    logarithmic y axis.
    """
    for j, (values, color) in enumerate(zip(groups, colors, strict=True)):
        values = np.asarray(values, dtype=float)
        ax.bar(j, values.mean(), color=color, alpha=0.6)
        ax.plot(np.full(len(values), j), values, "o", ms=4, color=color)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(labels, fontsize=8)
    if log:
        ax.set_yscale("log")


# --- exact answers, drawn under the learned ones -----------------------------------------------


def exact_curve(
    ax: plt.Axes,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    label: str,
    color: str | None = None,
) -> None:
    """Draw the exact answer a computed curve is checked against: a thick, pale line.

    The foundations chapters draw the LQR policy, the analytic ``Q*`` or another closed form
    this way and the learned or grid answer thin on top of it, so that agreement shows as a
    thin line inside a thick one.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x, y : array_like, same length
        The curve (in the axes' units).
    label : str
        Legend entry.
    color : str, optional
        Line colour (default the colour of ``"LQR"`` and ``"optimal"``, black).
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    ax.plot(
        x, y, color=agent_color("LQR") if color is None else color, lw=3, alpha=0.4, label=label
    )


# --- constraint limits as lines (chapters 04 and 06) -------------------------------------------


def limits(
    ax: plt.Axes,
    values: Sequence[float],
    label: str | None = None,
    axis: str = "y",
    ls: str = "--",
) -> None:
    """Constraint limits (input bounds, a state floor, a time budget) as lines in vermillion.

    Parameters
    ----------
    ax : matplotlib axes
    values : sequence of float
        Where the limits are, in the units of the axis.
    label : str, optional
        Legend entry, given to the first line only.
    axis : {"y", "x"}
        ``"y"``: horizontal lines at ``y = value``; ``"x"``: vertical lines at ``x = value``.
    ls : str
        Line style.
    """
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    line = ax.axhline if axis == "y" else ax.axvline
    for i, value in enumerate(values):
        line(float(value), ls=ls, color=PALETTE["vermillion"], label=label if i == 0 else None)


# --- every run of a learning curve, thin, under their median (chapter 09) ----------------------


def runs_and_median(
    ax: plt.Axes,
    x: Sequence[float],
    runs: np.ndarray,
    color: str,
    label: str,
    *,
    lw: float = 0.6,
    alpha: float = 0.35,
) -> None:
    """Each run as a thin, faint line and the median of the runs as a thick line.

    For a few runs whose spread matters more than a mean (heavy tails, a log scale), where a
    mean +- std band (:func:`band`) would hide the single runs.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x : sequence of float, length E
        Abscissa of each point (e.g. episodes used).
    runs : array_like, shape (n_runs, E)
        One curve per run (e.g. the regret of each run, reward units).
    color, label : str
        Colour of the learner; the median's legend entry is ``"<label> (median)"``, the runs
        get none.
    lw, alpha : float
        Line width and opacity of the single runs.
    """
    runs = np.asarray(runs, dtype=float)
    if runs.ndim != 2 or runs.shape[1] != len(x):
        raise ValueError(f"runs must have shape (n_runs, {len(x)}), got {runs.shape}")
    for row in runs:
        ax.plot(x, row, color=color, lw=lw, alpha=alpha)
    ax.plot(x, np.median(runs, axis=0), color=color, lw=2, label=f"{label} (median)")


# --- means and confidence intervals of several agents under several conditions (chapter 07) ---


def grouped_intervals(
    ax: plt.Axes,
    rows: Sequence[Mapping[str, Any]],
    groups: Sequence[str],
    series: Sequence[str],
    colors: Sequence[str],
    markers: str = "os^Dv",
    spread: float = 0.22,
) -> None:
    """Means with their confidence intervals: one cluster per group, one marker per series.

    ``rows`` are dicts with ``group``, ``series``, ``mean``, ``ci_low`` and ``ci_high`` (e.g.
    agent, plant and :func:`lgutils.value_function_mpc.evaluation.summarize`'s numbers of one
    metric); each is drawn at ``x = index of its group`` (offset by ``spread`` per series) in
    the group's colour from ``colors`` and its series' marker, labelled by series in the legend.
    """
    if len(colors) != len(groups):
        raise ValueError(f"colors must have one entry per group ({len(groups)}), got {len(colors)}")
    for r in rows:
        i, j = list(groups).index(r["group"]), list(series).index(r["series"])
        x = i + spread * (j - (len(series) - 1) / 2)
        err = [[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]]
        label = r["series"] if i == 0 else None
        ax.errorbar(x, r["mean"], yerr=err, fmt=markers[j], color=colors[i], label=label)
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
