"""The evaluation chapter fails, rather than showing stale numbers, when a metrics file is missing.

chapters/11_evaluation.ipynb reads every number it shows with `lgutils.core.metrics.load` from the
folder that `LGUTILS_METRICS_DIR` names; here that folder is empty, or holds a metrics file
without the keys the chapter needs, and the execution must stop with MissingMetricsError.
(Its successful run is tests/test_notebooks.py's, on the smoke metrics of the same session.)
"""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest
from _conventions import ROOT
from _execute import execute

CHAPTER = ROOT / "chapters" / "11_evaluation.ipynb"


@pytest.mark.parametrize("content", [None, {}], ids=["no-file", "file-without-keys"])
def test_missing_metrics_stop_the_evaluation_chapter(tmp_path: Path, monkeypatch, content) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    if content is not None:  # the first chapter the evaluation reads, with none of its keys
        (folder / "04_mpc_function_approximator.json").write_text(json.dumps(content))
    monkeypatch.setenv("LGUTILS_METRICS_DIR", str(folder))
    with pytest.raises(papermill.PapermillExecutionError) as err:
        execute(CHAPTER, {}, out_dir=tmp_path / "out")
    assert err.value.ename == "MissingMetricsError"
    assert "04_mpc_function_approximator" in err.value.evalue


def test_the_evaluation_chapter_is_never_served_from_the_cache() -> None:
    """myst-nb executes it in every build, after the chapters whose metrics it reads."""
    nb = json.loads(CHAPTER.read_text())
    assert nb["metadata"]["mystnb"]["execution_mode"] == "force"


def test_the_evaluation_chapter_runs_after_every_chapter_it_reads() -> None:
    import re

    from _conventions import toc_files

    code = "\n".join(
        "".join(c["source"])
        for c in json.loads(CHAPTER.read_text())["cells"]
        if c["cell_type"] == "code"
    )
    # the chapters it names: the keys of its `needs` dict (chapter -> metric keys), and itself
    read = set(re.findall(r'"([0-9]{2}_[a-z_]+)"', code)) - {CHAPTER.stem}
    order = [Path(f).name for f in toc_files()]
    assert read and all(order.index(name) < order.index(CHAPTER.stem) for name in read)
