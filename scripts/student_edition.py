"""Build the student edition of the book: every exercise, no solution.

Usage (what `make student` runs):

    .venv/bin/python scripts/student_edition.py              # -> _build/student/html
    .venv/bin/python scripts/student_edition.py --source PATH --out PATH

The student edition is the book built with a second configuration file, derived from
`_config.yml` by :func:`student_config`: sphinx-exercise's option `hide_solutions: true`, the
notebook cache of `make book` (so nothing is executed twice), and this file as a small local
Sphinx extension. The extension is needed because sphinx-exercise 1.2's `hide_solutions` only
drops `{solution}` directives: the gated form the book uses (`{solution-start}` ...
`{solution-end}`, which may span notebook cells) would leave its content on the page. The
extension therefore keeps sphinx-exercise's own option switched off internally, lets it merge
gated solutions into solution nodes as usual, and removes every solution node before the pages
are written (pages and search index). After the build, :func:`strip_sources` removes the
solutions from the sources that the pages' download button serves (`_sources/`).

The build is `-W -n --keep-going`, like `make book`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXTENSION = "student_edition"  # this module, loaded by Sphinx as a local extension

# ------------------------------------------------------------------------- configuration


def student_config(config: dict, cache: Path) -> dict:
    """The student edition's configuration: ``config`` with the solutions switched off.

    Parameters
    ----------
    config : dict
        The book's ``_config.yml`` as a dict (not modified).
    cache : Path
        The jupyter-cache folder of `make book` (absolute), reused so that notebooks cached
        there are not executed again.

    Returns
    -------
    dict
        A copy with ``sphinx.config.hide_solutions: true``, this file as a local extension and
        ``execute.cache`` set to ``cache``.
    """
    if not isinstance(config, dict):
        raise ValueError(f"config must be the dict of a _config.yml, got {type(config).__name__}")
    out = copy.deepcopy(config)
    sphinx = out.setdefault("sphinx", {})
    sphinx.setdefault("config", {})["hide_solutions"] = True
    sphinx.setdefault("local_extensions", {})[EXTENSION] = str(HERE)
    out.setdefault("execute", {})["cache"] = str(Path(cache).resolve())
    return out


# ------------------------------------------------------------------------- Sphinx extension


def _take_over_hide_solutions(app, config) -> None:
    """Do sphinx-exercise's job for both solution forms (see the module docstring)."""
    if config.hide_solutions:
        config.lgl_remove_solutions = True
        config.hide_solutions = False


def setup(app):  # noqa: D103  (Sphinx entry point)
    from sphinx.transforms import SphinxTransform
    from sphinx_exercise.nodes import solution_end_node, solution_node, solution_start_node

    class RemoveSolutions(SphinxTransform):
        """Remove solution nodes, after sphinx-exercise merged the gated ones (priority 10)."""

        default_priority = 50

        def apply(self, **kwargs) -> None:
            if not self.config.lgl_remove_solutions:
                return
            for kind in (solution_node, solution_start_node, solution_end_node):
                for node in list(self.document.findall(kind)):
                    node.parent.remove(node)

    app.add_config_value("lgl_remove_solutions", False, "env")
    app.connect("config-inited", _take_over_hide_solutions, priority=900)
    app.add_transform(RemoveSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# ------------------------------------------------------------------------- sources

_OPEN = re.compile(r"^\s*(`{3,}|:{3,})\{(solution|solution-start)\}")
_END = re.compile(r"^\s*(`{3,}|:{3,})\{solution-end\}")


def _is_fence(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence`` (same character, at least as long)."""
    bare = line.strip()
    return bool(bare) and set(bare) == {fence[0]} and len(bare) >= len(fence)


def _strip_lines(lines: list[str], state: dict) -> list[str]:
    """Drop solution blocks from MyST lines; ``state`` carries an open block across cells.

    A plain ``{solution}`` block ends at its closing fence; a gated block runs from
    ``{solution-start}`` to ``{solution-end}`` and the latter's (empty) closing fence.
    """
    out = []
    for line in lines:
        mode = state.get("mode")
        if mode is None:
            m = _OPEN.match(line)
            if m:
                kind = "gated" if m.group(2) == "solution-start" else "plain"
                state.update(mode=kind, fence=m.group(1))
            else:
                out.append(line)
        elif mode == "plain":
            if _is_fence(line, state["fence"]):
                state.clear()
        elif mode == "gated":
            m = _END.match(line)
            if m:
                state.update(mode="closing", fence=m.group(1))
        else:  # "closing": the line after "{solution-end}" should be its closing fence
            fence = state.pop("fence")
            state.clear()
            if not _is_fence(line, fence):
                out.append(line)
    return out


def strip_text(text: str) -> str:
    """A MyST document without its solution blocks (gated and plain)."""
    state: dict = {}
    return "".join(_strip_lines(text.splitlines(keepends=True), state))


def strip_notebook(nb: dict) -> dict:
    """A notebook without its solution blocks; a gated block may span several cells."""
    state: dict = {}
    cells = []
    for cell in nb.get("cells", []):
        src = cell.get("source", "")
        lines = src.splitlines(keepends=True) if isinstance(src, str) else list(src)
        if cell.get("cell_type") == "markdown":
            kept = _strip_lines(lines, state)
            if "".join(kept).strip():
                cells.append({**cell, "source": kept})
        elif not state.get("mode"):
            cells.append(cell)
    return {**nb, "cells": cells}


def strip_sources(html: Path) -> list[Path]:
    """Remove the solutions from the copies of the sources in ``html/_sources``."""
    changed = []
    for path in sorted((html / "_sources").rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".ipynb":
            nb = json.loads(path.read_text())
            new = json.dumps(strip_notebook(nb), indent=1, ensure_ascii=False) + "\n"
            old = path.read_text()
        elif path.suffix in {".md", ".txt", ".py", ".rst"}:
            old = path.read_text()
            new = strip_text(old)
        else:
            continue
        if new != old:
            path.write_text(new)
            changed.append(path)
    return changed


# ------------------------------------------------------------------------- build


def build(source: Path = ROOT, out: Path = ROOT / "_build" / "student") -> int:
    """Build the student edition of the book in ``source`` into ``out/html``; return 0 on success."""
    from jupyter_book.sphinx import build_sphinx

    source, out = Path(source).resolve(), Path(out).resolve()
    config = yaml.safe_load((source / "_config.yml").read_text())
    out.mkdir(parents=True, exist_ok=True)
    path_config = out / "_config.yml"
    path_config.write_text(
        "# Generated by scripts/student_edition.py from _config.yml: edit that file instead.\n"
        + yaml.safe_dump(
            student_config(config, source / "_build" / ".jupyter_cache"),
            sort_keys=False,
            allow_unicode=True,
        )
    )
    result = build_sphinx(
        source,
        out / "html",
        use_external_toc=True,
        noconfig=True,
        path_config=str(path_config),
        confoverrides={
            "external_toc_path": (source / "_toc.yml").as_posix(),
            "nitpicky": True,
            "latex_individualpages": False,
        },
        doctreedir=out / ".doctrees",
        builder="html",
        warningiserror=True,
        keep_going=True,
    )
    if result != 0:
        return int(result) if isinstance(result, int) else 1
    changed = strip_sources(out / "html")
    print(f"student edition: {out / 'html'} ({len(changed)} source files stripped of solutions)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="the book's folder")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    return build(args.source, args.out)


if __name__ == "__main__":
    sys.exit(main())
