"""Look at the built book as a reader does: serve it on 127.0.0.1 and drive headless Chromium.

What a page shows is collected once (``visit``, ``crawl``, ``search``); the checks that judge it
(the ``*_problems`` functions) each return a list of readable problems, empty when all is well.
Keeping the two apart lets tests/test_zz_book.py run every check on the book and show each one
failing on a deliberately broken page.

The network is blocked for the browser: every request that does not go to the local server is
aborted (and reported), so the book must work offline.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit
from urllib.request import Request, urlopen

CHROMIUM = Path("/usr/bin/chromium")  # Debian's Chromium: `apt-get install chromium`
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]  # Playwright gives every launch a fresh temporary profile (its own --user-data-dir)
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 30_000  # longest wait for a page, MathJax or the search index


def chromium_missing() -> str | None:
    """Why the browser checks cannot run here (None when they can)."""
    if not CHROMIUM.exists():
        return (
            f"browser checks skipped: no Chromium at {CHROMIUM}; install Debian's with "
            "`apt-get install chromium` (.ci/run does this)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser checks skipped: playwright is not installed in .venv (run `make setup`)"
    return None


def launch(playwright):
    """Debian's headless Chromium, driven by Playwright (no browser download)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


# --------------------------------------------------------------------------- the build

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Build:
    """A `jupyter-book build` run: exit code, log (colours stripped), output and duration."""

    returncode: int
    log: str
    html: Path
    seconds: float


def build_book(source: Path, timeout: float = 1200) -> Build:
    """``jupyter-book build source -W -n --keep-going``, as `make book` runs it."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(jupyter_book), "build", str(source), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
    )
    log = _ANSI.sub("", proc.stdout + proc.stderr)
    return Build(proc.returncode, log, source / "_build" / "html", time.perf_counter() - t0)


def build_problems(build: Build) -> list[str]:
    """Sphinx's warnings and errors of a build that failed (empty for a clean build)."""
    if build.returncode == 0:
        return []
    lines = [
        line.strip()
        for line in build.log.splitlines()
        if re.search(r"WARNING|ERROR|CRITICAL|Error|Exception", line)
    ]
    return lines or [f"jupyter-book exited with {build.returncode}:", *build.log.splitlines()[-30:]]


# --------------------------------------------------------------------------- serving


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a browser closing a connection early
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str, method: str = "GET") -> tuple[int, bytes]:
    """HTTP status and body of ``url`` (a local URL; body empty for HEAD or an error)."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        return 200, base64.b64decode(payload) if header.endswith(";base64") else payload.encode()
    try:
        with urlopen(Request(url, method=method), timeout=30) as response:
            return response.status, response.read()
    except HTTPError as error:
        return error.code, b""
    except URLError:
        return 0, b""


# --------------------------------------------------------------------------- the browser


def new_context(browser, *, dark: bool = False):
    """A browser context; with ``dark=True`` the theme's dark mode is on before any page loads."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="dark" if dark else "light")
    context.set_default_timeout(TIMEOUT_MS)
    if dark:  # what pydata-sphinx-theme stores when a reader picks dark mode
        context.add_init_script(
            "localStorage.setItem('mode', 'dark'); localStorage.setItem('theme', 'dark');"
        )
    return context


def _open(context, base: str):
    """A new page whose requests outside ``base`` are aborted and listed."""
    page = context.new_page()
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith(base):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return page, blocked


_WAIT_JS = """async () => {
  // every image now, not when scrolled to (a lazy image below the fold never loads headless)
  for (const img of document.images) img.loading = "eager";
  const deadline = Date.now() + TIMEOUT_MS;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  while ([...document.images].some((i) => !i.complete) && Date.now() < deadline) await sleep(50);
  if (!document.querySelector('script[src*="mathjax" i]')) return "no MathJax";
  // after "load" a deferred MathJax has run: give it 2 s to show its startup, not more
  const started = Date.now() + 2000;
  while (!(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)
         && Date.now() < started) await sleep(50);
  if (!(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise))
    return "MathJax did not start";
  await window.MathJax.startup.promise;
  return "typeset";
}""".replace("TIMEOUT_MS", str(TIMEOUT_MS))

_COLLECT_JS = """() => {
  const prose = document.body.cloneNode(true);
  prose.querySelectorAll("pre, code, script, style, textarea, mjx-container, .highlight")
       .forEach((e) => e.remove());
  const colour = (e) => getComputedStyle(e).backgroundColor;
  return {
    title: document.title,
    theme: document.documentElement.dataset.theme || "",
    background: [colour(document.body), colour(document.documentElement)],
    math: [...document.querySelectorAll("span.math, div.math")].length,
    mjx: document.querySelectorAll("mjx-container").length,
    unrendered: [...document.querySelectorAll("span.math, div.math")]
      .filter((e) => !e.querySelector("mjx-container")).map((e) => e.textContent.trim().slice(0, 80)),
    merrors: [...document.querySelectorAll("mjx-merror")]
      .map((e) => e.getAttribute("data-mjx-error") || e.textContent.slice(0, 80)),
    prose: prose.textContent,
    images: [...document.images].map((i) => ({
      src: i.currentSrc || i.src, natural: i.naturalWidth, alt: i.alt,
      content: !!i.closest(".bd-article, article, main") && !(i.currentSrc || i.src).includes("/_static/"),
    })),
    links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
    ids: [...document.querySelectorAll("[id]")].map((e) => e.id)
      .concat([...document.querySelectorAll("a[name]")].map((a) => a.name)),
    download: [...document.querySelectorAll("a.btn-download-source-button")].map((a) => a.href),
  };
}"""


@dataclass
class PageReport:
    """What a reader's browser saw on one page."""

    url: str
    status: int
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    mathjax: str = ""
    data: dict = field(default_factory=dict)
    screenshot: Path | None = None

    @property
    def links(self) -> list[str]:
        return self.data.get("links", [])

    @property
    def ids(self) -> set[str]:
        return set(self.data.get("ids", []))

    @property
    def images(self) -> list[dict]:
        return self.data.get("images", [])


def visit(context, url: str, base: str, screenshot: Path | None = None) -> PageReport:
    """Load ``url`` like a reader (offline but for ``base``), wait for MathJax, collect the page."""
    page, blocked = _open(context, base)
    report = PageReport(url=url, status=0, blocked=blocked)
    page.on(
        "console",
        lambda m: report.console_errors.append(m.text) if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: report.page_errors.append(str(e)))
    try:
        response = page.goto(url, wait_until="load")
        report.status = response.status if response else 0
        report.mathjax = page.evaluate(_WAIT_JS)
        report.data = page.evaluate(_COLLECT_JS)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            report.screenshot = screenshot
    finally:
        page.close()
    return report


def search(context, base: str, term: str) -> list[str]:
    """The pages that the book's search page lists for ``term`` (absolute URLs)."""
    page, _ = _open(context, base)
    try:
        page.goto(f"{base}search.html?q={quote(term)}", wait_until="load")
        page.wait_for_function(
            "() => { const s = document.querySelector('#search-results p.search-summary');"
            " return s && s.innerText.trim().length > 0; }"
        )
        return page.eval_on_selector_all(
            "#search-results ul.search > li", "lis => lis.map(li => li.querySelector('a').href)"
        )
    finally:
        page.close()


# --------------------------------------------------------------------------- the crawl


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag == "a" and a.get("href") is not None:
            self.hrefs.append(a["href"])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":  # a redirect page
            target = re.search(r"url=(\S+)", a.get("content") or "", re.IGNORECASE)
            if target:
                self.hrefs.append(target.group(1).strip("'\""))


@dataclass
class SitePage:
    """One URL of the site: its HTTP status and, for an HTML page, its links and ids."""

    status: int
    links: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    html: bool = False


def _is_html(path: str) -> bool:
    return path.endswith((".html", ".htm", "/"))


def _key(url: str) -> str:
    """A URL without fragment and query: what the static server actually serves."""
    return urldefrag(url)[0].split("?", 1)[0]


def crawl(base: str, start: list[str], dom: list[PageReport] = ()) -> dict[str, SitePage]:
    """Every URL reachable by ``<a href>`` from ``start`` inside ``base``.

    HTML pages are fetched and parsed (their links followed); other files are only asked for
    their status. Links and ids that the browser saw in ``dom`` (added by scripts) count too.
    """
    seen: dict[str, SitePage] = {}
    from_dom = {_key(r.url): r for r in dom}
    queue = [_key(u) for u in start]
    while queue:
        url = queue.pop()
        if url in seen or not url.startswith(base):
            continue
        if _is_html(urlsplit(url).path):
            status, body = fetch(url)
            parser = _Anchors()
            if status == 200:
                parser.feed(body.decode("utf-8", "replace"))
            page = SitePage(status, [urljoin(url, h) for h in parser.hrefs], parser.ids, True)
            if url in from_dom:
                page.links += from_dom[url].links
                page.ids |= from_dom[url].ids
            seen[url] = page
            queue += [_key(u) for u in page.links if _key(u) not in seen]
        else:
            seen[url] = SitePage(fetch(url, method="HEAD")[0])
    return seen


def link_problems(site: dict[str, SitePage], base: str) -> list[str]:
    """Links inside the site whose page is missing or whose anchor is on no element."""
    problems = []
    for url, page in site.items():
        if not page.html or page.status != 200:
            continue
        for link in sorted(set(page.links)):
            if not link.startswith(base):
                continue  # outside the site (GitHub, Colab, ...): not crawled
            target, fragment = urldefrag(link)
            target = _key(target)
            where = f"{url.removeprefix(base)}: link to {link.removeprefix(base)}"
            got = site.get(target)
            if got is None or got.status != 200:
                problems.append(f"{where}: HTTP {got.status if got else 'not fetched'}")
            elif fragment and got.html and unquote(fragment) not in got.ids:
                problems.append(f"{where}: no element with id {unquote(fragment)!r}")
    return problems


# --------------------------------------------------------------------------- the checks


#: Errors of the book's pinned toolchain that are understood and harmless, with the reason.
#: Matched as whole messages: any other error, or this one in other words, still fails.
KNOWN_HARMLESS = {
    "Identifier 'THEBE_JS_URL' has already been declared": (
        "sphinx-thebe 0.3.1 adds its inline config script after Sphinx 7.4's builder started,"
        " so every page carries it twice and the second copy cannot redeclare its constants;"
        " the first copy ran, and the book does not use thebe (launch_buttons.thebe is off)"
    ),
}


def load_problems(report: PageReport) -> list[str]:
    """A page that did not load, logged a JavaScript error, or reached for the network."""
    name = report.url
    out = [f"{name}: HTTP {report.status}"] if report.status != 200 else []
    out += [
        f"{name}: console error: {e}"
        for e in report.console_errors
        if e.strip() not in KNOWN_HARMLESS
    ]
    out += [
        f"{name}: uncaught JavaScript error: {e}"
        for e in report.page_errors
        if e.strip() not in KNOWN_HARMLESS
    ]
    out += [f"{name}: request outside the book (blocked): {u}" for u in report.blocked]
    return out


_RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\$[^$\n]{0,200}?\\[A-Za-z]+[^$\n]{0,200}?\$"
)


def math_problems(report: PageReport, most: int = 5) -> list[str]:
    """Math not typeset offline: an element MathJax left alone, a MathJax error, raw TeX in text."""
    name, d = report.url, report.data
    out = [
        f"{name}: math not typeset by MathJax ({report.mathjax}): {t!r}" for t in d["unrendered"]
    ]
    out += [f"{name}: MathJax error: {e}" for e in d["merrors"]]
    for m in list(_RAW_TEX.finditer(d["prose"]))[:most]:
        context = d["prose"][max(0, m.start() - 30) : m.end() + 30].replace("\n", " ")
        out.append(f"{name}: raw TeX {m.group(0)!r} in the page text: ...{context}...")
    return out[: 2 * most]


def image_problems(report: PageReport) -> list[str]:
    """Images of the page that did not load (natural width 0)."""
    return [
        f"{report.url}: image did not load: {i['src']} (alt {i['alt']!r})"
        for i in report.images
        if i["natural"] <= 0
    ]


def search_problems(term: str, results: list[str]) -> list[str]:
    """The search page found nothing for ``term``."""
    return [] if results else [f"the search page finds no page for {term!r}"]


def launch_expectations(config: dict, rel: str) -> dict[str, str]:
    """Where the launch buttons of the chapter ``rel`` (e.g. ``chapters/01_mdp``) must point.

    ``config`` is the book's _config.yml: the notebook's path on the repository's branch.
    """
    repo = config["repository"]
    slug = urlsplit(repo["url"]).path.strip("/").removesuffix(".git")
    path = f"{repo.get('path_to_book') or ''}".strip("/")
    path = f"{path}/{rel}.ipynb" if path else f"{rel}.ipynb"
    branch = repo.get("branch", "main")
    launch = config.get("launch_buttons", {})
    out = {}
    if launch.get("colab_url"):
        out["Colab"] = f"{launch['colab_url'].rstrip('/')}/github/{slug}/blob/{branch}/{path}"
    if launch.get("binderhub_url"):
        out["Binder"] = (
            f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{slug}/{branch}?urlpath=lab/tree/{path}"
        )
    return out


def _cell_sources(notebook: dict) -> list[str]:
    return [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in notebook["cells"]
        if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]


def launch_problems(
    report: PageReport, expected: dict[str, str], source: Path | None = None
) -> list[str]:
    """Launch buttons not pointing at ``expected``; a download button that is not the notebook.

    The download button must serve the chapter's notebook: the same cells as ``source`` (the
    repository's file), papermill's injected parameters aside.
    """
    name, out = report.url, []
    for service, url in expected.items():
        host = urlsplit(url).netloc
        found = sorted({link for link in report.links if urlsplit(link).netloc == host})
        if found != [url]:
            out.append(f"{name}: {service} button points at {found or 'nothing'}, expected {url}")
    downloads = [u for u in report.data.get("download", []) if _key(u).endswith(".ipynb")]
    if not downloads:
        out.append(f"{name}: no download button for the notebook")
    for url in downloads:
        status, body = fetch(url)
        if status != 200:
            out.append(f"{name}: download button {url}: HTTP {status}")
        elif source is not None and _cell_sources(json.loads(body)) != _cell_sources(
            json.loads(source.read_text())
        ):
            out.append(f"{name}: download button {url} serves another notebook than {source.name}")
    return out


def transparency_problems(name: str, data: bytes) -> list[str]:
    """A raster image with transparent pixels (unreadable on the dark theme)."""
    from PIL import Image

    if data.lstrip()[:5] in (b"<?xml", b"<svg ") or b"<svg" in data[:512]:
        return []  # vector output: no pixels to check
    image = Image.open(io.BytesIO(data))
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return []
    alpha = image.convert("RGBA").getchannel("A")
    low = alpha.getextrema()[0]
    if low == 255:
        return []
    share = sum(alpha.histogram()[:255]) / (image.width * image.height)
    return [f"{name}: {share:.0%} of the pixels are transparent (alpha down to {low})"]


def dark_mode_problems(report: PageReport) -> list[str]:
    """The page is not in the theme's dark mode (attribute and a dark background)."""
    out = []
    if report.data.get("theme") != "dark":
        out.append(f"{report.url}: <html data-theme> is {report.data.get('theme')!r}, not 'dark'")
    for colour in report.data.get("background", []):
        rgba = [float(x) for x in re.findall(r"[\d.]+", colour)]
        if len(rgba) >= 3 and (len(rgba) == 3 or rgba[3] > 0):
            luminance = (0.2126 * rgba[0] + 0.7152 * rgba[1] + 0.0722 * rgba[2]) / 255
            if luminance > 0.5:
                out.append(f"{report.url}: background {colour} is light in dark mode")
            break
    return out


def screenshot_problems(path: Path) -> list[str]:
    """A screenshot that is missing, unreadable or blank (one colour)."""
    from PIL import Image

    if not path.exists():
        return [f"{path}: no screenshot"]
    with Image.open(path) as image:
        if min(image.size) < 100:
            return [f"{path}: screenshot is only {image.size}"]
        extrema = image.convert("RGB").getextrema()
    if all(lo == hi for lo, hi in extrema):
        return [f"{path}: screenshot is blank (one colour)"]
    return []
