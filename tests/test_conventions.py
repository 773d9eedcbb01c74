"""The book's conventions hold, and each check fails on a deliberately broken input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _conventions import (
    ROOT,
    lock_mismatches,
    output_problems,
    smoke_parameters,
    structure_problems,
    toc_mismatches,
    toc_notebooks,
    unknown_parameters,
    unparsed_parameters,
)

NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))


def test_toc_and_chapters_agree() -> None:
    assert toc_mismatches() == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_committed_without_outputs(notebook: Path) -> None:
    assert output_problems(notebook) == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(notebook: Path) -> None:
    assert structure_problems(notebook) == []


def test_every_toc_notebook_has_smoke_parameters_that_exist() -> None:
    smoke = smoke_parameters()
    listed = {p.relative_to(ROOT).as_posix() for p in toc_notebooks()}
    assert set(smoke) <= listed, (
        f"smoke parameters for notebooks not in the toc: {set(smoke) - listed}"
    )
    problems = [
        msg
        for path, params in smoke.items()
        for msg in unknown_parameters(ROOT / path, params or {})
    ]
    assert problems == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter(notebook: Path) -> None:
    assert unparsed_parameters(notebook) == []


def test_lock_and_environment_agree() -> None:
    assert lock_mismatches() == []


def test_torch_pinned_to_the_local_cpu_build() -> None:
    assert "\ntorch==2.13.0\n" in (ROOT / "requirements.lock").read_text()


# --- each check fails on a broken input -------------------------------------------------------


@pytest.fixture
def notebook_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "00_getting_started.ipynb"
    shutil.copy(ROOT / "chapters" / "00_getting_started.ipynb", dst)
    return dst


def _edit(path: Path, fn) -> None:
    nb = json.loads(path.read_text())
    fn(nb)
    path.write_text(json.dumps(nb))


def test_detects_notebook_with_outputs(notebook_copy: Path) -> None:
    def add_output(nb: dict) -> None:
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        cell["execution_count"] = 3
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]

    _edit(notebook_copy, add_output)
    assert len(output_problems(notebook_copy)) == 1


def test_detects_missing_parameters_tag(notebook_copy: Path) -> None:
    def untag(nb: dict) -> None:
        for c in nb["cells"]:
            tags = c.get("metadata", {}).get("tags", [])
            if "parameters" in tags:
                tags.remove("parameters")

    _edit(notebook_copy, untag)
    assert any("parameters" in p for p in structure_problems(notebook_copy))


def test_detects_misspelt_smoke_parameter(notebook_copy: Path) -> None:
    assert unknown_parameters(notebook_copy, {"sb3_steps": 1}) == []
    assert len(unknown_parameters(notebook_copy, {"sb3_step": 1})) == 1


def test_detects_parameter_papermill_cannot_read(notebook_copy: Path) -> None:
    assert unparsed_parameters(notebook_copy) == []

    def add_line(nb: dict) -> None:
        cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
        cell["source"] = "".join(cell["source"]) + "\nu_max = 1.0  # bound |u| <= u_max\n"

    _edit(notebook_copy, add_line)
    assert len(unparsed_parameters(notebook_copy)) == 1


def test_detects_notebook_missing_from_toc(tmp_path: Path) -> None:
    (tmp_path / "chapters").mkdir()
    (tmp_path / "intro.md").write_text("# x\n")
    (tmp_path / "chapters" / "01_a.ipynb").write_text("{}")
    (tmp_path / "chapters" / "02_b.ipynb").write_text("{}")
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: chapters/01_a\n  - file: chapters/03_c\n"
    )
    problems = toc_mismatches(toc, tmp_path / "chapters")
    assert any("02_b" in p for p in problems) and any("03_c" in p for p in problems)


def test_detects_lock_out_of_sync(tmp_path: Path) -> None:
    lock, env = tmp_path / "requirements.lock", tmp_path / "environment.yml"
    lock.write_text("numpy==2.0.0\nscipy==1.0\n")
    env.write_text(
        "dependencies:\n  - python=3.11\n  - pip:\n      - numpy==2.0.1\n      - scipy==1.0\n"
    )
    assert lock_mismatches(lock, env) == ["numpy: lock 2.0.0 but environment.yml 2.0.1"]
