"""One figure style for the whole book.

Colour-blind-safe palette (Okabe & Ito), opaque white backgrounds so figures stay readable on the
book's dark theme, and fixed colours for the three kinds of agent (RL, MPC, RL+MPC) so that the
same agent has the same colour in every chapter.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["PALETTE", "AGENT_COLORS", "use_style", "agent_color", "band", "subplots"]

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


# --- exploration (chapter 10): a forbidden region above a limit, bars of means over runs ------
__all__ += ["forbidden_region", "mean_bars"]


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
