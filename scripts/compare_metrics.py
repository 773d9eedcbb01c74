"""Compare the metrics of two builds, every non-timing value, for changes that should not move results.

Usage::

    cp -r _build/metrics /tmp/metrics-before   # full build before the change
    ...                                          # the change, then a full build
    python scripts/compare_metrics.py /tmp/metrics-before _build/metrics [--rtol 1e-9]

Each key of each ``<notebook>.json`` is reported as identical (bit for bit), close (within
``--rtol``, relative to the larger magnitude, element by element for lists and tables), or
different; keys that hold timings (their name says seconds, milliseconds, wall time, speed-up,
throughput or a time ratio, or they are derived from timings) are skipped, and so are the
timing fields inside nested values. Exits with status 1 when a value differs, a key is
missing on either side, or a value changed type.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

TIMING = re.compile(
    r"(_s$|_ms$|_ms_|seconds|wall_time|speedup|throughput|time_ratio|versions$"
    # derived from timings: log-log slopes of solve times, the share of solves within a time
    # budget, ratios of two timings (chapter 06's sensitivity cost), a display table that
    # quotes timings next to other metrics
    r"|loglog_slope|within_budget|cost_ratio|^table$)"
)
#: Keys inside a nested value that hold timings (e.g. ``horizon_sweep[H].median_step_time``).
NESTED_TIMING = re.compile(r"(time$|_s$|_ms$|seconds)")


def is_timing(key: str) -> bool:
    """Whether a metric key names a timing (or the package versions), which may change."""
    return bool(TIMING.search(key.split(".", 1)[-1]))


def compare(a: object, b: object, rtol: float) -> tuple[str, float]:
    """``("identical" | "close" | "different", largest relative difference)``."""
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return "different", math.inf
    if isinstance(a, dict):
        if set(a) != set(b):
            return "different", math.inf
        parts = [compare(a[k], b[k], rtol) for k in a if not NESTED_TIMING.search(str(k))]
    elif isinstance(a, list):
        if len(a) != len(b):
            return "different", math.inf
        parts = [compare(x, y, rtol) for x, y in zip(a, b, strict=True)]
    elif isinstance(a, (int, float)) and not isinstance(a, bool):
        if a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
            return "identical", 0.0
        scale = max(abs(a), abs(b))
        rel = abs(a - b) / scale if scale > 0 and math.isfinite(scale) else math.inf
        return ("close" if rel <= rtol else "different"), rel
    else:
        return ("identical", 0.0) if a == b else ("different", math.inf)
    worst = max((p[1] for p in parts), default=0.0)
    kinds = {p[0] for p in parts}
    kind = "different" if "different" in kinds else "close" if "close" in kinds else "identical"
    return kind, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-9)
    args = parser.parse_args(argv)
    bad = 0
    counts = {"identical": 0, "close": 0, "different": 0, "timing": 0}
    names = sorted(
        {p.name for p in args.before.glob("*.json")} | {p.name for p in args.after.glob("*.json")}
    )
    for name in names:
        fa, fb = args.before / name, args.after / name
        if not (fa.exists() and fb.exists()):
            print(f"{name}: only in {'before' if fa.exists() else 'after'}")
            bad += 1
            continue
        a, b = json.loads(fa.read_text()), json.loads(fb.read_text())
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                print(f"{name} {key}: only {'before' if key in a else 'after'}")
                bad += 1
            elif is_timing(key):
                counts["timing"] += 1
            else:
                kind, rel = compare(a[key], b[key], args.rtol)
                counts[kind] += 1
                if kind != "identical":
                    print(f"{name} {key}: {kind} (largest relative difference {rel:.3g})")
                bad += kind == "different"
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
