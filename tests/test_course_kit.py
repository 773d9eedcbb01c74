"""The course kit: glossary and index, the course page, and the shape of every chapter."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import nbformat
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
    for path in (ROOT / "lgutils").rglob("*.py"):
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


# ------------------------------------------------------------------------- exercises that run

sys.path.insert(0, str(ROOT / "scripts"))
import assignments as asg  # noqa: E402

EXERCISE_CHAPTERS = [nb for nb in toc_notebooks() if nb.stem not in SETUP_CHAPTERS]


def _exercises(notebook: Path) -> list:
    return asg.read_exercises(nbformat.read(notebook, as_version=4))


@pytest.mark.parametrize("notebook", EXERCISE_CHAPTERS, ids=lambda p: p.stem)
def test_solutions_compute_in_cells_that_run(notebook: Path) -> None:
    """No code fence in a solution (it would not run); every code cell is an answer or a check."""
    for ex in _exercises(notebook):
        prose = "\n".join(t for kind, t, _ in ex.solution if kind == "prose")
        assert not re.search(r"^\s*```\s*(python|ipython3?|py)\b", prose, re.M), ex.label
        kinds = [kind for kind, _, _ in ex.solution if kind != "prose"]
        assert set(kinds) <= {"answer", "check"}, f"{ex.label}: untagged code in its solution"


@pytest.mark.parametrize("notebook", EXERCISE_CHAPTERS, ids=lambda p: p.stem)
def test_every_answer_is_asserted_and_graded(notebook: Path) -> None:
    """An answer cell is followed by a check cell that asserts on its names, with points."""
    exercises = _exercises(notebook)
    assert any(ex.graded for ex in exercises), "no graded question in the chapter"
    for ex in exercises:
        kinds = [kind for kind, _, _ in ex.solution if kind != "prose"]
        if not ex.graded:
            assert kinds == [], f"{ex.label}: checks without an answer"
            continue
        assert kinds[0] == "answer" and "check" in kinds, ex.label
        assert asg.answer_names(ex), ex.label
        for check, points in ex.checks:
            assert points >= 1 and "assert" in check, ex.label


@pytest.mark.parametrize("notebook", EXERCISE_CHAPTERS, ids=lambda p: p.stem)
def test_solutions_leave_the_chapters_names_alone(notebook: Path) -> None:
    """What a solution binds is not read after the exercises (the metrics stay the chapter's)."""
    nb = nbformat.read(notebook, as_version=4)
    code = [t for ex in asg.read_exercises(nb) for k, t, _ in ex.solution if k != "prose"]
    bound = set().union(*(asg.assigned_names(c) for c in code))
    start = asg.exercises_start(nb)
    later = [c.source for c in nb.cells[start:] if c.cell_type == "code"][len(code) :]
    read = set().union(set(), *(asg.used_names(c) for c in later))
    assert bound & read == set()


def test_course_page_gives_every_exercise_a_difficulty_and_a_time() -> None:
    rows = {
        m.group(1): m.group(2) for m in re.finditer(r"^\|[^|]*\| `([^`]+)` \|(.*)$", COURSE, re.M)
    }
    for notebook in EXERCISE_CHAPTERS:
        for ex in _exercises(notebook):
            assert ex.label in rows, f"{ex.label} is not in course.md's table"
            graded, stars, minutes = (c.strip() for c in rows[ex.label].split("|")[:3])
            assert graded == ("yes" if ex.graded else "no"), ex.label
            assert stars in {"★", "★★", "★★★"} and re.match(r"\d+ min", minutes), ex.label


def test_course_page_and_readme_document_the_assignments() -> None:
    for command in ("make assignments", "nbgrader autograde", "nbgrader generate_feedback"):
        assert command in COURSE, command
    assert "make assignments" in (ROOT / "README.md").read_text()
    assert re.search(r"^assignments:", (ROOT / "Makefile").read_text(), re.M)
