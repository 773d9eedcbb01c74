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


# --- size and structure rules of lgutils and the chapters -------------------------------------

MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80
MAX_CELL_LINES = 30
#: Modules that may be imported inside a function: optional or heavy dependencies that most
#: callers of the function's module never need.
LAZY_IMPORTS = ("torch", "stable_baselines3", "tqdm", "joblib", "dask", "distributed", "urllib")


def package_modules(package: Path = ROOT / "lgutils") -> list[Path]:
    """Every module of the package."""
    return sorted(package.rglob("*.py"))


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def long_modules(paths: list[Path], limit: int = MAX_MODULE_LINES) -> list[str]:
    """Modules longer than ``limit`` lines."""
    out = []
    for p in paths:
        n = len(p.read_text().splitlines())
        if n > limit:
            out.append(f"{p.name}: {n} lines > {limit}")
    return out


def _body_lines(node) -> int:
    """Lines of a function's body, its docstring excluded."""
    import ast

    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    if not body:
        return 0
    return node.end_lineno - body[0].lineno + 1


def long_functions(paths: list[Path], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions (and methods) whose body, docstring excluded, is longer than ``limit`` lines."""
    import ast

    out = []
    for p in paths:
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _body_lines(node)
                if n > limit:
                    out.append(f"{p.name}:{node.lineno} {node.name}: {n} lines > {limit}")
    return out


def long_cells(notebook: Path, limit: int = MAX_CELL_LINES) -> list[str]:
    """Code cells longer than ``limit`` lines, the Colab and `parameters` cells aside."""
    nb = json.loads(notebook.read_text())
    out = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or {"parameters", "remove-cell"} & set(_tags(cell)):
            continue
        n = len("".join(cell["source"]).splitlines())
        if n > limit:
            out.append(f"{notebook.name}: cell {i} has {n} lines > {limit}")
    return out


def _imports(path: Path, root: Path = ROOT):
    """``(module imported, names, at module level?)`` for each import of a module of the package."""
    import ast

    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], id(node) in top, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names], id(node) in top, node.lineno


def import_graph(paths: list[Path], root: Path = ROOT) -> dict[str, set[str]]:
    """Module-level imports between the package's modules: module -> modules it imports."""
    names = {_module_name(p, root) for p in paths}
    graph: dict[str, set[str]] = {}
    for p in paths:
        me = _module_name(p, root)
        deps = graph.setdefault(me, set())
        for mod, items, _, _ in _imports(p, root):
            for target in [mod] + [f"{mod}.{i}" for i in items]:
                if target in names and target != me:
                    deps.add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles of the import graph (each as a list of modules), found by depth-first search.

    A package's ``__init__`` that re-exports its own modules is not a cycle.
    """
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if node.startswith(dep + "."):  # a module importing its own package's __init__
                continue
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def private_imports(paths: list[Path], root: Path = ROOT) -> list[str]:
    """Imports of another module's private (underscore) names."""
    out = []
    for p in paths:
        for mod, items, _, line in _imports(p, root):
            if (root / mod.split(".")[0]).is_dir():
                out += [
                    f"{p.name}:{line} imports {mod}.{i}"
                    for i in items
                    if i.startswith("_")
                    and not i.startswith("__")
                    and not (root / mod.replace(".", "/") / f"{i}.py").exists()  # a module
                ]
    return out


def function_level_imports(paths: list[Path], root: Path = ROOT) -> list[str]:
    """Imports inside functions, other than of the optional heavy modules of :data:`LAZY_IMPORTS`.

    ``getting_started`` is exempt: checking that the stack imports is its purpose.
    """
    out = []
    for p in paths:
        if p.stem == "getting_started":
            continue
        for mod, _, at_top, line in _imports(p, root):
            if not at_top and mod.split(".")[0] not in LAZY_IMPORTS:
                out.append(f"{p.name}:{line} imports {mod} inside a function")
    return out


# Widgets (tqdm.auto / tqdm.notebook / ipywidgets) load require.js and the widget manager from a
# CDN, which an offline reader of the HTML book cannot reach: progress bars are text bars.
WIDGET_IMPORT = re.compile(r"^\s*(from|import)\s+(tqdm\.(auto|notebook|autonotebook)|ipywidgets)\b")


def widget_imports(paths: list[Path]) -> list[str]:
    """``file:line`` of each import of a widget progress bar in modules and notebooks."""
    found = []
    for path in paths:
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            lines = [
                ln
                for c in cells
                if c["cell_type"] == "code"
                for ln in "".join(c["source"]).splitlines()
            ]
        else:
            lines = path.read_text().splitlines()
        found += [f"{path.name}:{i}" for i, ln in enumerate(lines, 1) if WIDGET_IMPORT.match(ln)]
    return found


GLUE_CALL = re.compile(r"""\bglue\(\s*["']([^"']+)["']""")


def duplicate_glue_keys(notebook: Path) -> list[str]:
    """Glue names (literal ones) that a notebook glues in more than one place: MyST-NB warns on
    each, so ``jupyter-book build -W`` fails."""
    cells = json.loads(notebook.read_text())["cells"]
    keys = [
        k
        for c in cells
        if c["cell_type"] == "code"
        for k in GLUE_CALL.findall("".join(c["source"]))
    ]
    return sorted({f"{notebook.name}: {k}" for k in keys if keys.count(k) > 1})
