"""Runbooks are found through the entry point group of installed packages and RUNBOOKS_MODULES."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from runbooks.core import registry
from runbooks.core.errors import InputError


def test_an_installed_package_registers_a_runbook_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "acme_runbooks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        from runbooks.core.runbook import Runbook
        from runbooks.core.steps import check

        class Ping(Runbook):
            name = "acme-ping"
            title = "Ping"
            instruction = "acme: ping"

            @check("say hello")
            def hello(self, ctx):
                return {"hello": "world"}
    """)
    )
    dist = tmp_path / "acme_runbooks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-runbooks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[runbooks.runbooks]\nacme-ping = acme_runbooks:Ping\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = registry.discover()
    assert found["acme-ping"].title == "Ping"
    assert registry.get("acme-ping") is found["acme-ping"]
    sys.modules.pop("acme_runbooks", None)


def test_unknown_runbook_names_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"unknown runbook 'nope' \(known: .*test-ledger"):
        registry.get("nope")


def test_a_missing_module_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOKS_MODULES", "no_such_module_anywhere")
    with pytest.raises(InputError, match="cannot load runbook module 'no_such_module_anywhere'"):
        registry.discover()
