"""Settings: one TOML file, each value overridable by its RUNBOOKS_* variable, shown with its
source and secrets masked; the README's table is the model's."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbooks import config
from runbooks.cli import main
from runbooks.core.errors import InputError

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "nbt_abcdef123456.s3cr3t-value-xyz"


@pytest.fixture
def environ() -> Iterator[None]:
    """`apply` writes os.environ (that is its job): put it back after the test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_each_setting_comes_from_env_else_file_else_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'netbox_url = "https://netbox.example.org"\nansible_user = "ops"\n'
        "ansible_pipelining = true\n",
    )
    env = {"RUNBOOKS_ANSIBLE_USER": "deploy", "HOME": str(tmp_path)}
    loaded = config.load(path, env)
    assert loaded.config.netbox_url == "https://netbox.example.org"
    assert loaded.config.ansible_user == "deploy"  # the variable wins over the file
    assert loaded.config.ansible_pipelining is True
    assert loaded.config.redis_url == "redis://127.0.0.1:6379/0"
    sources = {r.name: r.source for r in loaded.rows()}
    assert sources["netbox_url"] == f"file {path}"
    assert sources["ansible_user"] == "env RUNBOOKS_ANSIBLE_USER"
    assert sources["redis_url"] == "default"


def test_netbox_own_variables_still_work(tmp_path: Path) -> None:
    env = {"NETBOX_URL": "https://nb.example.org", "NETBOX_TOKEN": TOKEN}
    loaded = config.load(tmp_path / "absent.toml", env)
    assert loaded.config.netbox_url == "https://nb.example.org"
    assert {r.name: r.source for r in loaded.rows()}["netbox_token"] == "env NETBOX_TOKEN"


def test_config_file_from_runbooks_config_variable(tmp_path: Path) -> None:
    path = write(tmp_path, 'redis_url = "redis://127.0.0.1:6390/2"\n')
    loaded = config.load(None, {"RUNBOOKS_CONFIG": str(path)})
    assert loaded.path == path
    assert loaded.config.redis_url == "redis://127.0.0.1:6390/2"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('netbox_ulr = "https://x"\n', "unknown setting 'netbox_ulr'"),
        ("device_port = 'twenty'\n", "setting device_port"),
        ("netbox_url = \n", "is not valid TOML"),
    ],
)
def test_a_bad_file_is_one_input_error(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(InputError, match=re.escape(fragment)):
        config.load(write(tmp_path, text), {})


def test_apply_sets_only_the_variables_the_file_gave_and_env_lacks(tmp_path: Path) -> None:
    path = write(tmp_path, f'netbox_token = "{TOKEN}"\nansible_user = "ops"\nstore = "/x.db"\n')
    env = {"RUNBOOKS_STORE": "/kept.db"}
    target: dict[str, str] = dict(env)
    config.apply(config.load(path, env), target)
    assert target == {
        "RUNBOOKS_STORE": "/kept.db",
        "RUNBOOKS_NETBOX_TOKEN": TOKEN,
        "RUNBOOKS_ANSIBLE_USER": "ops",
    }


def test_config_show_names_sources_and_masks_secrets(
    tmp_path: Path, environ: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'netbox_url = "https://nb.example.org"\nnetbox_token = "{TOKEN}"\n')
    os.environ.pop("RUNBOOKS_NETBOX_URL", None)
    os.environ.pop("RUNBOOKS_NETBOX_TOKEN", None)
    os.environ.pop("NETBOX_TOKEN", None)
    os.environ["RUNBOOKS_REDIS_URL"] = "redis://127.0.0.1:6399/0"
    store = str(tmp_path / "s.sqlite3")
    assert main(["--config", str(path), "--store", store, "config", "show"]) == 0
    text = capsys.readouterr().out
    assert TOKEN not in text
    assert "s3cr3t" not in text
    assert re.search(rf"netbox_url\s+https://nb.example.org\s+\(file {re.escape(str(path))}", text)
    assert re.search(r"redis_url\s+redis://127.0.0.1:6399/0\s+\(env RUNBOOKS_REDIS_URL", text)
    assert re.search(r"cache_dir\s+/var/cache/runbooks\s+\(default", text)
    assert main(["--config", str(path), "--store", store, "config", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in shown["settings"]}
    assert rows["netbox_token"]["value"] == "********"
    assert rows["netbox_token"]["secret"] is True
    assert set(rows) == set(config.Config.model_fields)


def test_commands_see_the_file_as_their_variables(
    tmp_path: Path, environ: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runbook module named only in the file is found by `runbook list`."""
    module = tmp_path / "extra_book.py"
    module.write_text(
        "from runbooks.core.runbook import Runbook\n"
        "class Extra(Runbook):\n"
        "    name = 'extra-from-config'\n"
        "    title = 'Only the config file names me'\n"
        "    instruction = 'test'\n"
    )
    path = write(tmp_path, f'modules = "{module}"\n')
    os.environ.pop("RUNBOOKS_MODULES", None)
    store = str(tmp_path / "s.sqlite3")
    assert main(["--config", str(path), "--store", store, "list", "--json"]) == 0
    assert "extra-from-config" in [b["name"] for b in json.loads(capsys.readouterr().out)]


def test_config_check_says_what_fails_one_line_each(
    tmp_path: Path, environ: None, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("RUNBOOKS_NETBOX_URL", "NETBOX_URL", "RUNBOOKS_DEVICE_USERNAME"):
        os.environ.pop(var, None)
    os.environ["RUNBOOKS_DEVICE_CREDENTIALS"] = "env"
    os.environ["RUNBOOKS_REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    store = str(tmp_path / "s.sqlite3")
    assert main(["--config", str(tmp_path / "none.toml"), "--store", store, "config", "check"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[:2] for ln in lines] == [
        ["FAIL", "netbox"],
        ["FAIL", "redis"],
        ["FAIL", "credentials"],
        ["ok", "store"],
    ]
    assert "not configured" in lines[0]
    assert "RUNBOOKS_DEVICE_USERNAME" in lines[2]


def test_readme_settings_table_is_the_models() -> None:
    text = README.read_text()
    begin, end = "<!-- settings-table: runbook config table -->\n", "<!-- /settings-table -->"
    assert begin in text and end in text, "the README has no generated settings table"
    current = text.split(begin, 1)[1].split(end, 1)[0]
    assert current == config.settings_table(), (
        "README's settings table differs from runbooks.config.Config: replace it with the "
        "output of `runbook config table`"
    )


def test_a_file_holding_a_secret_must_be_its_owners_alone(tmp_path: Path) -> None:
    path = write(tmp_path, f'netbox_token = "{TOKEN}"\n', mode=0o644)
    with pytest.raises(InputError, match="holds netbox_token and is readable by group or others"):
        config.load(path, {})
    write(tmp_path, 'redis_url = "redis://127.0.0.1:6379/1"\n', mode=0o644)  # no secret: fine
    assert config.load(path, {}).config.redis_url.endswith("/1")
    assert sorted(config.SECRET_KEYS) == ["device_password", "device_secret", "netbox_token"]
