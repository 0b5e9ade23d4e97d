"""The record sheet's words in the manual's language (Traditional Chinese, in the manual's own
terms) and in English: its labels, the kinds and statuses of steps and runs, and the language
setting that says which of them a sheet shows (``zh-Hant``, ``en``, or ``both`` side by side).
They are `runbooks_rules.words`, which the NetBox plugin's sheet page shows too; here an HTML
pair is a `markupsafe.Markup` for Jinja.

A word is looked up by its English key; a key with no translation is shown as it is, so a new
status never breaks a sheet (examples there).
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape
from runbooks_rules import words as _words
from runbooks_rules.words import AUTHORITIES, KINDS, LABELS, LANGUAGES, STATUSES

__all__ = ("AUTHORITIES", "KINDS", "LABELS", "LANGUAGES", "STATUSES", "Words")


@dataclass(frozen=True)
class Words(_words.Words):
    """The words of one sheet in ``language`` (one of `LANGUAGES`); for an HTML page
    (``html``) each word of a pair is marked with its ``lang``, escaped.

    >>> Words("both", html=True).pair("結果", "<Outcome>")
    Markup('<span lang="zh-Hant">結果</span> <span lang="en">&lt;Outcome&gt;</span>')
    """

    def _escape(self, text: str) -> str:
        return str(escape(text))

    def _safe(self, text: str) -> str:
        return Markup(text)  # noqa: S704 (built by `_mark` from escaped words)
