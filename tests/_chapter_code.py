"""Take a function that a chapter writes out (the algorithm it teaches) into a test.

A chapter writes its algorithm in its own cells (the Bellman operator, a REINFORCE update,
...); ``lgutils`` holds the fast version used for runs at scale. The agreement tests load the
chapter's function with :func:`chapter_function` and compare both on a small case, so that the
test fails if either side changes.

Only the chapter's imports and the named function definitions are executed (no other cell),
so loading is instant and needs none of the chapter's data.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import FunctionType

from _conventions import ROOT


def _cells(notebook: Path) -> list[str]:
    nb = json.loads(notebook.read_text())
    return [
        "".join(c["source"])
        for c in nb["cells"]
        if c["cell_type"] == "code" and "remove-cell" not in c.get("metadata", {}).get("tags", [])
    ]


def chapter_functions(notebook: str | Path, *names: str) -> dict[str, FunctionType]:
    """The functions ``names`` as the chapter defines them, with the chapter's imports.

    Parameters
    ----------
    notebook : str or Path
        A notebook path, or a chapter's stem such as ``"02_dynamic_programming"``.
    *names : str
        Top-level functions (or classes) defined in the chapter's code cells. Each is executed in
        one namespace holding the chapter's top-level imports and every name asked for, so
        functions that call each other work; a function that needs a chapter's constant takes
        it as an argument.

    Raises
    ------
    LookupError
        When the chapter defines none of that name.
    """
    path = Path(notebook)
    if not path.suffix:
        path = ROOT / "chapters" / f"{notebook}.ipynb"
    namespace: dict = {"__name__": f"chapter_{path.stem}"}
    found: dict[str, str] = {}
    imports: list[str] = []
    for src in _cells(path):
        try:
            tree = ast.parse(src)
        except SyntaxError:  # a cell with IPython magics
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(ast.get_source_segment(src, node))
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                found[node.name] = ast.get_source_segment(src, node)
    missing = [n for n in names if n not in found]
    if missing:
        raise LookupError(f"{path.name} defines no top-level {missing}")
    exec("\n".join(imports), namespace)  # noqa: S102 (the book's own code)
    for name in names:
        exec(found[name], namespace)  # noqa: S102
    return {name: namespace[name] for name in names}


def chapter_function(notebook: str | Path, name: str) -> FunctionType:
    """One function of a chapter; see :func:`chapter_functions`."""
    return chapter_functions(notebook, name)[name]
