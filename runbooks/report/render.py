"""Jinja2 set-up shared by the documents: templates in runbooks/report/templates."""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from runbooks_rules.review import diff_lines
from runbooks_rules.words import markdown_cell

__all__ = ("diff_html", "markdown_cell", "render", "value")


def value(v: Any) -> str:
    """A field value as a reviewer reads it."""
    if v is None:
        return "—"
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def diff_html(text: str) -> Markup:
    """A unified diff with added and removed lines coloured (every line escaped)."""
    out = Markup("")
    for cls, line in diff_lines(text):
        if cls == "ctx":
            out += escape(line) + Markup("\n")
        else:
            out += Markup('<span class="{}">{}</span>').format(cls, line)
    return out


_ENV = Environment(
    loader=PackageLoader("runbooks.report", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html", "html.j2")),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["value"] = value
_ENV.filters["diff_html"] = diff_html
_ENV.filters["md"] = markdown_cell


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)
