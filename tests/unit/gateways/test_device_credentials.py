"""Device credentials per device and per platform from the source the user chooses:
environment (the default), a 0600 TOML or YAML file, or the system keyring."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import pytest

from runbooks.core import secrets
from runbooks.core.errors import InputError, InventoryError
from runbooks.gateways import device_credentials
from runbooks.gateways.device_credentials import (
    Credentials,
    EnvSource,
    FileSource,
    KeyringSource,
    credential_source,
)

TOML = """\
[default]
username = "netops"
key_file = "/keys/netops"
timeout = 20

[platform.cisco_ios]
username = "admin"
password = "Ios-Platform-Pw"
secret = "Ios-Enable-Secret"

[platform.frr]
optional_args = { sudo = true }

[device.r7]
password = "R7-Own-Pw"
port = 2222
"""

YAML = """\
default:
  username: netops
platform:
  ios:
    username: admin
    password: Ios-Driver-Pw
device:
  r7:
    password: R7-Yaml-Pw
"""


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_environment_stays_the_default() -> None:
    env = {
        "RUNBOOKS_DEVICE_USERNAME": "netops",
        "RUNBOOKS_DEVICE_PASSWORD": "Env-Device-Pw",
        "RUNBOOKS_DEVICE_SECRET": "Env-Enable-Secret",
        "RUNBOOKS_DEVICE_PORT": "2200",
    }
    source = credential_source(env)
    assert isinstance(source, EnvSource)
    creds = source.for_device("r1", "cisco_ios", "ios")
    assert (creds.username, creds.password, creds.port) == ("netops", "Env-Device-Pw", 2200)
    assert creds.optional_args == {"secret": "Env-Enable-Secret"}
    assert creds == Credentials.from_env(env)
    assert secrets.mask_text("Env-Enable-Secret Env-Device-Pw") == f"{secrets.MASK} {secrets.MASK}"
    assert "Env-Enable-Secret" not in repr(creds) and "Env-Device-Pw" not in repr(creds)


def test_a_file_by_device_then_platform_then_default(tmp_path: Path) -> None:
    path = write(tmp_path / "devices.toml", TOML)
    source = credential_source({"RUNBOOKS_DEVICE_CREDENTIALS": f"file:{path}"})
    assert isinstance(source, FileSource)
    r7 = source.for_device("r7", "cisco_ios", "ios")
    assert (r7.username, r7.password, r7.port, r7.timeout) == ("admin", "R7-Own-Pw", 2222, 20)
    assert r7.optional_args == {"secret": "Ios-Enable-Secret"}
    r1 = source.for_device("r1", "cisco_ios", "ios")
    assert (r1.username, r1.password, r1.key_file) == ("admin", "Ios-Platform-Pw", "/keys/netops")
    leaf = source.for_device("leaf1", "frr", "frr")
    assert (leaf.username, leaf.password, leaf.port) == ("netops", "", 22)
    assert leaf.optional_args == {"sudo": True}
    assert secrets.mask_text("R7-Own-Pw") == secrets.MASK


def test_a_yaml_file_and_the_driver_name_as_platform(tmp_path: Path) -> None:
    source = FileSource(write(tmp_path / "devices.yaml", YAML), {})
    r1 = source.for_device("r1", "cisco_ios", "ios")
    assert (r1.username, r1.password) == ("admin", "Ios-Driver-Pw")
    assert source.for_device("r7", "cisco_ios", "ios").password == "R7-Yaml-Pw"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610])
def test_a_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "devices.toml", TOML, mode)
    with pytest.raises(InputError, match=r"is open to group or others \(mode 0\d+\): chmod 600 it"):
        FileSource(path, {}).for_device("r1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults]\nusername = 'x'\n", "unknown table 'defaults'"),
        ("[device.r1]\npasword = 'x'\n", r"\[device\.r1\] has unknown key 'pasword'"),
        ("[default]\npassword = 'Not-Shown-1\n", "does not parse$"),
        ("[default]\npassword = 'x'\n", "no device credentials for device:r1: set a username"),
        ("[default]\nusername = 'x'\nport = 'ssh'\n", "port and timeout must be numbers"),
        ("platform = 'ios'\n", r"\[platform\] is no table"),
        ("[device]\nr1 = 'pw'\n", r"\[device\.r1\] is no table"),
    ],
)
def test_a_bad_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "devices.toml", text)
    with pytest.raises((InputError, InventoryError), match=message) as e:
        FileSource(path, {}).for_device("r1")
    assert "Not-Shown-1" not in str(e.value)


def test_a_missing_file_or_a_wrong_selector(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"devices\.toml: No such file"):
        FileSource(tmp_path / "devices.toml", {}).for_device("r1")
    with pytest.raises(InputError, match=r"name it \.toml or \.yaml"):
        FileSource(write(tmp_path / "devices.ini", TOML), {}).for_device("r1")
    with pytest.raises(InputError, match="must be env, file:<path> or keyring"):
        credential_source({"RUNBOOKS_DEVICE_CREDENTIALS": "vault"})


def test_the_keyring_by_device_then_platform_then_default_then_environment() -> None:
    held = {
        ("runbooks", "device:r7:password"): "R7-Keyring-Pw",
        ("runbooks", "platform:cisco_ios:username"): "admin",
        ("runbooks", "platform:cisco_ios:password"): "Ios-Keyring-Pw",
        ("runbooks", "platform:ios:secret"): "Ios-Keyring-Secret",
        ("runbooks", "default:password"): "Default-Keyring-Pw",
    }
    asked: list[str] = []

    def get_password(service: str, key: str) -> str | None:
        asked.append(key)
        return held.get((service, key))

    env = {"RUNBOOKS_DEVICE_USERNAME": "netops", "RUNBOOKS_DEVICE_TIMEOUT": "9"}
    source = KeyringSource(get_password, env)
    r7 = source.for_device("r7", "cisco_ios", "ios")
    assert (r7.username, r7.password, r7.timeout) == ("admin", "R7-Keyring-Pw", 9)
    assert r7.optional_args == {"secret": "Ios-Keyring-Secret"}
    leaf = source.for_device("leaf1", "frr", "frr")
    assert (leaf.username, leaf.password) == ("netops", "Default-Keyring-Pw")
    assert "key_file" not in " ".join(asked)  # the keyring holds secrets and usernames only
    assert secrets.mask_text("Ios-Keyring-Secret") == secrets.MASK


def test_the_system_keyring() -> None:
    keyring = pytest.importorskip("keyring")
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):  # type: ignore[misc]
        priority = 1  # type: ignore[assignment]
        held: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.held.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.held[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.held.pop((service, username), None)

    before = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        keyring.set_password("runbooks", "default:username", "kr-user")
        keyring.set_password("runbooks", "device:r1:password", "Kr-System-Pw")
        source = credential_source({"RUNBOOKS_DEVICE_CREDENTIALS": "keyring"})
        creds = source.for_device("r1", "frr", "frr")
        assert (creds.username, creds.password) == ("kr-user", "Kr-System-Pw")
    finally:
        keyring.set_keyring(before)


def test_the_doctests() -> None:
    assert doctest.testmod(device_credentials).failed == 0


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    real = write(tmp_path / "real.toml", TOML)
    link = tmp_path / "devices.toml"
    link.symlink_to(real)
    with pytest.raises(InputError, match=r"devices\.toml is a symbolic link: name the file itself"):
        FileSource(link, {}).for_device("r1")


@pytest.mark.parametrize("mode", [0o770, 0o730, 0o703, 0o777])
def test_a_directory_others_can_write_to_is_refused(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    path = write(folder / "devices.toml", TOML)
    folder.chmod(mode)
    with pytest.raises(InputError, match=r"its directory is writable by group or others") as e:
        FileSource(path, {}).for_device("r1")
    assert "\n" not in str(e.value)


def test_a_file_of_another_owner_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "devices.toml", TOML)
    monkeypatch.setattr(os, "geteuid", lambda: path.stat().st_uid + 1)
    with pytest.raises(InputError, match=r"belongs to uid \d+, not to this user"):
        FileSource(path, {}).for_device("r1")


def test_the_checks_are_on_the_file_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swapping the file between the checks and the read cannot work: the checks are of the
    descriptor read from (the path is not stat'ed for the mode, nor read again by name)."""
    path = write(tmp_path / "devices.toml", TOML)
    by_name: list[str] = []
    stat_, read_text = Path.stat, Path.read_text

    def named_stat(self: Path, **kw: bool) -> os.stat_result:
        by_name.append(f"stat {self.name}")
        return stat_(self, **kw)

    def named_read(self: Path, *a: str) -> str:
        by_name.append(f"read {self.name}")
        return read_text(self, *a)

    monkeypatch.setattr(Path, "stat", named_stat)
    monkeypatch.setattr(Path, "read_text", named_read)
    assert FileSource(path, {}).for_device("r7", "cisco_ios").password == "R7-Own-Pw"
    assert by_name == []


@pytest.mark.parametrize(
    "error",
    ["NoKeyringError", "KeyringLocked", "RuntimeError"],
)
def test_keyring_errors_are_one_line_without_values(error: str) -> None:
    keyring = pytest.importorskip("keyring")
    from keyring.backend import KeyringBackend

    raised = getattr(keyring.errors, error, RuntimeError)("no backend\nLeaked-Value-1")

    class Failing(KeyringBackend):  # type: ignore[misc]
        priority = 1

        def get_password(self, service: str, username: str) -> str | None:
            raise raised

        def set_password(self, service: str, username: str, password: str) -> None:
            raise raised

        def delete_password(self, service: str, username: str) -> None:
            raise raised

    before = keyring.get_keyring()
    keyring.set_keyring(Failing())  # type: ignore[no-untyped-call]
    try:
        source = credential_source({"RUNBOOKS_DEVICE_CREDENTIALS": "keyring"})
        with pytest.raises(InputError) as e:
            source.for_device("r1", "frr", "frr")
    finally:
        keyring.set_keyring(before)
    message = str(e.value)
    assert message.startswith("the keyring could not be read (runbooks device:r1:")
    assert error in message
    assert "\n" not in message and "Leaked-Value-1" not in message
    assert e.value.__cause__ is None and e.value.__suppress_context__
