"""The child environment, the NetBox inventory plumbing and the process-tree kill."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from runbooks.core import secrets
from runbooks.gateways.ansible_inventory import is_netbox_inventory, yaml_hostvars
from runbooks.gateways.ansible_process import child_env, descendants, kill_tree, scrub_tree
from runbooks.gateways.ansible_settings import NETBOX_INVENTORY

REPO = Path(__file__).resolve().parents[3]


def test_child_env_is_allow_listed() -> None:
    env = child_env(
        {"PATH": "/usr/bin", "HOME": "/root", "NETBOX_TOKEN": "x" * 40, "AWS_SECRET": "y" * 9},
        {"ANSIBLE_NOCOLOR": "1"},
        "/venv/bin",
    )
    assert env == {"PATH": "/venv/bin:/usr/bin", "HOME": "/root", "ANSIBLE_NOCOLOR": "1"}


@pytest.mark.parametrize(
    "extra", [{"ANSIBLE_VAULT_PASSWORD": "p"}, {"ANSIBLE_X": "known-secret-1"}]
)
def test_child_env_refuses_a_secret(extra: dict[str, str]) -> None:
    secrets.register("known-secret-1")
    with pytest.raises(ValueError, match="would carry a secret"):
        child_env({}, extra)


def test_netbox_inventory_file_is_recognised() -> None:
    assert is_netbox_inventory(NETBOX_INVENTORY)
    assert not is_netbox_inventory(REPO / "inventory" / "lab.yml")


def test_yaml_hostvars(tmp_path: Path) -> None:
    inv = tmp_path / "netbox-hosts.yml"
    inv.write_text(
        "all:\n  children:\n    server:\n      hosts:\n        srv1: {}\n"
        "    lab-dc1:\n      hosts:\n        srv1: {ansible_host: 198.18.0.31, role: server}\n"
    )
    assert yaml_hostvars(inv) == {"srv1": {"ansible_host": "198.18.0.31", "role": "server"}}


def test_scrub_tree_masks_registered_values(tmp_path: Path) -> None:
    value = "scrub-me-" + os.urandom(6).hex()
    secrets.register(value)
    (tmp_path / "a").write_text(f"x {value} y")
    (tmp_path / "b").write_text("clean")
    assert scrub_tree(tmp_path) == [tmp_path / "a"]
    assert value not in (tmp_path / "a").read_text()


def test_kill_tree_reaches_other_process_groups() -> None:
    parent = subprocess.Popen(["sh", "-c", "setsid sleep 60 & sleep 60"], start_new_session=True)
    deadline = time.monotonic() + 5
    while len(descendants(parent.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    kids = descendants(parent.pid)
    assert len(kids) == 2
    groups = kill_tree(parent.pid, grace_s=1)
    assert len(groups) == 2  # the shell's group and the setsid child's
    parent.wait(5)
    time.sleep(0.1)
    for pid in kids:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split(") ")[1][0] == "Z"
