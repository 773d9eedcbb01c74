"""scripts/execute_book.py: the notebooks run into Jupyter Book's cache before `jupyter-book build`."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("execute_book", ROOT / "scripts" / "execute_book.py")
execute_book = importlib.util.module_from_spec(spec)
sys.modules["execute_book"] = execute_book  # its worker function is pickled by name
spec.loader.exec_module(execute_book)


def _book(tmp_path: Path, cells: dict[str, str]) -> Path:
    """A book folder with one notebook per entry (name -> its one code cell)."""
    (tmp_path / "_config.yml").write_text(
        "execute:\n  execute_notebooks: cache\n  timeout: 60\n  run_in_temp: false\n"
    )
    chapters = "".join(f"      - file: chapters/{name}\n" for name in cells)
    (tmp_path / "_toc.yml").write_text(f"root: intro\nparts:\n  - chapters:\n{chapters}")
    (tmp_path / "chapters").mkdir()
    for name, source in cells.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nbformat.write(nb, tmp_path / "chapters" / f"{name}.ipynb")
    return tmp_path


def _cached(root: Path, name: str) -> nbformat.NotebookNode:
    """The cached, executed notebook of `name`, as `jupyter-book build` would find it."""
    cache = get_cache(str(root / "_build" / ".jupyter_cache"))
    nb = nbformat.read(root / "chapters" / f"{name}.ipynb", as_version=4)
    return cache.merge_match_into_notebook(nb)[1]


def test_notebooks_land_in_the_cache_and_the_last_one_sees_the_others(tmp_path: Path) -> None:
    root = _book(
        tmp_path,
        {
            "a": "import time; time.sleep(3); open('a.txt', 'w').write('1'); print(2 + 3)",
            "b": "open('b.txt', 'w').write('2')",
            "c": "print(open('a.txt').read() + open('b.txt').read())",
        },
    )
    args = ["--root", str(root), "--first", "chapters/b.ipynb", "--last", "chapters/c.ipynb"]
    assert execute_book.main(args) == 0
    assert _cached(root, "a").cells[0].outputs[0]["text"] == "5\n"
    # c ran after a (which takes 3 s) and b had finished, in the notebooks' folder
    assert _cached(root, "c").cells[0].outputs[0]["text"] == "12\n"
    # a second call finds everything in the cache and executes nothing
    (root / "chapters" / "a.txt").unlink()
    assert execute_book.main(args) == 0
    assert not (root / "chapters" / "a.txt").exists()


def test_a_failing_notebook_is_reported_and_not_cached(tmp_path: Path, capsys) -> None:
    root = _book(tmp_path, {"ok": "x = 1", "bad": "raise ValueError('broken on purpose')"})
    assert execute_book.main(["--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "chapters/bad.ipynb: FAILED" in err and "broken on purpose" in err
    cache = get_cache(str(root / "_build" / ".jupyter_cache"))
    with pytest.raises(KeyError):
        cache.match_cache_notebook(nbformat.read(root / "chapters" / "bad.ipynb", as_version=4))
    assert _cached(root, "ok").cells[0].execution_count == 1


def test_bad_arguments_are_named(tmp_path: Path, capsys) -> None:
    root = _book(tmp_path, {"a": "x = 1"})
    with pytest.raises(SystemExit):
        execute_book.main(["--root", str(root), "--first", "chapters/nope.ipynb"])
    assert "--first names notebooks that are not in _toc.yml" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        execute_book.main(["--root", str(root), "--jobs", "0"])
    assert "--jobs must be a positive integer, got 0" in capsys.readouterr().err


def test_make_book_runs_last_every_chapter_that_reads_other_chapters_metrics() -> None:
    recipe = re.search(r"^book:.*?(?=^\S)", (ROOT / "Makefile").read_text(), re.M | re.S)[0]
    assert "scripts/execute_book.py" in recipe
    last = set(re.findall(r"--last (\S+)", recipe))
    readers = {
        f"chapters/{p.name}"
        for p in sorted((ROOT / "chapters").glob("*.ipynb"))
        if "metrics.load(" in p.read_text()
    }
    assert readers and readers <= last
