"""Execute the book's notebooks into Jupyter Book's cache, several at a time, before the build.

`make book` runs this, then `jupyter-book build`, which finds every notebook's outputs in its
cache (`_build/.jupyter_cache`, `execute_notebooks: cache` in `_config.yml`) and executes
nothing again. Jupyter Book 1 executes the notebooks one after the other; on 2 cores chapter 07
keeps both busy (its evaluation runs on 2 processes) while the other eleven notebooks, mostly on
one core, took 6 minutes in a row. Here they run beside it, the longest first, and a notebook
that reads the others' metrics (chapter 11) runs once they have finished.

A notebook is executed exactly as Jupyter Book would (jupyter-cache's ``single_nb_execution``,
in the notebook's folder, with `_config.yml`'s timeout, errors not allowed) and its outputs are
stored as Jupyter Book stores them. A notebook already in the cache is skipped. A notebook that
fails is not stored; its error is printed, the others run on, and the script exits with status 1
(`jupyter-book build` would execute it again and fail the same way).

Usage::

    python scripts/execute_book.py [--jobs 2] [--first NOTEBOOK ...] [--last NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
import yaml
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution

ROOT = Path(__file__).resolve().parent.parent


def toc_notebooks(root: Path) -> list[Path]:
    """The notebooks of `_toc.yml`, in its order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [root / f"{f}.ipynb" for f in files if (root / f"{f}.ipynb").exists()]


def execute(path: Path, timeout: int) -> tuple[nbformat.NotebookNode, float, str | None]:
    """One notebook, executed in its folder: (executed notebook, seconds, error or None)."""
    nb = nbformat.read(path, as_version=4)
    result = single_nb_execution(nb, cwd=str(path.parent), timeout=timeout, allow_errors=False)
    return nb, result.time, result.exc_string if result.err is not None else None


def _cached(cache, path: Path, root: Path) -> bool:
    """Whether the cache holds this notebook's outputs (for its code as it is now)."""
    try:
        cache.match_cache_notebook(nbformat.read(path, as_version=4))
    except KeyError:
        return False
    print(f"{path.relative_to(root)}: in the cache", flush=True)
    return True


def _store(cache, path, nb, seconds: float, error: str | None, root: Path, failed: list) -> None:
    """Store an executed notebook as Jupyter Book does; report a failed one instead."""
    name = path.relative_to(root)
    if error is not None:
        failed.append(str(name))
        print(f"{name}: FAILED after {seconds:.2f} s\n{error}", file=sys.stderr, flush=True)
        return
    record = cache.add_nb_to_project(str(path))
    cache.cache_notebook_bundle(
        CacheBundleIn(nb, record.uri, data={"execution_seconds": seconds}),
        check_validity=False,
        overwrite=True,
    )
    print(f"{name}: executed in {seconds:.2f} seconds", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's folder")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at a time")
    parser.add_argument("--first", action="append", default=[], help="start this one first")
    parser.add_argument(
        "--last", action="append", default=[], help="run this one after all the others"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive integer, got {args.jobs}")
    root = args.root.resolve()
    config = yaml.safe_load((root / "_config.yml").read_text())["execute"]
    if config.get("execute_notebooks") != "cache" or config.get("run_in_temp", False):
        parser.error("_config.yml must execute notebooks with `cache`, in their folder")
    cache = get_cache(str(root / "_build" / ".jupyter_cache"))
    notebooks = toc_notebooks(root)
    first, last = ([(root / f).resolve() for f in names] for names in (args.first, args.last))
    for option, paths in (("--first", first), ("--last", last)):
        missing = [str(f) for f in paths if f not in notebooks]
        if missing:
            parser.error(f"{option} names notebooks that are not in _toc.yml: {missing}")
    rest = [p for p in notebooks if p not in first and p not in last]
    waves = [[p for p in [*first, *rest] if p not in last], last]
    failed: list[str] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for wave in waves:
            futures = {
                pool.submit(execute, p, int(config["timeout"])): p
                for p in wave
                if not _cached(cache, p, root)
            }
            for future in as_completed(futures):
                _store(cache, futures[future], *future.result(), root, failed)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    status = main()
    print(f"notebooks executed in {time.perf_counter() - start:.1f} s of wall-clock time")
    sys.exit(status)
