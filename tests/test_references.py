"""Check that references.bib holds every paper reference [1]-[65] exactly once.

Each paper reference must be a BibTeX entry preceded by a ``% [N]`` comment line;
all entries must have a title and a year, and keys must be unique.
"""

import re
from collections import Counter
from pathlib import Path

from pybtex.database import parse_file

BIB_PATH: Path = Path(__file__).resolve().parents[1] / "references.bib"
N_PAPER_REFS: int = 65
# A "% [N]" line followed (after optional blank lines) by "@type{key,".
NUMBERED_ENTRY = re.compile(r"^% \[(\d+)\][ \t]*\n(?:[ \t]*\n)*@\w+\{([^,\s]+),", re.MULTILINE)
ENTRY_KEY = re.compile(r"^@\w+\{([^,\s]+),", re.MULTILINE)


def test_numbered_references_present_once() -> None:
    """Every N in 1..65 labels exactly one entry via a ``% [N]`` comment."""
    text: str = BIB_PATH.read_text(encoding="utf-8")
    numbers: list[int] = [int(n) for n, _ in NUMBERED_ENTRY.findall(text)]
    assert sorted(numbers) == list(range(1, N_PAPER_REFS + 1))


def test_entries_have_title_and_year() -> None:
    """Every entry parses with pybtex and has non-empty title and year fields."""
    bib = parse_file(str(BIB_PATH), bib_format="bibtex")
    assert len(bib.entries) >= N_PAPER_REFS
    for key, entry in bib.entries.items():
        assert entry.fields.get("title", "").strip(), f"{key} lacks a title"
        assert entry.fields.get("year", "").strip(), f"{key} lacks a year"


def test_keys_unique() -> None:
    """No citation key occurs twice (checked on the raw text, case-insensitively)."""
    keys: list[str] = [k.lower() for k in ENTRY_KEY.findall(BIB_PATH.read_text(encoding="utf-8"))]
    duplicates: list[str] = [k for k, c in Counter(keys).items() if c > 1]
    assert not duplicates, f"duplicate keys: {duplicates}"
