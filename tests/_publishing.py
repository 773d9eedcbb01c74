"""Checks of how the book is published, as functions so that tests can show each one failing.

- the footer of a built page names both licences (code: MIT; text, figures, prose: CC BY 4.0);
- `check-jsonschema`, the CLI that validates CITATION.cff offline.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
CFF_SCHEMA = ROOT / "schemas" / "cff-1.2.0.schema.json"

#: what the footer of every page must name: each licence, and a link to its text (a regex)
LICENCES = {
    "MIT License": r"/LICENSE$",
    "CC BY 4.0": r"creativecommons\.org/licenses/by/4\.0/?$",
}


# --------------------------------------------------------------------------- the footer


def footer_problems(html: str, page: str) -> list[str]:
    """What the extra footer of a built page lacks: each licence's name and a link to its text."""
    footer = BeautifulSoup(html, "html.parser").select_one(".extra_footer")
    if footer is None:
        return [f"{page}: no extra footer (html: extra_footer: in _config.yml)"]
    text = " ".join(footer.get_text(" ").split())
    links = [a.get("href", "") for a in footer.find_all("a")]
    problems = []
    for name, target in LICENCES.items():
        if name not in text:
            problems.append(f"{page}: the footer does not name the {name}: {text!r}")
        if not any(re.search(target, href) for href in links):
            problems.append(f"{page}: the footer has no link to the {name} ({target}): {links}")
    return problems


# --------------------------------------------------------------------------- the validator


def check_jsonschema(*args: str | Path) -> subprocess.CompletedProcess:
    """The check-jsonschema CLI of this environment (pinned in requirements.lock)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def check_citation(cff: Path) -> subprocess.CompletedProcess:
    """check-jsonschema on a CITATION.cff, against the CFF 1.2.0 schema kept in schemas/."""
    return check_jsonschema("--default-filetype", "yaml", "--schemafile", CFF_SCHEMA, cff)
