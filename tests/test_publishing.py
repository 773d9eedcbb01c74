"""How the book is published: licences, citation, CI and workflows; each check fails on bad input."""

from __future__ import annotations

import hashlib
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml
from _publishing import (
    CFF_SCHEMA,
    CI_RUN,
    ROOT,
    WORKFLOWS,
    action_files,
    check_citation,
    check_jsonschema,
    command_problems,
    footer_problems,
    readme_commands,
    workflow_files,
)

#: SHA-256 of LICENSES/CC-BY-4.0.txt: the `licenseText` of CC-BY-4.0 in the SPDX License List
#: (npm package spdx-license-list 6.12.0, licenses/CC-BY-4.0.json) and a final newline
CC_BY_4_0_SHA256 = "d557539df68e771cc1eedcc91d13f70fca930e508d11eedcafa4b15db49e3744"
#: SHA-256 of schemas/cff-1.2.0.schema.json, the schema.json of Citation File Format 1.2.0
CFF_SCHEMA_SHA256 = "0b8d22140da702d766df318dcff3a91af2f39521298dcf36d76315fd99cc169b"
CITATION = ROOT / "CITATION.cff"
WORKFLOW = WORKFLOWS / "book.yml"


def _edit(path: Path, old: str, new: str) -> Path:
    """Replace the first ``old`` of a file by ``new`` (which must be there)."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


def _broken(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    """A copy of ``source`` in ``tmp_path``, edited by :func:`_edit`."""
    return _edit(Path(shutil.copy(source, tmp_path / source.name)), old, new)


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


# --------------------------------------------------------------------------- GitHub workflows


def _check_workflows(*files: Path):
    return check_jsonschema("--builtin-schema", "vendor.github-workflows", *files)


def test_every_workflow_is_valid_for_github() -> None:
    assert WORKFLOW in workflow_files()
    result = _check_workflows(*workflow_files())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_every_action_of_the_repository_is_valid_for_github() -> None:
    assert action_files(), "no .github/actions/*/action.yml"
    result = check_jsonschema("--builtin-schema", "vendor.github-actions", *action_files())
    assert result.returncode == 0, result.stdout + result.stderr


#: broken copies of CITATION.cff and of the workflow, and what check-jsonschema must find
BROKEN = {
    "cff-no-message": (CITATION, "message: >-", "note: >-", "'message' is a required property"),
    "cff-old-version": (CITATION, "cff-version: 1.2.0", "cff-version: 1.1.0", "does not match"),
    "cff-url-not-a-uri": (CITATION, 'url: "https://', 'url: "', "is not a 'uri'"),
    "cff-unknown-reference-type": (CITATION, "type: article", "type: paper", "'paper' is not"),
    "workflow-no-jobs": (WORKFLOW, "\njobs:\n", "\njob:\n", "'jobs' is a required property"),
    "workflow-unknown-event": (WORKFLOW, "  pull_request:", "  pull-request:", "book.yml::$.on"),
    "workflow-unknown-permission": (
        WORKFLOW,
        "      pages: write\n",
        "      pages: admin\n",
        "book.yml::$.jobs['pages-deploy']",
    ),
    "workflow-not-a-boolean": (
        WORKFLOW,
        "cancel-in-progress: false",
        "cancel-in-progress: maybe",
        "book.yml::$.jobs['pages-deploy']",
    ),
    "workflow-not-yaml": (
        WORKFLOW,
        "  - run: make book\n",
        "  - run: [make book\n",
        "Failed to parse",
    ),
}


@pytest.mark.parametrize(("source", "old", "new", "finding"), BROKEN.values(), ids=BROKEN.keys())
def test_validation_fails_on_a_broken_file(
    tmp_path: Path, source: Path, old: str, new: str, finding: str
) -> None:
    broken = _broken(tmp_path, source, old, new)
    result = check_citation(broken) if source == CITATION else _check_workflows(broken)
    assert result.returncode != 0
    assert finding in result.stdout + result.stderr, result.stdout + result.stderr


def test_ci_and_workflows_run_exactly_the_readmes_commands() -> None:
    assert readme_commands() == ["make test", "make book"]
    assert command_problems() == []


def test_the_pages_deploy_has_the_least_permissions_and_never_races() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    assert workflow["permissions"] == {"contents": "read"}
    assert "permissions" not in jobs["ci"]
    assert jobs["pages-build"]["permissions"] == {"contents": "read", "pages": "read"}
    deploy = jobs["pages-deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    assert deploy["needs"] == "pages-build" and jobs["pages-build"]["needs"] == "ci"
    main_push = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert jobs["pages-build"]["if"] == deploy["if"] == main_push


def test_the_workflow_caches_the_venv_and_the_executions_and_keeps_the_html() -> None:
    steps = yaml.safe_load((ROOT / ".github/actions/book-env/action.yml").read_text())
    caches = [
        s["with"] for s in steps["runs"]["steps"] if s.get("uses", "").startswith("actions/cache@")
    ]
    venv, executions = caches
    assert venv["path"] == ".venv" and "hashFiles('requirements.lock')" in venv["key"]
    assert "_build/.jupyter_cache" in executions["path"].split()
    build = yaml.safe_load(WORKFLOW.read_text())["jobs"]["pages-build"]["steps"]
    uploads = {s["uses"].split("@")[0]: s.get("with", {}) for s in build if "uses" in s}
    assert uploads["actions/upload-pages-artifact"]["path"] == "_build/html"
    assert uploads["actions/upload-artifact"] == {
        "name": "book-html",
        "path": "_build/html",
        "if-no-files-found": "error",
    }


# --- the command check fails where the README, .ci/run and the workflows drift apart


@pytest.fixture
def copies(tmp_path: Path) -> dict[str, Path]:
    """Copies of the README, .ci/run, the workflow and the repository's actions."""
    paths = {"readme": ROOT / "README.md", "ci_run": CI_RUN, "workflow": WORKFLOW}
    out = {k: Path(shutil.copy(p, tmp_path / p.name)) for k, p in paths.items()}
    out["actions"] = [
        Path(shutil.copy(p, tmp_path / f"{p.parent.name}.yml")) for p in action_files()
    ]
    return out


def _problems(c: dict) -> list[str]:
    return command_problems(c["readme"], c["ci_run"], [c["workflow"]], c["actions"])


def test_command_check_passes_on_unchanged_copies(copies: dict) -> None:
    assert _problems(copies) == []


def test_command_check_fails_when_the_readme_changes_a_command(copies: dict) -> None:
    _edit(copies["readme"], "make test   #", "make check   #")
    assert _problems(copies) == [
        ".ci/run: builds and tests with ['make test', 'make book'], "
        "the README says ['make check', 'make book']"
    ]


def test_command_check_fails_when_ci_skips_the_book(copies: dict) -> None:
    _edit(copies["ci_run"], "\nmake book\n", "\n")
    assert _problems(copies) == [
        ".ci/run: builds and tests with ['make test'], the README says ['make test', 'make book']"
    ]


def test_command_check_fails_on_a_workflow_with_its_own_commands(copies: dict) -> None:
    _edit(copies["workflow"], "      - run: bash .ci/run\n", "      - run: make test -k claims\n")
    _edit(
        copies["workflow"],
        "      - run: make book\n",
        "      - run: .venv/bin/jupyter-book build .\n",
    )
    problems = _problems(copies)
    assert any("job ci runs 'make test -k claims'" in p for p in problems), problems
    assert any("job pages-build runs '.venv/bin/jupyter-book build .'" in p for p in problems)
    assert any("no workflow job runs `bash .ci/run`" in p for p in problems), problems
    assert any("publishes what ['.venv/bin/jupyter-book build .'] built" in p for p in problems)


def test_command_check_fails_when_ci_does_not_run_on_pull_requests(copies: dict) -> None:
    _edit(copies["workflow"], "  pull_request:\n", "")
    assert _problems(copies) == [
        "no workflow job runs `bash .ci/run` on both push and pull_request"
    ]
