"""Identifiers of changes and runs: readable, sortable by time, unguessable."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


def new_change_id(now: datetime | None = None) -> str:
    """``CHG-20261207-a1b2c3``"""
    return "CHG-" + (now or datetime.now(UTC)).strftime("%Y%m%d-") + secrets.token_hex(3)


def new_run_id(now: datetime | None = None) -> str:
    """``20261207-101500-a1b2c3``"""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
