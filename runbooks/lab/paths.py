"""Where the lab keeps its state (per boot) and its cache (kept across clones and runs)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """Runtime state: pid files, device configs, generated keys and tokens (mode 0700)."""
    return Path(os.environ.get("RUNBOOKS_LAB_DIR", "/run/runbooks-lab"))


def cache_dir() -> Path:
    """Kept across runs and clones: the NetBox venv and the migrated database snapshot."""
    return Path(os.environ.get("RUNBOOKS_CACHE_DIR", "/var/cache/runbooks"))


def topology_file() -> Path:
    return Path(os.environ.get("RUNBOOKS_LAB_TOPOLOGY", REPO_ROOT / "inventory" / "lab.yml"))
