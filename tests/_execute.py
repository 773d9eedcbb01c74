"""Execute a chapter notebook with papermill, the way the tests and the book build do."""

from __future__ import annotations

import time
from pathlib import Path

import papermill
from _conventions import ROOT

EXECUTED = ROOT / "_build" / "executed"  # git-ignored: the executed notebooks of the last test run


def execute(
    notebook: Path, parameters: dict, out_dir: Path = EXECUTED, timeout: int = 900
) -> tuple[Path, float]:
    """Run ``notebook`` with ``parameters`` in its own folder; return the output path and seconds.

    Raises ``papermill.PapermillExecutionError`` if a cell raises.
    """
    out = (
        out_dir / notebook.relative_to(notebook.parents[1])
        if notebook.parent.name == "chapters"
        else out_dir / notebook.name
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(notebook.parent),
        execution_timeout=timeout,
        progress_bar=False,
        log_output=False,
    )
    return out, time.perf_counter() - t0
