"""Checks of how the book is published, as functions so that tests can show each one failing.

- the footer of a built page names both licences (code: MIT; text, figures, prose: CC BY 4.0);
- the CI script and the GitHub workflows run the README's two commands and nothing else to
  build or test the book;
- `check-jsonschema`, the CLI that validates the workflows and CITATION.cff offline.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"
CI_RUN = ROOT / ".ci" / "run"
CFF_SCHEMA = ROOT / "schemas" / "cff-1.2.0.schema.json"

#: what the footer of every page must name: each licence, and a link to its text (a regex)
LICENCES = {
    "MIT License": r"/LICENSE$",
    "CC BY 4.0": r"creativecommons\.org/licenses/by/4\.0/?$",
}
#: a shell line that builds or tests the book: it must be one of the README's commands
BUILDS_OR_TESTS = re.compile(r"\b(make|pytest|jupyter-book|jupyter_book|sphinx-build|tox|nox)\b")
#: how a workflow runs the CI script
CI_STEP = "bash .ci/run"


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


# --------------------------------------------------------------------------- the commands


def readme_commands(readme: Path = ROOT / "README.md") -> list[str]:
    """The commands of the README's "The two commands" code block, comments stripped."""
    text = readme.read_text()
    section = re.search(r"^## The two commands\n(.*?)(?=^## )", text, re.M | re.S)
    if section is None:
        raise ValueError(f"{readme.name}: no section '## The two commands'")
    block = re.search(r"^```(?:bash|sh|console)?\n(.*?)^```", section.group(1), re.M | re.S)
    if block is None:
        raise ValueError(f"{readme.name}: no code block in '## The two commands'")
    return _commands(block.group(1))


def _commands(script: str) -> list[str]:
    """The non-empty lines of a shell script, comments and surrounding blanks stripped."""
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in script.splitlines())
    return [" ".join(line.split()) for line in lines if line]


def script_commands(script: Path = CI_RUN) -> list[str]:
    """The lines of a shell script that build or test the book (make, pytest, jupyter-book...)."""
    return [c for c in _commands(script.read_text()) if BUILDS_OR_TESTS.search(c)]


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: not a YAML mapping")
    return data


def workflow_files(workflows: Path = WORKFLOWS) -> list[Path]:
    return sorted([*workflows.glob("*.yml"), *workflows.glob("*.yaml")])


def action_files(actions: Path = ACTIONS) -> list[Path]:
    return sorted([*actions.glob("*/action.yml"), *actions.glob("*/action.yaml")])


def _triggers(workflow: dict) -> set[str]:
    on = workflow.get("on", workflow.get(True))  # PyYAML reads a bare `on:` key as True
    if isinstance(on, str):
        return {on}
    return set(on or [])


def step_runs(steps: list[dict]) -> list[str]:
    """The shell commands of a list of steps (each line of each `run:`)."""
    return [c for step in steps or [] for c in _commands(str(step.get("run", "")))]


def _uses(steps: list[dict]) -> list[str]:
    return [str(step.get("uses", "")).split("@")[0] for step in steps or []]


def command_problems(
    readme: Path = ROOT / "README.md",
    ci_run: Path = CI_RUN,
    workflows: list[Path] | None = None,
    actions: list[Path] | None = None,
) -> list[str]:
    """Where the CI script or the workflows build or test the book otherwise than the README says.

    - `.ci/run` runs the README's commands, all of them, in the README's order, and no other
      command that builds or tests;
    - every shell line of every workflow (and of the repository's own composite actions) is
      `bash .ci/run` or one of the README's commands;
    - a job runs `bash .ci/run` on every push and pull request;
    - the job that uploads the GitHub Pages artifact builds it with the README's `make book`.
    """
    workflows = workflow_files() if workflows is None else workflows
    actions = action_files() if actions is None else actions
    expected = readme_commands(readme)
    allowed = [CI_STEP, *expected]
    book = [c for c in expected if c.split()[:2] == ["make", "book"]]
    problems = [] if book else [f"README: no `make book` among its commands {expected}"]
    found = script_commands(ci_run)
    if found != expected:
        problems.append(f".ci/run: builds and tests with {found}, the README says {expected}")
    for path in actions:
        steps = _load(path).get("runs", {}).get("steps", [])
        problems += [
            f"{path.parent.name}/{path.name}: runs {c!r}, not one of {allowed}"
            for c in step_runs(steps)
            if c not in allowed
        ]
    ci_jobs, pages_builds = [], []
    for path in workflows:
        workflow = _load(path)
        for name, job in (workflow.get("jobs") or {}).items():
            steps = job.get("steps", [])
            runs = step_runs(steps)
            problems += [
                f"{path.name}: job {name} runs {c!r}, not one of {allowed}"
                for c in runs
                if c not in allowed
            ]
            if CI_STEP in runs:
                ci_jobs.append((path.name, name, _triggers(workflow)))
            if "actions/upload-pages-artifact" in _uses(steps):
                pages_builds.append((path.name, name, runs))
    if not any({"push", "pull_request"} <= on for _, _, on in ci_jobs):
        problems.append(f"no workflow job runs `{CI_STEP}` on both push and pull_request")
    if not pages_builds:
        problems.append("no workflow job uploads a GitHub Pages artifact")
    for file, name, runs in pages_builds:
        if runs != book:
            problems.append(f"{file}: job {name} publishes what {runs} built, not {book}")
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
