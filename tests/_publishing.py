"""Checks of how the book is published, as functions so that tests can show each one failing.

- the footer of a built page names both licences (code: MIT; text, figures, prose: CC BY 4.0).
"""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent

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
