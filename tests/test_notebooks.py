"""Execute every notebook of the table of contents with its smoke parameters (papermill)."""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest
from _conventions import ROOT, smoke_parameters, toc_notebooks
from _execute import execute
from conftest import NOTEBOOK_TIMES

SMOKE = smoke_parameters()


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", toc_notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_with_smoke_parameters(notebook: Path) -> None:
    rel = notebook.relative_to(ROOT).as_posix()
    out, seconds = execute(notebook, SMOKE.get(rel) or {})
    NOTEBOOK_TIMES[rel] = seconds
    nb = json.loads(out.read_text())
    errors = [
        o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []


def test_a_raising_cell_fails_the_run(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise RuntimeError('deliberate')"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    src = tmp_path / "broken.ipynb"
    nbformat.write(nb, src)
    with pytest.raises(papermill.PapermillExecutionError, match="deliberate"):
        execute(src, {"x": 2}, out_dir=tmp_path / "out")
