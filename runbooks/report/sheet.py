"""The record sheet (相關記錄) of one run, rendered: the rows and their evidence, who held each
authority, and the manual's two signature blocks (職位責任人簽字 / 上級主管簽字). What a sheet
holds is `runbooks_rules.sheet.context`, which the NetBox plugin renders too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbooks_rules import sheet as _sheet

from runbooks.core import secrets
from runbooks.core.errors import InputError
from runbooks.core.store import Entry
from runbooks.report.render import render


def context(
    entries: list[Entry],
    head: str,
    chain_ok: bool,
    signatures: Mapping[str, Mapping[str, str]] | None = None,
    authorities: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    try:
        return _sheet.context(entries, head, chain_ok, signatures, authorities)
    except _sheet.NotARun as exc:
        raise InputError(str(exc)) from None


def markdown(entries: list[Entry], head: str, chain_ok: bool, **server: Any) -> str:
    return render("sheet.md.j2", **secrets.mask(context(entries, head, chain_ok, **server)))


def html(entries: list[Entry], head: str, chain_ok: bool, **server: Any) -> str:
    return render("sheet.html.j2", **secrets.mask(context(entries, head, chain_ok, **server)))
