"""Regenerate requirements.lock and environment.yml from the current .venv.

Usage (after installing or upgrading a package in .venv):

    .venv/bin/python scripts/lock.py

requirements.lock pins every installed distribution (lgutils itself excluded); environment.yml
gives conda users the same pins under Python 3.11. tests/test_conventions.py fails if the two
disagree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Exact pins of every dependency of the book. Regenerate with: .venv/bin/python scripts/lock.py\n"


def frozen() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    keep = [
        ln
        for ln in out.splitlines()
        if "==" in ln and not ln.lower().startswith(("pip==", "lgutils=="))
    ]
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
