"""Checks of the book's conventions, as functions so that tests can show each one failing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS_WITHIN = 4  # the `parameters` cell must be among the first cells of a notebook


def toc_files(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """Every file listed in the table of contents (``root`` included), without extension."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return files


def toc_notebooks(toc_path: Path = ROOT / "_toc.yml", root: Path = ROOT) -> list[Path]:
    """The notebooks among the toc's files, as paths (in toc order)."""
    return [root / f"{f}.ipynb" for f in toc_files(toc_path) if (root / f"{f}.ipynb").exists()]


def toc_mismatches(
    toc_path: Path = ROOT / "_toc.yml", chapters: Path = ROOT / "chapters"
) -> list[str]:
    """Problems between ``chapters/*.ipynb`` and the toc: missing from either side."""
    root = toc_path.parent
    listed = set(toc_files(toc_path))
    problems = [
        f"{f}: listed in _toc.yml but no such page"
        for f in sorted(listed)
        if not any((root / f"{f}{ext}").exists() for ext in (".ipynb", ".md"))
    ]
    on_disk = {p.relative_to(root).with_suffix("").as_posix() for p in chapters.glob("*.ipynb")}
    problems += [f"{f}.ipynb: in chapters/ but not in _toc.yml" for f in sorted(on_disk - listed)]
    return problems


def output_problems(notebook: Path) -> list[str]:
    """Code cells of a notebook that carry outputs or execution counts."""
    nb = json.loads(notebook.read_text())
    return [
        f"{notebook.name}: cell {i} has outputs or an execution count"
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def structure_problems(notebook: Path) -> list[str]:
    """A title first, then the Colab cell, then a `parameters` cell near the top."""
    nb = json.loads(notebook.read_text())
    cells = nb["cells"]
    problems = []
    if (
        not cells
        or cells[0]["cell_type"] != "markdown"
        or not "".join(cells[0]["source"]).startswith("# ")
    ):
        problems.append(f"{notebook.name}: the first cell must be a markdown title '# ...'")
    code = [c for c in cells if c["cell_type"] == "code"]
    if not code or "google.colab" not in "".join(code[0]["source"]):
        problems.append(f"{notebook.name}: the first code cell must be the Colab install cell")
    elif "remove-cell" not in _tags(code[0]):
        problems.append(f"{notebook.name}: the Colab cell must be tagged remove-cell")
    tagged = [i for i, c in enumerate(cells) if "parameters" in _tags(c)]
    if len(tagged) != 1:
        problems.append(
            f"{notebook.name}: needs exactly one cell tagged 'parameters', found {len(tagged)}"
        )
    elif tagged[0] > PARAMETERS_WITHIN:
        problems.append(
            f"{notebook.name}: the 'parameters' cell is cell {tagged[0]}, must be within the first {PARAMETERS_WITHIN + 1}"
        )
    return problems


def smoke_parameters(path: Path = ROOT / "tests" / "smoke_parameters.yml") -> dict[str, dict]:
    """Smoke parameters per notebook path (relative to the repository)."""
    return yaml.safe_load(path.read_text()) or {}


def unknown_parameters(notebook: Path, params: dict) -> list[str]:
    """Names in ``params`` that the notebook's `parameters` cell does not define."""
    import papermill

    known = papermill.inspect_notebook(str(notebook))
    return [
        f"{notebook.name}: smoke parameter {name!r} is not in its parameters cell (has {sorted(known)})"
        for name in params
        if name not in known
    ]


def unparsed_parameters(notebook: Path) -> list[str]:
    """Names assigned in the `parameters` cell that papermill's inspection does not see.

    papermill skips a line holding more than one ``=`` (say ``<=`` or ``x = y`` in a comment), so
    such a parameter could not be checked against the smoke parameters.
    """
    import ast

    import papermill

    nb = json.loads(notebook.read_text())
    cell = next((c for c in nb["cells"] if "parameters" in _tags(c)), None)
    if cell is None:
        return []
    tree = ast.parse("".join(cell["source"]))
    assigned = [
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    ]
    seen = papermill.inspect_notebook(str(notebook))
    return [
        f"{notebook.name}: papermill cannot read parameter {name!r}: keep one '=' per line, none in comments"
        for name in assigned
        if name not in seen
    ]


_PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)")


def pins(text: str) -> dict[str, str]:
    """``name==version`` pins found in a requirements or environment file (names normalised)."""
    out = {}
    for line in text.splitlines():
        m = _PIN.match(line)
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out


def lock_mismatches(
    lock: Path = ROOT / "requirements.lock", env: Path = ROOT / "environment.yml"
) -> list[str]:
    """Differences between the pins of requirements.lock and environment.yml's pip section."""
    a, b = pins(lock.read_text()), pins(env.read_text())
    problems = [
        f"{k}: lock {a[k]} but environment.yml {b.get(k, 'missing')}"
        for k in sorted(a)
        if a[k] != b.get(k)
    ]
    problems += [f"{k}: in environment.yml but not in the lock" for k in sorted(set(b) - set(a))]
    if "python=3.11" not in env.read_text():
        problems.append("environment.yml must ask for python=3.11")
    return problems
