"""How the book is published: its licences, and each check shown failing on a broken input."""

from __future__ import annotations

import hashlib
import tomllib

import yaml
from _publishing import ROOT, footer_problems

#: SHA-256 of LICENSES/CC-BY-4.0.txt: the `licenseText` of CC-BY-4.0 in the SPDX License List
#: (npm package spdx-license-list 6.12.0, licenses/CC-BY-4.0.json) and a final newline
CC_BY_4_0_SHA256 = "d557539df68e771cc1eedcc91d13f70fca930e508d11eedcafa4b15db49e3744"


# --------------------------------------------------------------------------- licences


def test_the_code_is_under_the_mit_licence_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) ")
    assert "Permission is hereby granted, free of charge, to any person" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"


def test_the_content_licence_is_the_unchanged_cc_by_4_0_legal_code() -> None:
    data = (ROOT / "LICENSES" / "CC-BY-4.0.txt").read_bytes()
    assert data.startswith(b"Creative Commons Attribution 4.0 International\n")
    assert hashlib.sha256(data).hexdigest() == CC_BY_4_0_SHA256


def test_the_footer_of_the_config_names_both_licences() -> None:
    footer = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["extra_footer"]
    assert footer_problems(f'<div class="extra_footer">{footer}</div>', "_config.yml") == []


def test_the_readme_states_both_licences() -> None:
    readme = (ROOT / "README.md").read_text()
    for words in ["MIT", "`LICENSE`", "CC BY 4.0", "`LICENSES/CC-BY-4.0.txt`"]:
        assert words in readme, words


def test_footer_check_fails_on_a_page_without_both_licences() -> None:
    assert footer_problems("<p>no footer</p>", "a.html") == [
        "a.html: no extra footer (html: extra_footer: in _config.yml)"
    ]
    only_mit = '<div class="extra_footer"><a href="../LICENSE">MIT License</a></div>'
    problems = footer_problems(only_mit, "b.html")
    assert len(problems) == 2 and all("CC BY 4.0" in p for p in problems), problems
    unlinked = '<div class="extra_footer">MIT License, CC BY 4.0</div>'
    assert len(footer_problems(unlinked, "c.html")) == 2
