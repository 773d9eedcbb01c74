"""One figure style for the whole book.

Colour-blind-safe palette (Okabe & Ito), opaque white backgrounds so figures stay readable on the
book's dark theme, and fixed colours for the three kinds of agent (RL, MPC, RL+MPC) so that the
same agent has the same colour in every chapter.
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


# --- every run of a learning curve, thin, under their median (chapter 09) -------------------
__all__ += ["runs_and_median"]


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
