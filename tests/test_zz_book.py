"""The book as a reader sees it: the HTML built from this run's notebooks, read in Chromium.

Runs after tests/test_notebooks.py (pytest takes files in alphabetical order). The notebooks that
run just executed with their smoke parameters are copied over a staging copy of the book
(_build/smoke-book/, `execute_notebooks: off`, so nothing runs twice) and built with
`jupyter-book build -W -n --keep-going`. The HTML is served on 127.0.0.1 and Debian's headless
Chromium visits every page of _toc.yml once, offline (requests elsewhere are aborted); the checks
then judge what it saw. Screenshots are kept in _build/screenshots/. Each check is also shown
failing on a deliberately broken page. Without Chromium the browser tests are skipped.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import _browser as b
import pytest
import yaml
from _conventions import ROOT, smoke_parameters, toc_files, toc_notebooks
from _execute import EXECUTED, execute
from _publishing import footer_problems
from conftest import BOOK_TIMES, NOTEBOOK_FAILED, NOTEBOOK_TIMES

STAGE = ROOT / "_build" / "smoke-book"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SEARCH_TERMS = ["Bellman", "terminal cost"]
NOT_IN_THE_BOOK = "zyxwvutsrq"
#: top-level entries of the repository that are not book sources
NOT_SOURCES = {"_build", "tests", "lgutils", "scripts", "benchmarks", "data", "schemas"}


# --------------------------------------------------------------------------- the smoke book


def _executed(notebook: Path) -> Path:
    """Where tests/_execute.py writes the executed copy of ``notebook``."""
    if notebook.parent.name == "chapters":
        return EXECUTED / notebook.relative_to(notebook.parents[1])
    return EXECUTED / notebook.name


def _reusable(notebook: Path, out: Path, params: dict) -> bool:
    """An executed copy newer than its notebook, of a smoke run that raised nothing."""
    if not out.exists() or out.stat().st_mtime < notebook.stat().st_mtime:
        return False
    run = json.loads(out.read_text())
    if run.get("metadata", {}).get("papermill", {}).get("parameters") != params:
        return False
    outputs = [o for c in run["cells"] for o in c.get("outputs", [])]
    return not any(o.get("output_type") == "error" for o in outputs)


def _smoke_notebooks() -> dict[Path, Path]:
    """Each toc notebook -> its smoke run: this session's, else a fresh one, else run it now."""
    failed = sorted(nb.stem for nb in toc_notebooks() if nb.stem in NOTEBOOK_FAILED)
    if failed:
        pytest.skip(f"the smoke book is not built: notebooks {failed} failed above")
    smoke, runs = smoke_parameters(), {}
    for notebook in toc_notebooks():
        rel = notebook.relative_to(ROOT).as_posix()
        out, params = _executed(notebook), smoke.get(rel) or {}
        if rel not in NOTEBOOK_TIMES and not _reusable(notebook, out, params):
            out, NOTEBOOK_TIMES[rel] = execute(notebook, params)  # e.g. this file run alone
        runs[notebook] = out
    return runs


def _ignore_top_level(directory: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n in {"__pycache__", ".ipynb_checkpoints"} or n.endswith("-info")}
    if Path(directory) == ROOT:
        skip |= {n for n in names if n.startswith(".") or n in NOT_SOURCES}
    return skip


def stage_book(runs: dict[Path, Path], stage: Path = STAGE) -> Path:
    """A copy of the book's sources with the executed notebooks over the chapters."""
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(ROOT, stage, ignore=_ignore_top_level)
    for notebook, out in runs.items():
        shutil.copyfile(out, stage / notebook.relative_to(ROOT))
    config = yaml.safe_load((stage / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return stage


@pytest.fixture(scope="session")
def smoke_book() -> b.Build:
    build = b.build_book(stage_book(_smoke_notebooks()))
    BOOK_TIMES["build the smoke book (jupyter-book -W -n)"] = build.seconds
    return build


def test_the_book_builds_without_warnings(smoke_book: b.Build) -> None:
    problems = b.build_problems(smoke_book)
    assert not problems, "jupyter-book build -W -n failed:\n" + "\n".join(problems)


def test_every_page_names_both_licences_in_its_footer(smoke_book: b.Build) -> None:
    files = sorted(p for p in smoke_book.html.rglob("*.html") if "_static" not in p.parts)
    if not files:
        pytest.skip("the smoke book did not build: see test_the_book_builds_without_warnings")
    # every page, but not the bare redirect index.html -> the root page that Jupyter Book adds
    pages = {p.relative_to(smoke_book.html).as_posix(): p.read_text() for p in files}
    pages = {name: html for name, html in pages.items() if "<html" in html}
    problems = [p for name, html in pages.items() for p in footer_problems(html, name)]
    assert not problems, _report(problems)
    assert len(pages) >= len(toc_files())


def test_a_broken_cross_reference_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "_config.yml").write_text("title: broken\nexecute:\n  execute_notebooks: off\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (tmp_path / "index.md").write_text("# Broken\n\nAs {eq}`no-such-equation` shows.\n")
    build = b.build_book(tmp_path)
    problems = b.build_problems(build)
    assert build.returncode != 0
    assert any("no-such-equation" in p for p in problems), problems


def test_a_figure_made_in_a_chapter_reaches_the_notebook(tmp_path: Path) -> None:
    """Chapters run on the inline backend (an MPLBACKEND=Agg would show no figure at all)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("n = 2", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from lgutils.core import plotting\nfig, ax = plotting.subplots()\nax.plot(range(n))"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    src = tmp_path / "figure.ipynb"
    nbformat.write(nb, src)
    out, _ = execute(src, {"n": 3}, out_dir=tmp_path / "out")
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    pngs = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert pngs, f"no figure in the executed notebook (is MPLBACKEND set?): {outputs}"
    assert b.transparency_problems("the figure", base64.b64decode(pngs[0])) == []


# --------------------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser():
    reason = b.chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = b.launch(playwright)
        yield chromium
        chromium.close()


def screenshot_plan(toc_path: Path = ROOT / "_toc.yml") -> dict[str, str]:
    """toc file -> screenshot name: the preface and the first chapter of each part."""
    toc = yaml.safe_load(toc_path.read_text())
    plan = {toc["root"]: "preface.png"}
    for i, part in enumerate(toc.get("parts", []), start=1):
        files = [c["file"] for c in part.get("chapters", []) if "file" in c]
        if files:
            plan.setdefault(files[0], f"part{i}-{Path(files[0]).name}.png")
    return plan


@dataclass
class Site:
    """Everything the browser saw of the smoke book, collected once per session."""

    base: str
    pages: dict[str, b.PageReport]  # toc file (e.g. "chapters/00_getting_started") -> report
    dark: b.PageReport
    search: dict[str, list[str]]
    crawl: dict[str, b.SitePage]


@pytest.fixture(scope="session")
def site(browser, smoke_book: b.Build) -> Site:
    if not (smoke_book.html / "index.html").exists():
        pytest.skip("the smoke book did not build: see test_the_book_builds_without_warnings")
    t0 = time.perf_counter()
    plan = screenshot_plan()
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    notebooks = [nb.relative_to(ROOT).with_suffix("").as_posix() for nb in toc_notebooks()]
    with b.serve(smoke_book.html) as base:
        context = b.new_context(browser)
        pages = {
            f: b.visit(
                context, f"{base}{f}.html", base, SCREENSHOTS / plan[f] if f in plan else None
            )
            for f in toc_files()
        }
        search = {t: b.search(context, base, t) for t in [*SEARCH_TERMS, NOT_IN_THE_BOOK]}
        context.close()
        with_figures = [f for f in notebooks if any(i["content"] for i in pages[f].images)]
        chapter = (with_figures or notebooks or list(plan)[1:] or [toc_files()[0]])[0]
        dark_context = b.new_context(browser, dark=True)
        dark = b.visit(
            dark_context,
            f"{base}{chapter}.html",
            base,
            SCREENSHOTS / f"dark-{Path(chapter).name}.png",
        )
        dark_context.close()
        crawl = b.crawl(
            base, [f"{base}index.html", *(r.url for r in pages.values())], [*pages.values()]
        )
        BOOK_TIMES[f"browse it in Chromium ({len(pages)} pages, {len(crawl)} URLs)"] = (
            time.perf_counter() - t0
        )
        yield Site(base, pages, dark, search, crawl)


def _report(problems: list[str]) -> str:
    return "\n".join(problems)


@pytest.mark.browser
def test_every_page_loads_without_javascript_errors(site: Site) -> None:
    problems = [p for r in site.pages.values() for p in b.load_problems(r)]
    assert not problems, _report(problems)


@pytest.mark.browser
def test_equations_render_offline(site: Site) -> None:
    problems = [p for r in site.pages.values() for p in b.math_problems(r)]
    assert not problems, _report(problems)
    # not vacuous: the book has math, and MathJax typeset it from the book's own files
    assert sum(r.data["mjx"] for r in site.pages.values()) > 0


@pytest.mark.browser
def test_every_image_loads(site: Site) -> None:
    problems = [p for r in site.pages.values() for p in b.image_problems(r)]
    assert not problems, _report(problems)


@pytest.mark.browser
def test_every_internal_link_and_anchor_resolves(site: Site) -> None:
    problems = b.link_problems(site.crawl, site.base)
    assert not problems, _report(problems)
    assert all(r.url in site.crawl for r in site.pages.values())


@pytest.mark.browser
@pytest.mark.parametrize("term", SEARCH_TERMS)
def test_the_search_page_finds(site: Site, term: str) -> None:
    assert b.search_problems(term, site.search[term]) == []
    found = {b._key(u).removeprefix(site.base) for u in site.search[term]}
    assert found <= {f"{f}.html" for f in toc_files()} | {"genindex.html"}, found


@pytest.mark.browser
def test_launch_and_download_buttons_point_at_the_notebook_on_main(site: Site) -> None:
    notebooks = toc_notebooks()
    if not notebooks:
        pytest.skip("no notebook in _toc.yml")
    problems = []
    for notebook in notebooks:
        rel = notebook.relative_to(ROOT).with_suffix("").as_posix()
        expected = b.launch_expectations(CONFIG, rel)
        assert "/blob/main/" in expected.get("Colab", ""), (
            f"_config.yml: no Colab on main: {expected}"
        )
        problems += b.launch_problems(site.pages[rel], expected, source=notebook)
    assert not problems, _report(problems)


@pytest.mark.browser
def test_screenshots_of_the_preface_and_of_each_part_are_kept(site: Site) -> None:
    plan = screenshot_plan()
    problems = [p for name in plan.values() for p in b.screenshot_problems(SCREENSHOTS / name)]
    assert not problems, _report(problems)


@pytest.mark.browser
def test_dark_mode_shows_opaque_figures(site: Site) -> None:
    problems = b.dark_mode_problems(site.dark) + b.screenshot_problems(site.dark.screenshot)
    sources = {
        i["src"] for r in [*site.pages.values(), site.dark] for i in r.images if i["content"]
    }
    for src in sorted(sources):
        status, data = b.fetch(src)
        problems += b.transparency_problems(src, data) if status == 200 else []
    assert not problems, _report(problems)


# --------------------------------------------------------------------------- broken pages

_PAGE = "<!doctype html><html><head><title>{name}</title></head><body>{body}</body></html>"
BROKEN = {
    "good": '<h1 id="top">A good page</h1><a href="good.html#top">top</a> <a href="#top">up</a>'
    ' <img src="pixel.png" alt="a pixel">',
    "js_error": "<p>text</p><script>a_function_the_book_lacks()</script>",
    "network": '<script src="https://example.invalid/library.js"></script>',
    "raw_tex": r'<p>An equation left as typed: $$x^2 + 1$$ and <span class="math">\(a + b\)</span>.</p>',
    "missing_image": '<img src="figures/missing.png" alt="a figure">',
    "dead_anchor": '<a href="good.html#no-such-section">a</a> <a href="gone.html">b</a>',
    "wrong_launch": '<a href="https://colab.research.google.com/github/x/y/blob/master/c.ipynb">Colab</a>',
}


@pytest.fixture(scope="session")
def broken_site(browser, tmp_path_factory) -> Site:
    """Small deliberately broken pages (and a good one), seen by the same browser."""
    from PIL import Image

    root = tmp_path_factory.mktemp("broken-site")
    for name, body in BROKEN.items():
        (root / f"{name}.html").write_text(_PAGE.format(name=name, body=body))
    Image.new("RGB", (4, 4), "white").save(root / "pixel.png")
    with b.serve(root) as base:
        context = b.new_context(browser)
        pages = {name: b.visit(context, f"{base}{name}.html", base) for name in BROKEN}
        context.close()
        dark_context = b.new_context(browser, dark=True)
        light = b.visit(dark_context, f"{base}good.html", base)  # no dark theme on this page
        dark_context.close()
        crawl = b.crawl(base, [pages["good"].url, pages["dead_anchor"].url], [*pages.values()])
        yield Site(base, pages, light, {}, crawl)


@pytest.mark.browser
def test_load_check_fails_on_a_javascript_error_and_a_network_request(broken_site: Site) -> None:
    pages = broken_site.pages
    assert b.load_problems(pages["good"]) == []
    assert any("a_function_the_book_lacks" in p for p in b.load_problems(pages["js_error"]))
    assert any("example.invalid" in p for p in b.load_problems(pages["network"]))


@pytest.mark.browser
def test_math_check_fails_on_raw_tex(broken_site: Site) -> None:
    assert b.math_problems(broken_site.pages["good"]) == []
    problems = b.math_problems(broken_site.pages["raw_tex"])
    assert any("'$$'" in p for p in problems), problems
    assert any("not typeset" in p and "a + b" in p for p in problems), problems


@pytest.mark.browser
def test_image_check_fails_on_a_missing_image(broken_site: Site) -> None:
    assert b.image_problems(broken_site.pages["good"]) == []
    problems = b.image_problems(broken_site.pages["missing_image"])
    assert len(problems) == 1 and "figures/missing.png" in problems[0]


@pytest.mark.browser
def test_link_check_fails_on_a_dead_anchor_and_a_missing_page(broken_site: Site) -> None:
    problems = b.link_problems(broken_site.crawl, broken_site.base)
    assert sorted(problems) == [
        "dead_anchor.html: link to gone.html: HTTP 404",
        "dead_anchor.html: link to good.html#no-such-section: no element with id 'no-such-section'",
    ]


@pytest.mark.browser
def test_search_check_fails_on_a_term_the_book_lacks(site: Site) -> None:
    assert b.search_problems(NOT_IN_THE_BOOK, site.search[NOT_IN_THE_BOOK]) != []


@pytest.mark.browser
def test_launch_check_fails_on_a_wrong_branch_and_no_download(broken_site: Site) -> None:
    expected = b.launch_expectations(CONFIG, "chapters/00_getting_started")
    problems = b.launch_problems(broken_site.pages["wrong_launch"], expected)
    assert any("Colab button points at" in p and "/master/" in p for p in problems), problems
    assert any("no download button" in p for p in problems), problems


def test_screenshot_check_fails_on_a_blank_or_missing_screenshot(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (800, 600), "white").save(tmp_path / "blank.png")
    assert "blank" in b.screenshot_problems(tmp_path / "blank.png")[0]
    assert "no screenshot" in b.screenshot_problems(tmp_path / "missing.png")[0]


@pytest.mark.browser
def test_dark_mode_check_fails_on_a_light_page_and_a_transparent_figure(
    broken_site: Site, tmp_path: Path
) -> None:
    import matplotlib.pyplot as plt

    assert any("not 'dark'" in p for p in b.dark_mode_problems(broken_site.dark))
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "transparent.png", transparent=True)
    fig.savefig(tmp_path / "opaque.png", facecolor="white")
    plt.close(fig)
    assert b.transparency_problems("opaque", (tmp_path / "opaque.png").read_bytes()) == []
    problems = b.transparency_problems("plot", (tmp_path / "transparent.png").read_bytes())
    assert problems and "transparent" in problems[0]
