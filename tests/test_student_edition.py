"""`make student`: the book without solutions (scripts/student_edition.py).

A small book with the real `_config.yml` (execution off) and exercises in both of
sphinx-exercise's forms -- a plain `{solution}` and a gated `{solution-start}` ...
`{solution-end}` that spans notebook cells, as the chapters write them -- is built twice: as
the book (solutions present: the test is not vacuous) and as the student edition (every
exercise present, no solution text anywhere in the output, sources served by the download
button included).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import _browser as b
import nbformat
import pytest
import yaml
from _conventions import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import student_edition as se  # noqa: E402

EXERCISES = ["EXERCISE-PLAIN-MD", "EXERCISE-GATED-MD", "EXERCISE-GATED-NB"]
SOLUTIONS = ["SOLUTION-PLAIN-MD", "SOLUTION-GATED-MD", "SOLUTION-GATED-NB", "SOLUTION-CODE-NB"]
AFTER = "TEXT-AFTER-THE-SOLUTION"

PAGE = f"""# A page

```{{exercise}}
:label: page-ex-plain

{EXERCISES[0]}
```

````{{solution}} page-ex-plain
:class: dropdown

{SOLUTIONS[0]}

```python
x = 1
```
````

```{{exercise}}
:label: page-ex-gated

{EXERCISES[1]}
```

```{{solution-start}} page-ex-gated
:class: dropdown
```

{SOLUTIONS[1]}

```{{solution-end}}
```

{AFTER}
"""


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            f"# A notebook\n\n```{{exercise}}\n:label: nb-ex\n\n{EXERCISES[2]}\n```\n\n"
            "```{solution-start} nb-ex\n:class: dropdown\n```\n"
        ),
        nbformat.v4.new_code_cell(f'print("{SOLUTIONS[3]}")'),
        nbformat.v4.new_markdown_cell(f"{SOLUTIONS[2]}\n\n```{{solution-end}}\n```\n\n{AFTER}\n"),
    ]
    return nb


@pytest.fixture(scope="module")
def small_book(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (root / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    (root / "references.bib").write_text((ROOT / "references.bib").read_text())
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: index\nchapters:\n  - file: page\n  - file: nb\n"
    )
    (root / "index.md").write_text("# Index\n\nA small book.\n")
    (root / "page.md").write_text(PAGE)
    nbformat.write(_notebook(), root / "nb.ipynb")
    return root


def _texts(html: Path) -> dict[str, str]:
    return {
        p.relative_to(html).as_posix(): p.read_text(errors="replace")
        for p in html.rglob("*")
        if p.is_file() and p.suffix in {".html", ".js", ".ipynb", ".md", ".txt"}
    }


def test_the_book_itself_shows_the_solutions(small_book: Path) -> None:
    build = b.build_book(small_book)
    assert build.returncode == 0, b.build_problems(build)
    pages = "".join(t for name, t in _texts(build.html).items() if name.endswith(".html"))
    for text in EXERCISES + SOLUTIONS:
        assert text in pages


def test_student_edition_has_every_exercise_and_no_solution(small_book: Path) -> None:
    out = small_book / "_build" / "student"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "student_edition.py"),
            "--source",
            str(small_book),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    texts = _texts(out / "html")
    pages = {name: t for name, t in texts.items() if name.endswith(".html")}
    for text in EXERCISES + [AFTER]:
        assert any(text in t for t in pages.values()), f"{text} missing from the student pages"
    leaks = [(s, name) for s in SOLUTIONS for name, t in texts.items() if s in t]
    assert leaks == [], f"solution text in the student edition: {leaks}"
    # the downloadable notebook is still a valid notebook, with the text after the solution
    nb = nbformat.read(out / "html" / "_sources" / "nb.ipynb", as_version=4)
    assert AFTER in "".join(c.source for c in nb.cells) and len(nb.cells) == 2


def test_student_config_changes_only_the_solution_switches() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    student = se.student_config(config, ROOT / "_build" / ".jupyter_cache")
    assert student["sphinx"]["config"].pop("hide_solutions") is True
    assert student["sphinx"].pop("local_extensions") == {"student_edition": str(ROOT / "scripts")}
    assert student["execute"].pop("cache") == str((ROOT / "_build" / ".jupyter_cache").resolve())
    assert student == config


def test_source_stripping_keeps_the_text_around_solutions() -> None:
    stripped = se.strip_text(PAGE)
    assert all(s not in stripped for s in SOLUTIONS[:2])
    assert all(e in stripped for e in EXERCISES[:2]) and AFTER in stripped
    assert "solution-end" not in stripped and "x = 1" not in stripped
