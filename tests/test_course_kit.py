"""The course kit: glossary and index, the course page, and the shape of every chapter."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml
from _conventions import ROOT, toc_files, toc_notebooks

GLOSSARY = (ROOT / "glossary.md").read_text()
COURSE = (ROOT / "course.md").read_text()
#: the terms the issue asks for (tests fail if one disappears)
REQUIRED_TERMS = [
    "MDP",
    "Bellman operator",
    "contraction",
    "value iteration",
    "Q-function",
    "policy gradient",
    "REINFORCE",
    "actor-critic",
    "MPC",
    "receding horizon",
    "terminal cost",
    "sensitivity",
    "KKT conditions",
    "multi-stage MPC",
    "hindsight experience replay",
    "identification for control",
    "dual control",
    "exploration",
]
SETUP_CHAPTERS = {"00_getting_started"}  # installation checks, no exercises


def glossary_terms(text: str) -> set[str]:
    """Terms of the ```{glossary} block: unindented, non-empty lines that are not options."""
    block = re.search(r"```\{glossary\}\n(.*?)\n```", text, re.S)
    assert block, "glossary.md has no {glossary} directive"
    return {
        ln.strip()
        for ln in block.group(1).splitlines()
        if ln.strip() and not ln.startswith((" ", "\t", ":"))
    }


def test_glossary_defines_the_books_terms() -> None:
    terms = glossary_terms(GLOSSARY)
    assert [t for t in REQUIRED_TERMS if t not in terms] == []


def test_glossary_links_to_the_index_and_adds_index_entries() -> None:
    assert "{ref}`genindex`" in GLOSSARY
    assert re.search(r"\{index\}`", GLOSSARY)  # inline index entries (they keep their anchors)


def test_back_matter_and_the_exploration_part_are_in_the_toc() -> None:
    parts = yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
    captions = [p["caption"] for p in parts]
    back = parts[captions.index("Back matter")]
    assert [c["file"] for c in back["chapters"]][-3:] == ["glossary", "course", "bibliography"]
    explo = captions.index("Exploration and evaluation (paper Sec. IV.B, V.C)")
    assert explo == captions.index("Back matter") - 1
    assert [c["file"] for c in parts[explo]["chapters"]] == [
        "chapters/10_exploration",
        "chapters/11_evaluation",
    ]


def test_course_page_lists_every_chapter_and_the_measured_times() -> None:
    missing = [nb.stem for nb in toc_notebooks() if f"{{doc}}`chapters/{nb.stem}`" not in COURSE]
    assert missing == []
    assert "```{nb-exec-table}" in COURSE  # the run times, measured by the build


def _artifact_loaders() -> set[str]:
    """Names of lgutils functions whose body calls lgutils.core.paths.data_path."""
    names = {"data_path"}
    for path in (ROOT / "lgutils").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(n, ast.Call)
                and getattr(n.func, "id", getattr(n.func, "attr", "")) == "data_path"
                for n in ast.walk(node)
            ):
                names.add(node.name)
    return names


def _code(notebook: Path) -> str:
    nb = json.loads(notebook.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_course_page_says_which_chapters_need_the_data_artifacts() -> None:
    loaders = _artifact_loaders()
    pattern = re.compile(r"\b(" + "|".join(sorted(loaders)) + r")\s*\(")
    needs = {nb.stem for nb in toc_notebooks() if pattern.search(_code(nb))}
    rows = [ln for ln in COURSE.splitlines() if ln.startswith("|") and "{doc}`chapters/" in ln]
    marked = {
        re.search(r"\{doc\}`chapters/([^`]+)`", ln).group(1)
        for ln in rows
        if ln.rstrip(" |").split("|")[-1].strip().startswith("yes")
    }
    assert needs, "no chapter loads an artifact: the check would be vacuous"
    assert marked == needs


@pytest.mark.parametrize(
    "notebook",
    [nb for nb in toc_notebooks() if nb.stem not in SETUP_CHAPTERS],
    ids=lambda p: p.stem,
)
def test_chapter_has_objectives_prerequisites_and_exercises_with_solutions(notebook: Path) -> None:
    nb = json.loads(notebook.read_text())
    title = "".join(nb["cells"][0]["source"])
    assert "Learning objectives" in title and "Prerequisites" in title
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    exercises = re.findall(r"\{exercise\}\s*\n:label:\s*(\S+)", md)
    solved = set(re.findall(r"\{solution(?:-start)?\}\s+(\S+)\s*\n:class:\s*dropdown", md))
    assert len(exercises) >= 2
    assert set(exercises) <= solved, (
        f"exercises without a dropdown solution: {set(exercises) - solved}"
    )


def test_readme_documents_the_student_edition() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make student" in readme and "_build/student/html" in readme
    assert re.search(r"^student:", (ROOT / "Makefile").read_text(), re.M)


def test_every_toc_page_exists() -> None:
    assert all(any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")) for f in toc_files())
