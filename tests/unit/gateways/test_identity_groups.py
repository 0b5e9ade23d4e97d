"""The department's NetBox groups are a setting: a department whose groups are named
differently gets the same authorities through ``netbox_groups`` (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from runbooks import config
from runbooks.config import NetBoxSettings
from runbooks.core.errors import InputError
from runbooks.gateways import identity as identity_mod
from runbooks.gateways.identity import NetBoxIdentity

DEPARTMENT = {"it-ops": "handle", "it-leads": ["review", "approve"], "it-heads": "supervise"}


def _answering(monkeypatch: pytest.MonkeyPatch, groups: list[str]) -> None:
    """NetBox's authentication-check answers for a user in ``groups`` (nothing leaves)."""

    def get(url: str, **_: Any) -> requests.Response:
        assert url.endswith("/api/authentication-check/")
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json"
        body = {"username": "olivia", "groups": [{"name": g} for g in groups]}
        response._content = json.dumps(body).encode()
        return response

    monkeypatch.setattr(identity_mod.requests, "get", get)


def _whoami() -> frozenset[str]:
    settings = NetBoxSettings("http://netbox.invalid", "nbt_x.y")
    return NetBoxIdentity(settings).whoami().authorities


def test_differently_named_groups_give_the_authorities_through_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNBOOKS_NETBOX_GROUPS", json.dumps(DEPARTMENT))
    _answering(monkeypatch, ["it-ops", "it-leads", "staff"])
    assert _whoami() == {"handle", "review", "approve"}
    # the default groups give nothing in this department
    _answering(monkeypatch, ["runbook-operators", "runbook-supervisors"])
    assert _whoami() == frozenset()


def test_the_default_groups_without_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOKS_NETBOX_GROUPS", raising=False)
    _answering(monkeypatch, ["runbook-reviewers", "it-leads"])
    assert _whoami() == {"review"}


def test_the_files_table_reaches_the_gateway_through_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[netbox_groups]\n"it-ops" = "handle"\n"it-leads" = ["review", "approve"]\n'
        '"it-heads" = "supervise"\n'
    )
    environ: dict[str, str] = {}
    loaded = config.load(path, env={})
    assert loaded.source("netbox_groups") == f"file {path}"
    config.apply(loaded, environ)
    assert config.netbox_groups(environ) == config.netbox_groups(
        {"RUNBOOKS_NETBOX_GROUPS": json.dumps(DEPARTMENT)}
    )
    monkeypatch.setenv("RUNBOOKS_NETBOX_GROUPS", environ["RUNBOOKS_NETBOX_GROUPS"])
    _answering(monkeypatch, ["it-heads"])
    assert _whoami() == {"supervise"}


def test_a_group_giving_no_authority_is_refused_naming_it() -> None:
    with pytest.raises(InputError, match="'it-ops' gives 'operate'"):
        config.netbox_groups({"RUNBOOKS_NETBOX_GROUPS": '{"it-ops": "operate"}'})
    with pytest.raises(InputError, match="JSON object"):
        config.netbox_groups({"RUNBOOKS_NETBOX_GROUPS": "it-ops=handle"})
    with pytest.raises(InputError, match=r"NETBOX_GROUPS.*gives 'x'"):
        config.load(Path("/nonexistent.toml"), env={"RUNBOOKS_NETBOX_GROUPS": '{"a": ["x"]}'})
    with pytest.raises(InputError, match="holds JSON"):
        config.load(Path("/nonexistent.toml"), env={"RUNBOOKS_NETBOX_GROUPS": "it-ops=handle"})
