"""Secrets never reach the store, exports, logs or output: plant some and search everywhere."""

from __future__ import annotations

import json
import secrets as random
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.core import secrets

RUNBOOK = [sys.executable, "-m", "runbooks.cli"]


def test_mask_covers_values_names_and_shapes() -> None:
    secrets.register("hunter2-very-secret")
    data = {
        "note": "the password is hunter2-very-secret, really",
        "api_token": "anything at all",
        "header": "Authorization: Token 0123456789abcdef0123456789abcdef01234567",
        "v2": "nbt_abc123DEF.xyz789secretpart",
        "port": 22,
    }
    masked = secrets.mask(data)
    assert "hunter2-very-secret" not in str(masked)
    assert masked["api_token"] == secrets.MASK
    assert "0123456789abcdef" not in masked["header"]
    assert "xyz789secretpart" not in masked["v2"]
    assert masked["port"] == 22


def test_planted_secrets_appear_nowhere(tmp_path: Path, workdir: Path) -> None:
    token = f"nbt_{random.token_hex(6)}.{random.token_hex(16)}"
    password = f"pw-{random.token_urlsafe(12)}"
    store = tmp_path / "store" / "records.sqlite3"
    args = [f"workdir={workdir}", f"token={token}", f"password={password}"]
    outputs = []
    for cmd in (
        ["--store", str(store), "-v", "plan", "test-ledger", *args, "--json"],
        ["--store", str(store), "-v", "run", "test-ledger", *args, "--yes", "--no-change-control"],
        ["--store", str(store), "records", "export", "-o", str(tmp_path / "export.jsonl")],
        ["--store", str(store), "records", "list", "--json"],
    ):
        done = subprocess.run(RUNBOOK + cmd, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        outputs += [done.stdout, done.stderr]
    run_id = json.loads(outputs[-2])[0]["run_id"]
    shown = subprocess.run(
        [*RUNBOOK, "--store", str(store), "records", "show", "--json", run_id],
        capture_output=True,
        text=True,
        check=True,
    )
    outputs.append(shown.stdout)
    log_text = (store.parent / "runbook.log").read_text()
    assert "post-check evidence" in log_text  # the careless log line was written, masked
    assert "logged in with ********" in (tmp_path / "export.jsonl").read_text()
    haystacks = {
        "store": b"".join(p.read_bytes() for p in store.parent.glob("records.sqlite3*")),
        "export": (tmp_path / "export.jsonl").read_bytes(),
        "log": log_text.encode(),
        "output": "".join(outputs).encode(),
    }
    for where, data in haystacks.items():
        for secret in (token, password, token.split(".")[1]):
            assert secret.encode() not in data, f"{secret[:6]}… leaked into the {where}"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("db_pass", True),
        ("api_key", True),
        ("x-auth-token", True),
        ("Authorization", True),
        ("secret_key", True),
        ("ssh_private_key", True),
        ("authority", False),
        ("authorities", False),
        ("passed", False),
        ("compass", False),
        ("hostname", False),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert secrets.is_secret_key(key) is secret
