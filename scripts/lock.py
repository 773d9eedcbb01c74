"""Regenerate requirements.lock and environment.yml from the current .venv.

Usage (after installing or upgrading a package in .venv):

    .venv/bin/python scripts/lock.py

requirements.lock pins every installed distribution (lgutils itself and the benchmark-only
packages of benchmarks/requirements.txt excluded); environment.yml
gives conda users the same pins under Python 3.11. tests/test_conventions.py fails if the two
disagree.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Exact pins of every dependency of the book. Regenerate with: .venv/bin/python scripts/lock.py\n"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def benchmark_only() -> set[str]:
    """Names pinned in benchmarks/requirements.txt: optional, kept out of the book's lock."""
    path = ROOT / "benchmarks" / "requirements.txt"
    if not path.exists():
        return set()
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    return {_norm(ln.split("==")[0]) for ln in lines if "==" in ln}


def frozen() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    skip = {"pip", "lgutils"} | benchmark_only()
    keep = [ln for ln in out.splitlines() if "==" in ln and _norm(ln.split("==")[0]) not in skip]
    # torch's local label (+cpu) is dropped: "torch==2.13.0" takes the CPU build on these machines.
    keep = [ln.split("+")[0] if ln.lower().startswith("torch==") else ln for ln in keep]
    return sorted(keep, key=str.lower)


def main() -> None:
    pins = frozen()
    (ROOT / "requirements.lock").write_text(HEADER + "\n".join(pins) + "\n")
    env = [
        "# Conda users: conda env create -f environment.yml (same pins as requirements.lock)",
        "name: local-global-learning",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    env += [f"      - {p}" for p in pins]
    env += ["      - -e ."]
    (ROOT / "environment.yml").write_text("\n".join(env) + "\n")
    print(f"pinned {len(pins)} distributions")


if __name__ == "__main__":
    main()
