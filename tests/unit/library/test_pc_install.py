"""pc-install without the lab: the naming standard, parameters, the initial password's path."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from runbooks.core.context import RunContext
from runbooks.core.errors import InputError
from runbooks.core.gateway import Mode
from runbooks.gateways.ansible_settings import software_source
from runbooks.gateways.netbox import NetBoxGateway
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
    "domain": "lab.example",
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
    assert PcInstall(PcInstall.parse_params(PARAMS)).p.asset_tag == "PC-0042"
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
        domain="lab.example",
        account="wchen",
        contact={"id": 1, "name": "Wei Chen"},
        contact_role=ref,
        location=ref,
        site=ref,
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


# -- the registration against a fake NetBox (routes answer from a small table) ---------------


def context(gw: NetBoxGateway) -> RunContext:
    """A plan's context whose NetBox gateway is the fake one."""
    book = PcInstall(PcInstall.parse_params(PARAMS))
    return RunContext(
        Mode.PLAN, "plan", "olivia", book, gateway_factories={NetBoxGateway: lambda c, k: gw}
    )


def netbox_with(**overrides: list[dict[str, Any]]) -> NetBoxGateway:
    from tests.unit.gateways.netbox_fake import Answer, Sent, fake_gateway

    site = {"id": 1, "name": "Lab DC1", "slug": "lab-dc1", "display": "Lab DC1"}
    tables: dict[str, list[dict[str, Any]]] = {
        "dcim/locations": [{"id": 1, "name": "Office 2F", "slug": "office-2f", "site": site}],
        "dcim/devices": [],
        "tenancy/contacts": [{"id": 1, "name": "Wei Chen", "email": "wchen@lab.example"}],
        "tenancy/contact-roles": [{"id": 1, "slug": "pc-user"}],
        "dcim/device-roles": [{"id": 5, "slug": "pc"}],
        "dcim/device-types": [{"id": 3, "slug": "desktop-pc"}],
        "dcim/platforms": [{"id": 2, "slug": "linux"}],
        "ipam/prefixes": [{"id": 4, "prefix": "198.18.64.0/24"}],
        **{k.replace("__", "/"): v for k, v in overrides.items()},
    }
    gw, fake = fake_gateway(Mode.PLAN)
    for path, rows in tables.items():

        def answer(sent: Sent, rows: list[dict[str, Any]] = rows) -> Answer:
            return Answer(body={"count": len(rows), "results": rows})

        fake.on("GET", f"/api/{path}/", answer)
    return gw


def test_registration_looks_everything_up_and_names_the_pc() -> None:
    book = PcInstall(PcInstall.parse_params(PARAMS))
    reg = book.registration(context(netbox_with()))
    assert (reg.hostname, reg.account, reg.device) == ("labdc1-pc0042", "wchen", None)
    assert reg.device_fields() == {
        "device_type": 3,
        "role": 5,
        "platform": 2,
        "site": 1,
        "location": 1,
        "tenant": None,
        "status": "active",
    }


@pytest.mark.parametrize(
    ("tables", "said"),
    [
        ({"tenancy__contacts": []}, "NetBox has no contact with e-mail wchen@lab.example"),
        (
            {"tenancy__contacts": [{"display": "Wei Chen"}, {"display": "W. Chen"}]},
            "NetBox has 2 matches for contact with e-mail wchen@lab.example: Wei Chen, W. Chen",
        ),
        ({"ipam__prefixes": []}, "NetBox has no prefix 198.18.64.0/24"),
        (
            {
                "dcim__devices": [
                    {
                        "name": "labdc1-pc0042",
                        "asset_tag": "PC-0042",
                        "primary_ip4": {"address": "10.9.9.9/24", "dns_name": "old.example"},
                    }
                ]
            },
            "exists with primary address 10.9.9.9/24, not its office address",
        ),
        (
            {"dcim__devices": [{"name": "labdc1-pc0007", "asset_tag": "PC-0042"}]},
            "asset tag PC-0042 is already on device 'labdc1-pc0007'",
        ),
    ],
)
def test_registration_refuses_with_one_clear_line(
    tables: dict[str, list[dict[str, Any]]], said: str
) -> None:
    from runbooks.core.errors import InventoryError

    book = PcInstall(PcInstall.parse_params(PARAMS))
    with pytest.raises(InventoryError, match=re.escape(said)):
        book.registration(context(netbox_with(**tables)))


def test_the_domain_is_named_by_a_parameter_or_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """No lab domain by default: the parameter, else the department's setting."""
    monkeypatch.delenv("RUNBOOKS_DOMAIN", raising=False)
    without = {k: v for k, v in PARAMS.items() if k != "domain"}
    with pytest.raises(InputError, match="domain"):
        PcInstall.parse_params(without)
    monkeypatch.setenv("RUNBOOKS_DOMAIN", "corp.example.org")
    assert PcInstall(PcInstall.parse_params(without)).p.domain == "corp.example.org"
