"""Unit tests of lgutils.getting_started, the setup checks of chapter 00."""

from __future__ import annotations

import pytest

from lgutils import getting_started


def test_getting_started_reports_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(getting_started.REQUIRED, "surely-not-installed-pkg", "1.0")
    bad = [r for r in getting_started.stack_versions() if not r.ok]
    assert [r.name for r in bad] == ["surely-not-installed-pkg"] and "make test" in bad[0].fix


def test_casadi_check_finds_known_optimum() -> None:
    result = getting_started.check_casadi()
    assert result.ok, result.detail
