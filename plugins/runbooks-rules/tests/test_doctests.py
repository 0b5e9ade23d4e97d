"""The examples in the rules' docstrings hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["chain", "ids", "lifecycle", "plan", "policy", "review", "sheet"]


@pytest.mark.parametrize("name", MODULES)
def test_the_doctests_of(name: str) -> None:
    module = importlib.import_module(f"runbooks_rules.{name}")
    assert doctest.testmod(module).failed == 0
