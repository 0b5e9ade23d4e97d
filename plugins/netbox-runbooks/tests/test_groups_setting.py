"""The plugin's NetBox groups are PLUGINS_CONFIG["netbox_runbooks"]["groups"] (issue 17).

Run inside the lab NetBox's own virtual environment, in a process of its own: NetBox set up
(``django.setup()``) with a configuration written here, no database, no server, not the lab's
running NetBox. The plugin computes authorities with `identity_of` on a user object shaped as
Django's (its groups' names, no object permission). Skipped where NetBox is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from runbooks.lab import netbox

CONFIGURATION = """\
import json, os
ALLOWED_HOSTS = ["127.0.0.1"]
DATABASES = {"default": {"NAME": "unused", "USER": "unused", "HOST": "127.0.0.1", "PORT": 1}}
REDIS = {"tasks": {"HOST": "127.0.0.1", "PORT": 1, "DATABASE": 0},
         "caching": {"HOST": "127.0.0.1", "PORT": 1, "DATABASE": 1}}
SECRET_KEY = "k" * 60
PLUGINS = ["netbox_runbooks"]
PLUGINS_CONFIG = json.loads(os.environ["TEST_PLUGINS_CONFIG"])
"""

CHECK = textwrap.dedent(
    """\
    import json, sys
    import django
    from django.core.exceptions import ImproperlyConfigured
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        print(json.dumps({"refused": str(exc)}))
        sys.exit(0)
    from netbox_runbooks.identity import identity_of

    class Groups:
        def values_list(self, *args, **kwargs):
            return json.loads(sys.argv[1])

    class User:
        username = "olivia"
        groups = Groups()
        def has_perm(self, *args):
            return False

    print(json.dumps({"authorities": sorted(identity_of(User()).authorities)}))
    """
)


def _plugin(tmp_path: Path, plugins_config: dict[str, Any], groups: list[str]) -> dict[str, Any]:
    python = netbox.venv() / "bin" / "python"
    if not python.exists():
        pytest.skip(f"NetBox is not installed here ({python}): `runbook lab up` installs it")
    (tmp_path / "conf").mkdir(exist_ok=True)
    (tmp_path / "conf" / "configuration.py").write_text(CONFIGURATION)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {
        "NETBOX_ROOT": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "netbox.settings",
        "TEST_PLUGINS_CONFIG": json.dumps(plugins_config),
    }
    done = subprocess.run(
        [str(python), "-c", CHECK, json.dumps(groups)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_differently_named_groups_give_the_authorities_through_plugins_config(
    tmp_path: Path,
) -> None:
    department = {"groups": {"it-ops": "handle", "it-leads": ["review", "approve"]}}
    got = _plugin(tmp_path, {"netbox_runbooks": department}, ["it-ops", "it-leads", "staff"])
    assert got == {"authorities": ["approve", "handle", "review"]}
    # the default groups give nothing in this department
    got = _plugin(tmp_path, {"netbox_runbooks": department}, ["runbook-supervisors"])
    assert got == {"authorities": []}


def test_without_plugins_config_the_default_groups(tmp_path: Path) -> None:
    got = _plugin(tmp_path, {}, ["runbook-reviewers", "it-leads"])
    assert got == {"authorities": ["review"]}


def test_a_group_giving_no_authority_stops_netbox_at_start(tmp_path: Path) -> None:
    got = _plugin(tmp_path, {"netbox_runbooks": {"groups": {"it-ops": "operate"}}}, [])
    assert "'it-ops' gives 'operate'" in got["refused"]
