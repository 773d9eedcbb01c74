"""Build the course's autograded assignments from the chapters' exercises (nbgrader).

Usage (what `make assignments` runs):

    .venv/bin/python scripts/assignments.py                  # every chapter -> _build/assignments
    .venv/bin/python scripts/assignments.py --chapters 01_mdp --out PATH [--smoke] [--no-release]

The output folder is an nbgrader course directory (its commands run there, with the
``nbgrader_config.py`` written next to them):

- ``source/<chapter>/<chapter>.ipynb``: the instructor's assignment (solutions, hidden tests,
  points), which ``nbgrader generate_assignment`` turns into
- ``release/<chapter>/<chapter>.ipynb``: the student's notebook (answer cells emptied, hidden
  tests removed), handed out to students;
- ``solutions/<chapter>.ipynb``: the instructor's copy to read, the source with every
  exercise's written solution added (explanations included);
- ``gradebook.db``: nbgrader's gradebook (sqlite), which knows the assignments and their points.

How an exercise becomes a question. The chapter is the single source. Its exercises are
sphinx-exercise's ``{exercise}`` blocks, each followed by a gated ``{solution-start}`` ...
``{solution-end}`` solution whose code cells the book executes. Two cell tags mark what the
assignment grades:

- ``answer``: the code that computes the answer. Its top-level names that the check cells use
  are the *answer names*, which the question asks for. In the assignment it becomes an
  nbgrader solution cell (the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``,
  replaced by ``raise NotImplementedError()`` for students).
- ``check``: asserts on the answer against the chapter's own computation, worth the cell's
  ``points`` metadata (default 1). In the assignment it becomes an nbgrader test cell: its
  leading asserts that use nothing but the answer names (types, shapes, signs) stay visible as
  public checks, the rest are hidden tests.

Other code cells of a solution (none at present) stay in the book only. An exercise without an
``answer`` cell asks for an explanation: the assignment shows it as "not graded", with a
Markdown cell for the student's answer. The question's text is the exercise's, with MyST roles
turned into plain Markdown; the assignment starts with the chapter's code up to its exercises
(its setup: the objects the questions use), with its ``parameters`` cell (``--smoke`` appends
the values of tests/smoke_parameters.yml, for quick tests).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copy
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
OUT = ROOT / "_build" / "assignments"
SMOKE = ROOT / "tests" / "smoke_parameters.yml"
ANSWER, CHECK = "answer", "check"
NOT_GRADED = (
    "*This question is not graded: its answer is an explanation. Write it in this cell; "
    "the instructor reads it, or discusses it in class.*"
)
CONFIG = """# nbgrader's configuration of this course directory (written by scripts/assignments.py)
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "local-global-learning"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
c.Execute.timeout = 1800  # seconds per cell: the chapters' setup runs at full fidelity
c.Execute.allow_errors = True
"""

# ------------------------------------------------------------------------- reading a chapter


@dataclass
class Exercise:
    """One exercise of a chapter, as the chapter writes it."""

    label: str
    question: str  # the Markdown inside the {exercise} block
    solution: list[tuple[str, str, dict]] = field(default_factory=list)  # (kind, text, metadata)

    @property
    def answers(self) -> list[str]:
        return [t for k, t, _ in self.solution if k == ANSWER]

    @property
    def checks(self) -> list[tuple[str, int]]:
        return [(t, int(m.get("points", 1))) for k, t, m in self.solution if k == CHECK]

    @property
    def graded(self) -> bool:
        return bool(self.answers)


_EXERCISE = re.compile(r"^(`{3,}|:{3,})\{exercise\}\s*$")
_START = re.compile(r"^(`{3,}|:{3,})\{solution-start\}\s+(\S+)")
_END = re.compile(r"^(`{3,}|:{3,})\{solution-end\}")


def _source(cell) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def exercises_start(nb) -> int:
    """Index of the Markdown cell that holds the chapter's ``## Exercises`` heading."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and re.search(r"^## Exercises\s*$", _source(cell), re.M):
            return i
    raise ValueError("the chapter has no '## Exercises' section")


def read_exercises(nb) -> list[Exercise]:
    """The exercises of a chapter notebook, each with its solution's prose and code cells."""
    start = exercises_start(nb)
    out: list[Exercise] = []
    mode, body, fence = "out", [], ""
    for i, cell in enumerate(nb.cells[start:]):
        text = _source(cell)
        if cell.cell_type == "code":
            if mode != "solution":
                break  # the metrics cell after the exercises
            tags = cell.metadata.get("tags", [])
            kind = ANSWER if ANSWER in tags else CHECK if CHECK in tags else "code"
            out[-1].solution.append((kind, text, dict(cell.metadata)))
            continue
        lines = text.splitlines()
        if i == 0:  # the heading's cell: only what follows "## Exercises"
            lines = lines[next(j for j, ln in enumerate(lines) if ln.startswith("## Exer")) :]
        for line in lines:
            if mode == "out":
                m = _EXERCISE.match(line)
                if m:
                    mode, body, fence = "exercise", [], m.group(1)
                elif (m := _START.match(line)) is not None:
                    if not out or out[-1].label != m.group(2):
                        raise ValueError(f"solution {m.group(2)} does not follow its exercise")
                    mode, body = "solution", []
            elif mode == "exercise":
                if line.strip() == fence:
                    label = next(
                        ln.split(":", 2)[2].strip() for ln in body if ln.startswith(":label:")
                    )
                    question = [ln for ln in body if not re.match(r"^:\w+:", ln)]
                    out.append(Exercise(label, "\n".join(question).strip()))
                    mode = "out"
                else:
                    body.append(line)
            elif mode == "solution":
                if _END.match(line):
                    mode = "closing"
                elif not re.match(r"^:\w+:", line) and line.strip() != "```":
                    body.append(line)
                    if out[-1].solution and out[-1].solution[-1][0] == "prose":
                        out[-1].solution[-1] = ("prose", out[-1].solution[-1][1] + "\n" + line, {})
                    else:
                        out[-1].solution.append(("prose", line, {}))
            elif mode == "closing":  # the closing fence of {solution-end}
                mode = "out"
        if mode == "closing":
            mode = "out"
    return out


# ------------------------------------------------------------------------- code analysis


def _python(code: str) -> str:
    """``code`` with IPython's magics and shell lines (``%pip``, ``!ls``) as ``pass``."""
    return re.sub(r"^(\s*)[%!].*$", r"\1pass", code, flags=re.M)


def assigned_names(code: str) -> set[str]:
    """Names bound at the top level of ``code``: assignments, loops, defs and imports (not the
    variables of comprehensions, lambdas and function bodies, which have scopes of their own)."""
    names: set[str] = set()
    local = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    local += (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if not isinstance(node, local):
            for child in ast.iter_child_nodes(node):
                visit(child)

    visit(ast.parse(_python(code)))
    return names


def used_names(code: str) -> set[str]:
    """Names read anywhere in ``code``."""
    return {
        n.id
        for n in ast.walk(ast.parse(code))
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }


def _stored(code: str) -> set[str]:
    """Names bound anywhere in ``code``, arguments and comprehension variables included."""
    tree = ast.parse(code)
    names = {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    return names | {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def answer_names(ex: Exercise) -> list[str]:
    """The names the question asks for: bound by its answer cells, read by its checks."""
    bound = set().union(*(assigned_names(a) for a in ex.answers))
    read = set().union(*(used_names(c) - _stored(c) for c, _ in ex.checks))
    names = sorted(bound & read)
    if not names:
        raise ValueError(f"{ex.label}: the check cells use no name of the answer cells")
    return names


def split_check(code: str, answers: list[str]) -> tuple[str, str]:
    """(public, hidden) parts of a check cell: leading asserts on the answer names alone."""
    allowed = set(answers) | set(dir(builtins)) | {"np"}
    lines = code.splitlines()
    cut = 0
    for node in ast.parse(code).body:
        if not (isinstance(node, ast.Assert) and used_names(ast.unparse(node)) <= allowed):
            break
        cut = node.end_lineno
    return "\n".join(lines[:cut]).strip(), "\n".join(lines[cut:]).strip()


# ------------------------------------------------------------------------- Markdown

_ROLES = {
    "eq": lambda t: f"eq. ({t})",
    "numref": lambda t: f"the chapter's figure '{t}'",
    "doc": lambda t: f"chapter {t.rsplit('/', 1)[-1]}",
    "cite": lambda t: f"[{t}]",
    "glue:text": lambda t: f"`{t.split(':')[0]}`",
}


def plain_markdown(text: str) -> str:
    """MyST roles as plain Markdown that Jupyter renders (glued numbers by their name)."""

    def role(m: re.Match) -> str:
        return _ROLES.get(m.group(1), lambda t: t)(m.group(2))

    return re.sub(r"\{([\w:-]+)\}`([^`]*)`", role, text)


# ------------------------------------------------------------------------- building


def _nbgrader(cell, grade_id: str, *, grade: bool, solution: bool, points: int = 0):
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution}
    meta.update({"schema_version": 3, "solution": solution})
    if grade:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell


def setup_cells(nb, chapter: str, smoke: dict | None) -> list:
    """The chapter's code up to its exercises, after a title cell."""
    title = _source(nb.cells[0]).splitlines()[0].lstrip("# ").strip()
    cells = [
        nbformat.v4.new_markdown_cell(
            f"# Assignment: {title}\n\nRun the chapter's code below first (it builds the objects "
            "that the questions use), then answer each question in the cell under it: assign "
            "your answer to the names that the question asks for. The cells after each answer "
            "check it; more checks are run when the assignment is graded."
        )
    ]
    for cell in nb.cells[: exercises_start(nb)]:
        if cell.cell_type != "code":
            continue
        new = nbformat.v4.new_code_cell(_source(cell))
        tags = [t for t in cell.metadata.get("tags", []) if t in ("parameters",)]
        if tags:
            new.metadata["tags"] = tags
            if smoke:
                values = "\n".join(f"{k} = {v!r}" for k, v in smoke.items())
                new.source += f"\n# set by scripts/assignments.py\n{values}"
        cells.append(new)
    return cells


def question_cells(n: int, ex: Exercise, instructor: bool) -> list:
    """The cells of one question: text, answer, checks (and, for instructors, the solution)."""
    points = sum(p for _, p in ex.checks)
    head = f"{points} point{'s' * (points != 1)}" if ex.graded else "not graded"
    cells = [
        nbformat.v4.new_markdown_cell(
            f"## Question {n} ({head})\n\n*Exercise `{ex.label}` of the chapter.*\n\n"
            + plain_markdown(ex.question)
        )
    ]
    prose = "\n\n".join(plain_markdown(t).strip() for k, t, _ in ex.solution if k == "prose")
    if ex.graded:
        names = answer_names(ex)
        code = "\n".join(ex.answers).strip()
        src = f"# Your answer: {', '.join(names)}\n### BEGIN SOLUTION\n{code}\n### END SOLUTION"
        cells.append(
            _nbgrader(
                nbformat.v4.new_code_cell(src), f"{ex.label}-answer", grade=False, solution=True
            )
        )
        for i, (check, pts) in enumerate(ex.checks, 1):
            public, hidden = split_check(check, names)
            src = (public + "\n" if public else "") + (
                f"### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS" if hidden else ""
            )
            cell = nbformat.v4.new_code_cell(src.strip())
            cells.append(
                _nbgrader(cell, f"{ex.label}-check{i}", grade=True, solution=False, points=pts)
            )
    else:
        cells.append(nbformat.v4.new_markdown_cell(NOT_GRADED))
    if instructor and prose:
        cells.append(nbformat.v4.new_markdown_cell(f"**Solution (instructor's copy).** {prose}"))
    return cells


def assignment(chapter: str, smoke: dict | None = None, instructor: bool = False):
    """The nbgrader source notebook of ``chapter`` (``instructor``: with the written solutions)."""
    nb = nbformat.read(CHAPTERS / f"{chapter}.ipynb", as_version=4)
    exercises = read_exercises(nb)
    setup = setup_cells(nb, chapter, smoke)
    bound = set().union(*(assigned_names(c.source) for c in setup if c.cell_type == "code"))
    for ex in exercises:
        if ex.graded and (clash := bound & set(answer_names(ex))):
            raise ValueError(f"{ex.label}: the chapter's setup already defines {sorted(clash)}")
    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    out.cells = setup + [
        c for n, ex in enumerate(exercises, 1) for c in question_cells(n, ex, instructor)
    ]
    return out


def chapters_with_exercises() -> list[str]:
    """Chapter stems that have an Exercises section (chapter 00 sets up, it has none)."""
    out = []
    for path in sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb")):
        try:
            exercises_start(nbformat.read(path, as_version=4))
        except ValueError:
            continue
        out.append(path.stem)
    return out


def env() -> dict:
    """The environment for nbgrader's commands: this interpreter's bin first (alembic)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def build(out: Path, chapters: list[str], smoke: bool = False, release: bool = True) -> None:
    """Write the course directory ``out`` for ``chapters`` (see the module docstring)."""
    out = Path(out).resolve()
    smoke_values = yaml.safe_load(SMOKE.read_text()) if smoke else {}
    (out / "solutions").mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(CONFIG)
    for chapter in chapters:
        values = smoke_values.get(f"chapters/{chapter}.ipynb") if smoke else None
        source = out / "source" / chapter
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        if not smoke and _bundle_metrics(chapter, source / "metrics"):
            values = {"metrics_folder": "metrics"}  # read next to the notebook
        nbformat.write(assignment(chapter, values), source / f"{chapter}.ipynb")
        nbformat.write(assignment(chapter, values, True), out / "solutions" / f"{chapter}.ipynb")
    if release:
        generate(out, chapters)


def _bundle_metrics(chapter: str, folder: Path) -> bool:
    """Copy the book's metrics next to a chapter that reads them (chapter 11), if they exist."""
    nb = nbformat.read(CHAPTERS / f"{chapter}.ipynb", as_version=4)
    params = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    files = sorted((ROOT / "_build" / "metrics").glob("*.json"))
    if params is None or "metrics_folder" not in assigned_names(params.source) or not files:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, folder / path.name)
    return True


def generate(out: Path, chapters: list[str]) -> None:
    """``nbgrader generate_assignment`` for each chapter, in the course directory ``out``."""
    import subprocess

    for chapter in chapters:
        proc = subprocess.run(
            ["nbgrader", "generate_assignment", chapter, "--force"],
            cwd=out,
            env=env(),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not (out / "release" / chapter / f"{chapter}.ipynb").exists():
            raise RuntimeError(
                f"nbgrader generate_assignment {chapter} failed:\n{proc.stderr[-3000:]}"
            )
        print(f"{chapter}: release/{chapter}/{chapter}.ipynb")


def summary(chapters: list[str]) -> list[dict]:
    """Per chapter and exercise: graded or not, points, answer names (for course.md and tests)."""
    rows = []
    for chapter in chapters:
        nb = nbformat.read(CHAPTERS / f"{chapter}.ipynb", as_version=4)
        for ex in read_exercises(nb):
            rows.append(
                {
                    "chapter": chapter,
                    "label": ex.label,
                    "graded": ex.graded,
                    "points": sum(p for _, p in ex.checks),
                    "answers": answer_names(ex) if ex.graded else [],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the course directory to write")
    parser.add_argument("--chapters", nargs="*", help="chapter stems (default: every chapter)")
    parser.add_argument("--smoke", action="store_true", help="quick parameters (for tests)")
    parser.add_argument("--no-release", action="store_true", help="skip generate_assignment")
    parser.add_argument("--summary", action="store_true", help="print the questions as JSON")
    args = parser.parse_args(argv)
    chapters = args.chapters or chapters_with_exercises()
    if args.summary:
        print(json.dumps(summary(chapters), indent=1))
        return 0
    build(args.out, chapters, args.smoke, not args.no_release)
    return 0


if __name__ == "__main__":
    sys.exit(main())
