"""20 PC 機安裝 PC install: register the PC in NetBox, install it, hand it over.

The procedure, in order (the playbook ``playbooks/pc_install.yml`` does the PC's part, one tag
per part, and also runs on its own with plain ``ansible-playbook``):

1. The PC answers on its install bench: NetBox reserves the bench slot's address (``dns_name``
   = the slot); the PC's hardware, system, disk and memory are read. A PC unfit stops the plan.
2. NetBox holds what the registration needs: the user (a contact, by e-mail), the location and
   its site, the tenant, the office prefix with a free address; the PC's name (by the naming
   standard, ``runbooks.library.naming``) and asset tag are not another device's.
3. Register the PC in NetBox: the device (role, type, platform, location, tenant, asset tag),
   its office address from NetBox's next available IP of the office prefix (assigned to eth0,
   the primary IPv4), and the user assigned as the PC's contact. Undo deletes what this run
   created, from NetBox's change records.
4. Install the PC: hostname by the naming standard, office network configuration, the
   department's software repository and the standard software set, the user's account with an
   initial password that must be changed at first login. In a plan this is Ansible's check
   mode: every diff is in the review. If it fails part-way (``undo_on_failure``), or a later
   step fails, the rollback playbook restores the PC's snapshot (hostname, files, the packages
   and account the install added).
5. Verify: the PC reports the planned name, address, software and account; NetBox has it.
6. Hand the PC over: the user logs in, sets their password and signs the hand-over (a manual
   step, answered by the engineer who saw them sign).
7. Record the hand-over in the PC's NetBox journal: the entry witnesses the run (what it
   changed and the record's head hash).

The initial password never reaches a record, log, review or artifact: it is generated at run
time, registered with the secrets masker, sent to Ansible only as a SHA-512 crypt hash in a
0600 file outside the artifacts, and written for the engineer to a 0600 hand-over file.
"""

from __future__ import annotations

import ipaddress
import os
import secrets as _random
import subprocess
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from runbooks.core import secrets
from runbooks.core.context import RunContext
from runbooks.core.errors import (
    GatewayError,
    InventoryError,
    RollbackError,
)
from runbooks.core.results import Diff, FieldChange
from runbooks.core.runbook import Params
from runbooks.core.steps import change, check, manual
from runbooks.gateways.ansible_events import PlaybookResult
from runbooks.gateways.ansible_settings import software_source
from runbooks.gateways.netbox_changes import Applied
from runbooks.library import naming
from runbooks.library.base import LibraryRunbook
from runbooks.library.witness import JournalWitness, Witnessed

PLAYBOOK = "pc_install.yml"
ROLLBACK = "pc_install_rollback.yml"
INSTALL_TAGS = ["identity", "software", "account"]


class PcInstallParams(Params):
    slot: str = Field(min_length=1, description="the install bench slot (its NetBox dns_name)")
    asset_tag: str = Field(pattern=r"^[A-Za-z0-9-]{1,50}$", description="the PC's asset tag")
    user: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="the user's contact e-mail")
    location: str = Field(min_length=1, description="NetBox location slug (the office)")
    office_prefix: str = Field(min_length=1, description="the office prefix, e.g. 10.1.64.0/24")
    tenant: str | None = Field(None, description="NetBox tenant slug (the user's department)")
    role: str = "pc"
    device_type: str = "desktop-pc"
    platform: str = "linux"
    interface: str = "eth0"
    domain: str = Field(
        default_factory=lambda: os.environ.get("RUNBOOKS_DOMAIN", "").strip(),
        validate_default=True,
        description="the department's DNS domain (default: the setting domain, RUNBOOKS_DOMAIN)",
    )

    @field_validator("domain")
    @classmethod
    def _domain_named(cls, value: str) -> str:
        if not value:
            raise ValueError(
                "give domain=<the department's DNS domain> or set the setting domain "
                "(RUNBOOKS_DOMAIN)"
            )
        return value


@dataclass(frozen=True)
class Registration:
    """What NetBox holds for the registration (ids and names), looked up afresh by each step
    that needs it: the device appears half-way through the run."""

    hostname: str
    domain: str
    account: str
    contact: dict[str, Any]
    contact_role: dict[str, Any]
    location: dict[str, Any]
    site: dict[str, Any]
    tenant: dict[str, Any] | None
    role: dict[str, Any]
    device_type: dict[str, Any]
    platform: dict[str, Any]
    prefix: dict[str, Any]
    device: dict[str, Any] | None  # the PC, once registered

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain}"

    @property
    def address_name(self) -> str:
        """The office address's description and, in plans and NetBox's change records, name."""
        return f"{self.hostname} office address"

    @property
    def assignment_name(self) -> str:
        return f"{self.hostname} user {self.contact['name']}"

    def device_fields(self) -> dict[str, Any]:
        return {
            "device_type": self.device_type["id"],
            "role": self.role["id"],
            "platform": self.platform["id"],
            "site": self.site["id"],
            "location": self.location["id"],
            "tenant": self.tenant["id"] if self.tenant else None,
            "status": "active",
        }


class PcInstall(JournalWitness, LibraryRunbook[PcInstallParams]):
    """Install a PC: NetBox registration, address, hostname, software, account, hand-over."""

    name = "pc-install"
    title = "PC install: register, address, install and hand over a PC"
    instruction = "20 PC 機安裝 PC install"
    expected_duration = timedelta(minutes=30)
    Params = PcInstallParams
    journaled = ("plan_registration", "plan_install")
    journal_kind = "success"

    # ------------------------------------------------------------------ lookups
    def bench_address(self, ctx: RunContext) -> str:
        found = self.netbox(ctx).find("ipam.ipaddress", dns_name=self.p.slot)
        if not found:
            raise InventoryError(
                f"NetBox has no address with dns_name {self.p.slot!r}: no install bench slot"
            )
        return str(found[0]["address"]).split("/")[0]

    def bench(self, ctx: RunContext) -> dict[str, dict[str, Any]]:
        return {self.p.slot: {"ansible_host": self.bench_address(ctx)}}

    def registration(self, ctx: RunContext) -> Registration:
        nb = self.netbox(ctx)

        def one(obj_type: str, what: str, **filters: Any) -> dict[str, Any]:
            found = nb.find(obj_type, **filters)
            if not found:
                raise InventoryError(f"NetBox has no {what}")
            if len(found) > 1:
                names = ", ".join(str(f.get("display")) for f in found[:5])
                raise InventoryError(f"NetBox has {len(found)} matches for {what}: {names}")
            return found[0]

        p = self.p
        location = one("dcim.location", f"location {p.location!r}", slug=p.location)
        site = dict(location["site"])
        hostname = naming.pc_hostname(str(site["slug"]), p.asset_tag)
        devices = nb.find("dcim.device", name=hostname)
        tagged = nb.find("dcim.device", asset_tag=p.asset_tag)
        if tagged and tagged[0]["name"] != hostname:
            raise InventoryError(
                f"asset tag {p.asset_tag} is already on device {tagged[0]['name']!r}"
            )
        if devices and devices[0].get("asset_tag") not in (None, p.asset_tag):
            raise InventoryError(
                f"device {hostname!r} exists with asset tag {devices[0]['asset_tag']!r}"
            )
        primary = (devices[0].get("primary_ip4") or {}) if devices else {}
        if primary and not str(primary.get("dns_name") or "").startswith(f"{hostname}."):
            # its undo could not give the old address back: a person decides
            raise InventoryError(
                f"device {hostname!r} exists with primary address {primary.get('address')}, "
                "not its office address: correct it in NetBox first"
            )
        return Registration(
            hostname=hostname,
            domain=p.domain,
            account=naming.account_name(p.user),
            contact=one("tenancy.contact", f"contact with e-mail {p.user}", email__ie=p.user),
            contact_role=one("tenancy.contactrole", "contact role pc-user", slug="pc-user"),
            location=location,
            site=site,
            tenant=one("tenancy.tenant", f"tenant {p.tenant!r}", slug=p.tenant)
            if p.tenant
            else None,
            role=one("dcim.devicerole", f"device role {p.role!r}", slug=p.role),
            device_type=one(
                "dcim.devicetype", f"device type {p.device_type!r}", slug=p.device_type
            ),
            platform=one("dcim.platform", f"platform {p.platform!r}", slug=p.platform),
            prefix=one("ipam.prefix", f"prefix {p.office_prefix}", prefix=p.office_prefix),
            device=devices[0] if devices else None,
        )

    def extravars(self, ctx: RunContext, reg: Registration, address: str) -> dict[str, Any]:
        gateway = ipaddress.ip_network(str(reg.prefix["prefix"]))[1]  # the office router
        return {
            "pc_targets": self.p.slot,
            "pc_install_id": ctx.run_id,
            "pc_hostname": reg.hostname,
            "pc_domain": self.p.domain,
            "pc_office_address": address,
            "pc_office_gateway": str(gateway),
            "pc_office_interface": self.p.interface,
            "pc_user_account": reg.account,
            "pc_user_fullname": str(reg.contact["name"]),
            "pc_software_source": software_source(),
        }

    def office_address(self, ctx: RunContext, reg: Registration) -> str:
        """The PC's office address (CIDR): NetBox's, or the one it would allocate next."""
        nb = self.netbox(ctx)
        found = nb.find("ipam.ipaddress", dns_name=reg.fqdn)
        if found:
            return str(found[0]["address"])
        free = nb.available_ips(int(reg.prefix["id"]))
        if not free:
            raise InventoryError(f"office prefix {reg.prefix['prefix']} has no free address")
        return free[0]

    # ------------------------------------------------------------------ 1. bench
    @check("The PC answers on its install bench; hardware and system read", targets="{slot}")
    def pc_on_bench(self, ctx: RunContext) -> dict[str, Any]:
        result = self.ansible(ctx).check(
            PLAYBOOK, tags=["facts"], hosts=self.bench(ctx), extravars={"pc_targets": self.p.slot}
        )
        return {"bench_address": self.bench_address(ctx), **result.evidence().get(self.p.slot, {})}

    # ------------------------------------------------------------------ 2. inputs
    @check("NetBox holds the user, location, tenant and a free office address", targets="{slot}")
    def registration_inputs(self, ctx: RunContext) -> dict[str, Any]:
        reg = self.registration(ctx)
        return {
            "hostname": reg.hostname,
            "account": reg.account,
            "user": f"{reg.contact['name']} <{reg.contact.get('email')}>",
            "location": f"{reg.site['name']} / {reg.location['name']}",
            "tenant": reg.tenant["name"] if reg.tenant else None,
            "office_address": self.office_address(ctx, reg),
            "registered": reg.device is not None,
        }

    # ------------------------------------------------------------------ 3. NetBox
    @change(
        "Register the PC in NetBox: device, office address, user",
        targets="{slot}",
        undo_on_failure=True,  # NetBox's undo finds what this run created, if anything
    )
    def plan_registration(self, ctx: RunContext) -> list[Diff]:
        nb, reg = self.netbox(ctx), self.registration(ctx)
        p = self.p
        where = f"{reg.site['name']} / {reg.location['name']}"
        fields = {
            **reg.device_fields(),
            "asset_tag": p.asset_tag,
            "description": f"PC of {reg.contact['name']}",
        }
        diffs = [
            replace(
                nb.plan_device_create(reg.hostname, fields),
                summary=f"{reg.hostname}: {p.role} {p.device_type} at {where}"
                + (f", tenant {reg.tenant['name']}" if reg.tenant else ""),
            )
        ]
        ip_fields: dict[str, Any] = {
            "dns_name": reg.fqdn,
            "status": "active",
            "description": reg.address_name,
        }
        iface = self.interface(ctx, reg)
        if iface is not None:
            ip_fields |= {"assigned_object_type": "dcim.interface", "assigned_object_id": iface}
        diffs.append(nb.plan_ip_allocate(int(reg.prefix["id"]), ip_fields, reg.address_name))
        address = self.office_address(ctx, reg)
        primary = (reg.device or {}).get("primary_ip4") or {}
        if str(primary.get("address", "")) != address or iface is None:
            diffs.append(
                Diff(
                    target=f"NetBox dcim.device {reg.hostname} primary IPv4",
                    kind="fields",
                    summary=f"{reg.hostname}: {p.interface} gets the office address, primary IPv4",
                    fields=(
                        FieldChange(f"{p.interface} address", None, address),
                        FieldChange("primary_ip4", primary.get("address"), address),
                    ),
                )
            )
        if not self.user_assignment(ctx, reg):
            diffs.append(
                nb.plan_create(
                    "tenancy.contactassignment",
                    {
                        "object_type": "dcim.device",
                        "object_id": reg.device["id"] if reg.device else f"(new {reg.hostname})",
                        "contact": reg.contact["id"],
                        "role": reg.contact_role["id"],
                        "priority": "primary",
                    },
                    reg.assignment_name,
                    f"{reg.contact['name']} is the PC's user",
                )
            )
        return [d for d in diffs if not d.empty]

    @plan_registration.apply
    def register(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        nb = self.netbox(ctx)
        planned = {(d.before or {}).get("_netbox", {}).get("type"): d for d in diffs}
        done: list[Applied] = []
        if "dcim.device" in planned:
            done.append(nb.apply([planned["dcim.device"]]))
        reg = self.registration(ctx)  # the device exists now
        assert reg.device is not None
        iface = self.interface(ctx, reg)
        if iface is None:
            raise InventoryError(f"{reg.hostname} has no interface {self.p.interface}")
        if "ipam.ipaddress" in planned:
            ip_fields = {
                **{k: v for k, v in planned["ipam.ipaddress"].after.items() if k != "address"},
                "assigned_object_type": "dcim.interface",
                "assigned_object_id": iface,
            }
            ip_fields.pop("prefix_id", None)
            diff = nb.plan_ip_allocate(int(reg.prefix["id"]), ip_fields, reg.address_name)
            done.append(nb.apply([diff]))
        ip = nb.find("ipam.ipaddress", dns_name=reg.fqdn)[0]
        primary = (reg.device.get("primary_ip4") or {}).get("id")
        if primary != ip["id"]:
            done.append(
                nb.apply(
                    [nb.plan_update("dcim.device", reg.device["id"], {"primary_ip4": ip["id"]})]
                )
            )
        if "tenancy.contactassignment" in planned:
            after = {**planned["tenancy.contactassignment"].after, "object_id": reg.device["id"]}
            create = nb.plan_create("tenancy.contactassignment", after, reg.assignment_name)
            done.append(nb.apply([create]))
        return {
            "device": reg.hostname,
            "device_id": reg.device["id"],
            "office_address": ip["address"],
            **Applied(tuple(r for a in done for r in a.requests)).evidence(),
        }

    @plan_registration.undo
    def unregister(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return {"undone": self.netbox(ctx).undo(diffs).evidence()}

    def interface(self, ctx: RunContext, reg: Registration) -> int | None:
        if reg.device is None:
            return None
        found = self.netbox(ctx).find(
            "dcim.interface", device_id=reg.device["id"], name=self.p.interface
        )
        return int(found[0]["id"]) if found else None

    def user_assignment(self, ctx: RunContext, reg: Registration) -> bool:
        if reg.device is None:
            return False
        return bool(
            self.netbox(ctx).find(
                "tenancy.contactassignment",
                object_type="dcim.device",
                object_id=reg.device["id"],
                contact_id=reg.contact["id"],
            )
        )

    # ------------------------------------------------------------------ 4. install
    def play_check(self, ctx: RunContext, tags: list[str]) -> PlaybookResult:
        reg = self.registration(ctx)
        return self.ansible(ctx).check(
            PLAYBOOK,
            tags=tags,
            hosts=self.bench(ctx),
            extravars=self.extravars(ctx, reg, self.office_address(ctx, reg)),
        )

    @change(
        "Install the PC: hostname, office network, software set, the user's account",
        targets="{slot}",
        duration=timedelta(minutes=10),
        undo_on_failure=True,  # the rollback playbook restores the PC's snapshot
    )
    def plan_install(self, ctx: RunContext) -> list[Diff]:
        return self.play_check(ctx, INSTALL_TAGS).diffs

    @plan_install.apply
    def install(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        reg = self.registration(ctx)
        password = SecretStr(_random.token_urlsafe(12))
        secrets.register(password)
        password_hash = SecretStr(sha512_crypt(password))
        secrets.register(password_hash)
        extravars = {
            **self.extravars(ctx, reg, self.office_address(ctx, reg)),
            "pc_user_password_hash": password_hash,
        }
        result = self.ansible(ctx).run(
            PLAYBOOK, tags=INSTALL_TAGS, hosts=self.bench(ctx), extravars=extravars
        )
        said = result.evidence().get(self.p.slot, {}).get("account_created")
        created = str(said).lower() == "true"  # a bool, or its text from older templating
        handover = write_handover(ctx.run_id, reg, password) if created else None
        return {
            **result.summary(),
            "handover_file": str(handover) if handover else "none: the account existed",
        }

    @plan_install.undo
    def uninstall(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        bench = self.bench(ctx)
        gateway = self.ansible(ctx)
        result = gateway.run_unchecked(
            ROLLBACK,
            hosts=bench,
            extravars={"pc_targets": self.p.slot, "pc_install_id": ctx.run_id},
        )
        if not result.clean:
            again = (
                f"ansible-playbook -i '{self.p.slot},' -e ansible_host="
                f"{bench[self.p.slot]['ansible_host']} -e pc_targets={self.p.slot} "
                f"{gateway.settings.project_dir / ROLLBACK} -e pc_install_id={ctx.run_id}"
            )
            raise RollbackError(f"rollback playbook: {result.outcome()}; when back: {again}")
        # the account is gone: so is its initial password
        handover_file(ctx.run_id, self.registration(ctx).hostname).unlink(missing_ok=True)
        return {"rollback": result.outcome()}

    # ------------------------------------------------------------------ 5. verify
    @check("Verify: the PC's name, address, software and account; NetBox has it", targets="{slot}")
    def verify(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.planning:
            return {"planned": "runs after the install: hostname, address, software, account"}
        reg = self.registration(ctx)
        if reg.device is None or not reg.device.get("primary_ip4"):
            raise InventoryError(f"NetBox: {reg.hostname} is not registered with an address")
        result = self.play_check(ctx, ["verify"])
        return {
            "pc": result.evidence().get(self.p.slot, {}),
            "netbox": {
                "device": reg.hostname,
                "status": reg.device["status"]["value"],
                "primary_ip4": reg.device["primary_ip4"]["address"],
                "user_assigned": self.user_assignment(ctx, reg),
            },
        }

    # ------------------------------------------------------------------ 6. hand-over
    @manual("Hand the PC over: the user logs in, sets a password and signs", targets="{slot}")
    def hand_over(self, ctx: RunContext) -> str:
        reg = self.registration(ctx)
        return (
            f"Give {reg.hostname} (asset {self.p.asset_tag}) to {reg.contact['name']} "
            f"<{self.p.user}>. They log in as {reg.account} with the initial password from "
            f"this run's hand-over file in {handover_dir()} (a new account only), set their "
            "own password, and sign the record sheet's hand-over block (使用人簽收): "
            "'received in working order'. Confirm when they have signed."
        )

    # ------------------------------------------------------------------ 7. journal
    def handover_text(self, reg: Registration) -> str:
        return (
            f"**Handed over** to {reg.contact['name']} <{self.p.user}> "
            f"(asset {self.p.asset_tag}, account {reg.account}); the user signed the hand-over."
        )

    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        reg = self.registration(ctx)  # a plan's PC is not in NetBox yet: no id
        device_id = int(reg.device["id"]) if reg.device is not None else None
        return [Witnessed("dcim.device", device_id, reg.hostname, self.handover_text(reg))]

    @change("Record the hand-over in the PC's NetBox journal", targets="{slot}")
    def plan_handover_record(self, ctx: RunContext) -> list[Diff]:
        return self.journal_diffs(ctx)

    @plan_handover_record.apply
    def record_handover(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        reg = self.registration(ctx)
        # the record sheet gets the user's receipt block (使用人簽收) from "recipient"
        return {
            **self.write_journal(ctx, diffs),
            "recipient": f"{reg.contact['name']} <{self.p.user}>",
        }

    @plan_handover_record.verify
    def handover_recorded(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.journal_written(ctx, diffs)

    @plan_handover_record.undo
    def handover_withdrawn(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.remove_journal(ctx, diffs)


def sha512_crypt(password: SecretStr) -> str:
    """The SHA-512 crypt hash of a password (``openssl passwd -6``; the password on stdin)."""
    try:
        done = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=password.get_secret_value() + "\n",
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except FileNotFoundError as exc:
        raise GatewayError("openssl is needed to hash the initial password") from exc
    if done.returncode != 0 or not done.stdout.startswith("$6$"):
        raise GatewayError("openssl passwd -6 failed to hash the initial password")
    return done.stdout.strip()


def handover_dir() -> Path:
    given = os.environ.get("RUNBOOKS_HANDOVER_DIR")
    if given:
        return Path(given)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "runbooks" / "handover"


def handover_file(run_id: str, hostname: str) -> Path:
    return handover_dir() / f"{hostname}-{run_id}.txt"


def write_handover(run_id: str, reg: Registration, password: SecretStr) -> Path:
    """The initial password, for the engineer only: a 0600 file, never in the record (an undo
    of the install removes it with the account)."""
    path = handover_file(run_id, reg.hostname)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(
            f"PC {reg.hostname}: account {reg.account} ({reg.contact['name']})\n"
            f"initial password: {password.get_secret_value()}\n"
            "It must be changed at the first login. Destroy this file after the hand-over.\n"
        )
    return path
