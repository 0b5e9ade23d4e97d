"""The server's guard against storing API tokens (`netbox_runbooks.tokens`), without NetBox:
the module is pure and is loaded from its file (the package needs NetBox to import)."""

from __future__ import annotations

import doctest
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SOURCE = Path(__file__).parents[1] / "netbox_runbooks" / "tokens.py"
V2 = "nbt_" + "K" * 12 + "." + "s" * 40  # the lab's shape: 12-character key, 40-character secret
V1 = "0123456789abcdef" * 2 + "01234567"  # 40 hex characters


def _tokens() -> ModuleType:
    spec = importlib.util.spec_from_file_location("runbooks_plugin_tokens", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_doctests_hold() -> None:
    assert doctest.testmod(_tokens()).failed == 0


@pytest.mark.parametrize(
    ("body", "authorization", "carries"),
    [
        ({"note": V2}, "", True),  # anyone's v2 token
        ({"note": f"token={V2}!"}, "", True),
        ({"note": V1}, f"Token {V1}", True),  # the caller's own v1 token
        ({"note": "s" * 40}, f"Bearer {V2}", True),  # the secret half of the caller's v2 token
        ({"note": V1}, f"Bearer {V2}", False),  # 40 hex characters of someone else: a hash
        ({"hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}, "", False),
        ({"note": "nbt_short.x"}, "", False),
        ({"note": "ab"}, "Token ab", False),  # too short to be a token
    ],
)
def test_a_body_carrying_a_token(body: dict[str, str], authorization: str, carries: bool) -> None:
    raw = json.dumps(body).encode()
    assert _tokens().carries_token(raw, authorization) is carries
