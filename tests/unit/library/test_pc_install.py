"""pc-install without the lab: the naming standard, parameters, the initial password's path."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from runbooks.core.errors import InputError
from runbooks.gateways.ansible_settings import software_source
from runbooks.library import naming
from runbooks.library.pc_install import (
    PcInstall,
    Registration,
    handover_file,
    sha512_crypt,
    write_handover,
)

PARAMS = {
    "slot": "pc1",
    "asset_tag": "PC-0042",
    "user": "wchen@lab.example",
    "location": "office-2f",
    "office_prefix": "198.18.64.0/24",
}


@pytest.mark.parametrize(
    ("site", "tag", "name"),
    [
        ("lab-dc1", "PC-0042", "labdc1-pc0042"),
        ("lab-dc1", "PC-42", "labdc1-pc0042"),
        ("HQ", "A-123456", "hq-pc123456"),
        ("lab-dc1", "0007", "labdc1-pc0007"),
    ],
)
def test_pc_hostname_by_the_naming_standard(site: str, tag: str, name: str) -> None:
    assert naming.pc_hostname(site, tag) == name


@pytest.mark.parametrize(
    ("site", "tag"),
    [("lab-dc1", "PC-"), ("---", "PC-1"), ("headquarters-east", "PC-1234")],
)
def test_names_outside_the_standard_are_refused(site: str, tag: str) -> None:
    with pytest.raises(InputError):
        naming.pc_hostname(site, tag)


def test_account_name_is_the_mail_local_part() -> None:
    assert naming.account_name("WChen@lab.example") == "wchen"
    for bad in ("no-at-sign", "wei chen@lab.example", "1abc@lab.example", "a.b@lab.example"):
        with pytest.raises(InputError):
            naming.account_name(bad)


def test_params_are_checked_before_anything_runs() -> None:
    assert PcInstall.parse_params(PARAMS).asset_tag == "PC-0042"  # type: ignore[attr-defined]
    with pytest.raises(InputError):
        PcInstall.parse_params({**PARAMS, "user": "not-an-email"})
    with pytest.raises(InputError):
        PcInstall.parse_params({**PARAMS, "asset_tag": "PC 42; rm -rf /"})
    with pytest.raises(InputError):
        PcInstall.parse_params({**PARAMS, "colour": "blue"})


def test_software_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOKS_SOFTWARE_SOURCE", raising=False)
    assert software_source() == ""  # the hosts' own sources: never the lab's by accident
    monkeypatch.setenv("RUNBOOKS_SOFTWARE_SOURCE", " deb http://mirror.example/it stable main\n")
    assert software_source() == "deb http://mirror.example/it stable main"


def test_initial_password_hash_verifies_with_openssl() -> None:
    hashed = sha512_crypt(SecretStr("correct horse"))
    salt = hashed.split("$")[2]
    again = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
        input="correct horse\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert hashed.startswith("$6$") and hashed == again


def registration() -> Registration:
    ref: dict[str, Any] = {"id": 1, "name": "x", "slug": "x"}
    return Registration(
        hostname="labdc1-pc0042",
        account="wchen",
        contact={"id": 1, "name": "Wei Chen"},
        contact_role=ref,
        location=ref,
        site={**ref, "_domain": "lab.example"},
        tenant=None,
        role=ref,
        device_type=ref,
        platform=ref,
        prefix={"id": 4, "prefix": "198.18.64.0/24"},
        device=None,
    )


def test_handover_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOKS_HANDOVER_DIR", str(tmp_path / "handover"))
    path = write_handover("RUN1", registration(), SecretStr("s3cret-initial"))
    assert path == handover_file("RUN1", "labdc1-pc0042")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "initial password: s3cret-initial" in path.read_text()
    assert registration().fqdn == "labdc1-pc0042.lab.example"
    assert registration().device_fields()["tenant"] is None
