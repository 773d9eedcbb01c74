"""How the book is published (licences, citation), each check shown failing on a broken input."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest
import yaml
from _publishing import CFF_SCHEMA, ROOT, check_citation, footer_problems

#: SHA-256 of LICENSES/CC-BY-4.0.txt: the `licenseText` of CC-BY-4.0 in the SPDX License List
#: (npm package spdx-license-list 6.12.0, licenses/CC-BY-4.0.json) and a final newline
CC_BY_4_0_SHA256 = "d557539df68e771cc1eedcc91d13f70fca930e508d11eedcafa4b15db49e3744"
#: SHA-256 of schemas/cff-1.2.0.schema.json, the schema.json of Citation File Format 1.2.0
CFF_SCHEMA_SHA256 = "0b8d22140da702d766df318dcff3a91af2f39521298dcf36d76315fd99cc169b"
CITATION = ROOT / "CITATION.cff"


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


# --------------------------------------------------------------------------- CITATION.cff


def test_citation_cff_is_valid_citation_file_format_1_2_0() -> None:
    result = check_citation(CITATION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_cff_schema_is_the_unchanged_copy() -> None:
    assert hashlib.sha256(CFF_SCHEMA.read_bytes()).hexdigest() == CFF_SCHEMA_SHA256


def test_citation_cff_agrees_with_the_project() -> None:
    cff = yaml.safe_load(CITATION.read_text())
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cff["title"] == config["title"]
    assert cff["authors"] == [{"name": "The Local–Global Learning contributors"}]
    assert cff["version"] == project["version"]
    assert cff["repository-code"] == config["repository"]["url"]
    assert cff["license"] == ["MIT", "CC-BY-4.0"]
    paper = cff["references"][0]
    assert paper["title"].startswith("Local-Global Learning of Interpretable Control Policies")
    assert [a["family-names"] for a in paper["authors"]] == ["Banker", "Lawrence", "Mesbah"]


def _broken_citation(tmp_path: Path, old: str, new: str) -> Path:
    text = CITATION.read_text()
    assert old in text
    path = tmp_path / "CITATION.cff"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "finding"),
    [
        ("message: >-", "note: >-", "'message' is a required property"),
        ("cff-version: 1.2.0", "cff-version: 1.1.0", "'1.1.0' does not match"),
        ('url: "https://', 'url: "', "is not a 'uri'"),
        ("  - type: article", "  - type: paper", "'paper' is not one of"),
    ],
    ids=["no-message", "old-version", "url-not-a-uri", "unknown-reference-type"],
)
def test_citation_check_fails_on_an_invalid_file(
    tmp_path: Path, old: str, new: str, finding: str
) -> None:
    result = check_citation(_broken_citation(tmp_path, old, new))
    assert result.returncode != 0
    assert finding in result.stdout + result.stderr, result.stdout + result.stderr
