"""The checkout's ``tests`` for a bench run as ``python bench/<name>.py``.

``tests`` here is a namespace package (no ``__init__.py``: pytest imports it so). textfsm 2.1
installs a regular package named ``tests`` into site-packages, and a regular package wins over
a namespace package wherever each stands on ``sys.path``: ``from tests.support import ...``
then fails. Importing this module puts the checkout first on ``sys.path`` and binds ``tests``
to its directory (`use_checkout_tests`): import it before anything from ``tests``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def use_checkout_tests() -> None:
    sys.path.insert(0, str(REPO))
    package = types.ModuleType("tests")
    package.__path__ = [str(REPO / "tests")]
    sys.modules["tests"] = package


use_checkout_tests()
