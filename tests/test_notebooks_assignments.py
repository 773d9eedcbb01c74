"""`make assignments`: each chapter's exercises as an nbgrader assignment, and grading that grades.

For every chapter with graded questions, scripts/assignments.py writes a course directory
with the chapter's smoke parameters (source, release and gradebook, through nbgrader's own
`generate_assignment`), two submissions are placed where `nbgrader collect` puts them, and
nbgrader's `autograde` grades them, executing each notebook:

- the instructor's notebook (the source, with the solutions) scores full marks;
- the student's notebook as released, with one answer filled in wrongly (the first graded
  question's answer names, off by a factor and an offset) and every other answer cell
  untouched: the wrong answer fails its question, and every untouched question scores zero.

(One student notebook carries both cases: each chapter's setup is executed twice instead of
three times, which keeps the test within a few minutes; the questions are graded cell by cell,
so the wrong answer cannot make another question pass or fail.)

The file runs after tests/test_notebooks.py (file names sort so): chapter 11's setup reads the
metrics that the smoke runs of the other chapters wrote.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from _conventions import ROOT
from conftest import ASSIGNMENT_TIMES

sys.path.insert(0, str(ROOT / "scripts"))
import assignments as asg  # noqa: E402

CHAPTERS = asg.chapters_with_exercises()
QUESTIONS = asg.summary(CHAPTERS)
GRADED = sorted({q["chapter"] for q in QUESTIONS if q["graded"]})
#: the wrong answer: every answer name of the first graded question, off by a factor and an offset
WRONG = """
def _off(value):  # a wrong answer, the same type as the right one
    if isinstance(value, dict):
        return {key: _off(v) for key, v in value.items()}
    return 2 * value + 1
"""


STUDENTS = ("instructor", "student")


def _first_graded(chapter: str) -> dict:
    return next(q for q in QUESTIONS if q["chapter"] == chapter and q["graded"])


def _wrong_submission(source: Path, release: Path, chapter: str) -> nbformat.NotebookNode:
    """The released notebook with the first graded question answered wrongly."""
    question = _first_graded(chapter)
    grade_id = f"{question['label']}-answer"
    solution = next(
        c
        for c in nbformat.read(source, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )
    code = solution.source.replace("### BEGIN SOLUTION\n", "").replace("### END SOLUTION", "")
    code += WRONG + "".join(f"{n} = _off({n})\n" for n in question["answers"])
    nb = nbformat.read(release, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    cell.source = code
    return nb


def grade(chapter: str, root: Path) -> dict:
    """Generate ``chapter``'s assignment in ``root``, autograde three submissions, read scores."""
    course = root / chapter
    cmd = [sys.executable, str(ROOT / "scripts" / "assignments.py"), "--smoke"]
    subprocess.run([*cmd, "--out", str(course), "--chapters", chapter], check=True,
                   capture_output=True, text=True, timeout=600)  # fmt: skip
    source = course / "source" / chapter / f"{chapter}.ipynb"
    release = course / "release" / chapter / f"{chapter}.ipynb"
    for student in STUDENTS:
        (course / "submitted" / student / chapter).mkdir(parents=True)
    shutil.copy(source, course / "submitted" / "instructor" / chapter)
    nbformat.write(
        _wrong_submission(source, release, chapter),
        course / "submitted" / "student" / chapter / f"{chapter}.ipynb",
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["nbgrader", "autograde", chapter, "--force"],
        cwd=course, env=asg.env(), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ASSIGNMENT_TIMES[chapter] = time.perf_counter() - t0
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in STUDENTS:
            nb = gb.find_submission_notebook(chapter, chapter, student)
            scores[student] = {g.name: (g.score, g.max_score) for g in nb.grades}
    return scores


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """chapter -> scores or the exception raised; two chapters at a time (two cores)."""
    root = tmp_path_factory.mktemp("courses")
    metrics = Path(os.environ.get("LGUTILS_METRICS_DIR", ROOT / "_build" / "metrics"))
    others = [c for c in CHAPTERS if c != "11_evaluation"]
    chapters = [c for c in GRADED if c != "11_evaluation" or all(
        (metrics / f"{c}.json").exists() for c in others)]  # fmt: skip

    def run(chapter):
        try:
            return grade(chapter, root)
        except Exception as exc:  # noqa: BLE001  (reported by the chapter's test)
            return exc

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(chapters, pool.map(run, chapters), strict=True))


def _questions(scores: dict, chapter: str) -> dict[str, tuple[float, float]]:
    """Per question label: (score, max) summed over its check cells."""
    out: dict[str, tuple[float, float]] = {}
    for grade_id, (score, top) in scores.items():
        label = grade_id.rsplit("-check", 1)[0]
        s, t = out.get(label, (0.0, 0.0))
        out[label] = (s + score, t + top)
    return out


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("chapter", GRADED)
def test_grading_grades(graded: dict, chapter: str) -> None:
    if chapter not in graded:
        pytest.skip("chapter 11's setup needs the smoke metrics: run tests/test_notebooks.py first")
    scores = graded[chapter]
    if isinstance(scores, Exception):
        raise scores
    expected = {
        q["label"]: q["points"] for q in QUESTIONS if q["chapter"] == chapter and q["graded"]
    }
    solution = _questions(scores["instructor"], chapter)
    assert solution == {k: (float(p), float(p)) for k, p in expected.items()}, "not full marks"
    student = _questions(scores["student"], chapter)
    first = _first_graded(chapter)["label"]
    assert student[first][0] < student[first][1], "a wrong answer got full marks"
    untouched = {k: s for k, (s, _) in student.items() if k != first}
    assert untouched == {k: 0.0 for k in expected if k != first}, "an untouched answer scored"


def test_every_chapter_with_exercises_has_a_graded_question() -> None:
    assert GRADED == CHAPTERS and len(CHAPTERS) == 11


def test_questions_say_what_they_ask_for() -> None:
    """Each graded question names its answer variables in its text; ungraded ones say so."""
    for chapter in CHAPTERS:
        nb = asg.assignment(chapter)
        text = json.dumps([c.source for c in nb.cells if c.cell_type == "markdown"])
        for q in (q for q in QUESTIONS if q["chapter"] == chapter):
            if q["graded"]:
                missing = [n for n in q["answers"] if not re.search(rf"`{n}\b", text)]
                assert missing == [], f"{q['label']} does not name {missing}"
        n_ungraded = sum(not q["graded"] for q in QUESTIONS if q["chapter"] == chapter)
        assert text.count("This question is not graded") == n_ungraded


def test_public_checks_use_only_the_answer() -> None:
    public, hidden = asg.split_check(
        "assert 0 < x < 1\nassert np.ndim(x) == 0\nassert x == y\nassert x > 0", ["x"]
    )
    assert public == "assert 0 < x < 1\nassert np.ndim(x) == 0"
    assert hidden == "assert x == y\nassert x > 0"


def test_roles_become_plain_markdown() -> None:
    text = "{eq}`02-vi-rate`, {glue:text}`mdp_J:.3f` and {numref}`01-fig`, {doc}`chapters/03_rl`"
    assert asg.plain_markdown(text) == (
        "eq. (02-vi-rate), `mdp_J` and the chapter's figure '01-fig', chapter 03_rl"
    )
