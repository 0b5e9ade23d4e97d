"""The lab NetBox's plugin: editable installs that follow the checkout, the migrated template
labelled with the plugin's migrations, restarts on code changes, and web logins; no NetBox."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runbooks.lab import netbox, paths
from runbooks.lab.errors import LabError


@pytest.fixture
def lab_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNBOOKS_LAB_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOKS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _site_packages() -> Path:
    site = netbox.venv() / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    return site


def _fake_install(source: Path, *, editable: bool = True) -> None:
    """What `pip install -e <source>` leaves in the venv, as far as the lab reads it."""
    dist = netbox._project(source)[0]
    info = _site_packages() / f"{netbox._dist_key(dist)}-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    direct = {"url": source.resolve().as_uri(), "dir_info": {"editable": editable}}
    (info / "direct_url.json").write_text(json.dumps(direct))


class _Pip:
    """Stands in for `_run`: records pip's commands and installs as pip would."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, cmd, what, **kwargs) -> str:
        argv = [str(c) for c in cmd]
        self.calls.append(argv)
        for i, arg in enumerate(argv):
            if arg == "-e":
                _fake_install(Path(argv[i + 1]))
        return ""


def _editable(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-e"]


@pytest.fixture
def pip(lab_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> _Pip:
    fake = _Pip()
    monkeypatch.setattr(netbox, "_run", fake)
    _site_packages()
    (netbox.venv() / ".runbooks-installed").write_text(netbox.VERSION)  # NetBox itself is in
    return fake


# -- editable installs ------------------------------------------------------------------------


def test_installed_from_reads_pips_direct_url(lab_dirs):
    rules, plugin = netbox.plugin_sources()
    assert netbox.installed_from("runbooks-rules") is None
    _fake_install(rules)
    assert netbox.installed_from("runbooks-rules") == rules.resolve().as_uri()
    assert netbox.installed_from("Runbooks_Rules") == rules.resolve().as_uri()
    _fake_install(plugin, editable=False)
    assert netbox.installed_from("netbox-runbooks") == ""


def test_first_install_puts_both_packages_in_editable_dependency_first(pip):
    netbox.install()
    assert len(pip.calls) == 1
    argv = pip.calls[0]
    assert argv[0] == str(netbox.venv() / "bin" / "pip")
    assert _editable(argv) == [str(s.resolve()) for s in netbox.plugin_sources()]
    assert "--no-deps" not in argv


def test_install_again_runs_no_pip(pip):
    netbox.install()
    netbox.install()
    assert len(pip.calls) == 1


def test_a_venv_pointing_at_another_checkout_is_re_pointed(pip, tmp_path):
    rules, plugin = netbox.plugin_sources()
    clone = tmp_path / "ci-clone" / "plugins"
    for source in (rules, plugin):
        shutil.copy2(source / "pyproject.toml", _mkdir(clone / source.name) / "pyproject.toml")
    netbox.install()
    pip.calls.clear()
    _fake_install(clone / plugin.name)  # `lab up` from the CI clone
    netbox.install()
    assert _editable(pip.calls[0]) == [str(plugin.resolve())]
    assert netbox._stale_plugins() == []


def test_a_changed_pyproject_reinstalls_that_package(pip):
    netbox.install()
    pip.calls.clear()
    recorded = json.loads(netbox._plugins_marker().read_text())
    recorded["runbooks-rules"] = "digest of an older pyproject.toml"
    netbox._plugins_marker().write_text(json.dumps(recorded))
    netbox.install()
    assert _editable(pip.calls[0]) == [str(netbox.plugin_sources()[0].resolve())]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- configuration ------------------------------------------------------------------------------


def _configuration(core_only: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    conf = netbox.write_configuration()
    if core_only:
        monkeypatch.setenv("RUNBOOKS_NETBOX_CORE_ONLY", "1")
    namespace: dict[str, object] = {}
    exec(compile(conf.read_text(), str(conf), "exec"), namespace)
    return namespace


def test_configuration_enables_the_plugin(lab_dirs, monkeypatch):
    assert _configuration(False, monkeypatch)["PLUGINS"] == ["netbox_runbooks"]


def test_the_first_migrate_runs_without_plugins_so_the_cached_dump_is_core_only(
    lab_dirs, monkeypatch
):
    assert _configuration(True, monkeypatch)["PLUGINS"] == []
    assert netbox._netbox_env(core_only=True)["RUNBOOKS_NETBOX_CORE_ONLY"] == "1"
    monkeypatch.setenv("RUNBOOKS_NETBOX_CORE_ONLY", "1")  # never inherited by other commands
    assert "RUNBOOKS_NETBOX_CORE_ONLY" not in netbox._netbox_env()


# -- migrations ---------------------------------------------------------------------------------


@pytest.fixture
def migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = _mkdir(tmp_path / "migrations")
    monkeypatch.setattr(netbox, "_plugin_migrations", lambda: folder)
    return folder


def test_no_migration_files_leave_the_core_label(migrations):
    assert netbox.plugin_migrations_digest() == ""
    (migrations / "__init__.py").write_text("")
    assert netbox.plugin_migrations_digest() == ""
    assert netbox.migrated_label("") == f"netbox {netbox.VERSION}"


def test_the_migrations_digest_follows_names_and_contents(migrations):
    (migrations / "__init__.py").write_text("")
    (migrations / "0001_initial.py").write_text("operations = []\n")
    first = netbox.plugin_migrations_digest()
    assert len(first) == 16
    (migrations / "0001_initial.py").write_text("operations = ['edited in place']\n")
    edited = netbox.plugin_migrations_digest()
    (migrations / "0002_more.py").write_text("operations = []\n")
    assert len({first, edited, netbox.plugin_migrations_digest()}) == 3
    assert netbox.migrated_label(first) == f"netbox {netbox.VERSION} netbox_runbooks {first}"


def test_the_seed_digest_follows_the_migrations(migrations):
    spec: dict[str, object] = {"users": []}
    before = netbox._spec_digest(spec)
    (migrations / "0001_initial.py").write_text("operations = []\n")
    assert netbox._spec_digest(spec) != before


class _Templates:
    """The PostgreSQL side of ensure_migrated, recorded: which template exists, its label."""

    def __init__(self, label: str | None, *, migrate_fails: bool = False) -> None:
        self.label = label
        self.migrate_fails = migrate_fails
        self.done: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(netbox, "databases", self.databases)
        monkeypatch.setattr(netbox, "_version_of", lambda name: self.label)
        monkeypatch.setattr(netbox, "_drop", self.drop)
        monkeypatch.setattr(netbox, "_migrate_core", self.migrate_core)
        monkeypatch.setattr(netbox, "_psql", lambda sql, **kw: self.done.append(sql) or "")
        monkeypatch.setattr(netbox, "_freeze", self.freeze)
        monkeypatch.setattr(netbox, "manage", self.manage)

    def databases(self) -> set[str]:
        return set() if self.label is None else {netbox._db_migrated()}

    def drop(self, name: str) -> None:
        self.done.append(f"drop {name}")
        self.label = None

    def migrate_core(self) -> None:
        self.done.append("core")
        self.label = netbox.migrated_label("")

    def freeze(self, name: str, label: str = "") -> None:
        self.done.append(f"freeze {label}")
        self.label = label

    def manage(self, *args: str, **kwargs: object) -> str:
        self.done.append(f"netbox {' '.join(args)} db={kwargs.get('db')}")
        if self.migrate_fails:
            raise LabError("netbox migrate failed: a broken migration")
        return ""


def test_a_current_template_is_left_alone(migrations, lab_dirs, monkeypatch):
    (migrations / "0001_initial.py").write_text("operations = []\n")
    templates = _Templates(netbox.migrated_label(netbox.plugin_migrations_digest()))
    templates.install(monkeypatch)
    netbox.ensure_migrated()
    assert templates.done == []


def test_a_core_template_gets_the_plugin_migrations_in_place(migrations, lab_dirs, monkeypatch):
    (migrations / "0001_initial.py").write_text("operations = []\n")
    want = netbox.migrated_label(netbox.plugin_migrations_digest())
    templates = _Templates(netbox.migrated_label(""))
    templates.install(monkeypatch)
    netbox.ensure_migrated()
    db = netbox._db_migrated()
    assert templates.done == [
        f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS true',
        f"netbox migrate --no-input db={db}",
        f"freeze {want}",
    ]


def test_changed_migrations_start_again_from_the_core_schema(migrations, lab_dirs, monkeypatch):
    (migrations / "0001_initial.py").write_text("operations = ['edited in place']\n")
    templates = _Templates(netbox.migrated_label("0123456789abcdef"))
    templates.install(monkeypatch)
    netbox.ensure_migrated()
    db = netbox._db_migrated()
    assert templates.done == [
        f"drop {db}",
        "core",
        f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS true',
        f"netbox migrate --no-input db={db}",
        f"freeze {netbox.migrated_label(netbox.plugin_migrations_digest())}",
    ]


def test_without_plugin_migrations_the_core_template_is_enough(migrations, lab_dirs, monkeypatch):
    templates = _Templates(None)
    templates.install(monkeypatch)
    netbox.ensure_migrated()
    assert templates.done == ["core"]


def test_a_failed_plugin_migrate_drops_the_half_migrated_template(
    migrations, lab_dirs, monkeypatch
):
    (migrations / "0001_initial.py").write_text("operations = []\n")
    templates = _Templates(netbox.migrated_label(""), migrate_fails=True)
    templates.install(monkeypatch)
    with pytest.raises(LabError, match="broken migration"):
        netbox.ensure_migrated()
    assert templates.done[-1] == f"drop {netbox._db_migrated()}"
    assert templates.label is None


# -- the server runs the checkout's plugin code -------------------------------------------------


def test_the_code_digest_follows_package_files_and_their_place(tmp_path, monkeypatch):
    copies = []
    for source in netbox.plugin_sources():
        copy = tmp_path / "a" / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
        copies.append(copy)
    monkeypatch.setattr(netbox, "plugin_sources", lambda: tuple(copies))
    first = netbox.plugin_code_digest()
    (copies[1] / "netbox_runbooks" / "__pycache__").mkdir(exist_ok=True)
    (copies[1] / "netbox_runbooks" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (copies[1] / "README.md").write_text("not code the server runs\n")
    assert netbox.plugin_code_digest() == first
    init = copies[0] / "runbooks_rules" / "__init__.py"
    init.write_text(init.read_text() + "# edited\n")
    edited = netbox.plugin_code_digest()
    assert edited != first
    moved = tmp_path / "b"
    shutil.copytree(tmp_path / "a", moved)
    monkeypatch.setattr(netbox, "plugin_sources", lambda: tuple(moved / c.name for c in copies))
    assert netbox.plugin_code_digest() != edited  # the same files in another clone


def test_a_server_started_on_other_plugin_code_is_restarted(lab_dirs, monkeypatch):
    started: list[str] = []
    monkeypatch.setattr(netbox, "_server_pid", lambda: 4242)
    monkeypatch.setattr(netbox, "_serving", lambda: True)
    monkeypatch.setattr(netbox, "stop", lambda: started.append("stop"))
    monkeypatch.setattr(netbox, "_start_server", lambda: started.append("start"))
    monkeypatch.setattr(netbox, "_wait_serving", lambda proc, timeout: None)
    _mkdir(netbox.root())
    netbox._code_file().write_text(netbox.plugin_code_digest())
    netbox.serve()
    assert started == []
    netbox._code_file().write_text("another checkout's code")
    netbox.serve()
    assert started == ["stop", "start"]


# -- people sign in to the web UI ---------------------------------------------------------------


def test_every_person_has_a_web_login(lab_dirs):
    people = {
        "admin": {"username": "runbooks-lab", "password": "pw-admin", "token": "t0"},
        "reviewer": {"username": "rachel", "password": "pw-rachel", "token": "t1"},
    }
    _mkdir(netbox.root())
    netbox._tokens_file().write_text(json.dumps(people))
    assert netbox.web_login("reviewer") == (netbox.url(), "rachel", "pw-rachel")
    assert netbox.web_login("rachel") == (netbox.url(), "rachel", "pw-rachel")
    assert netbox.web_login() == (netbox.url(), "runbooks-lab", "pw-admin")


def test_plugin_sources_are_this_checkouts():
    assert [s.parent for s in netbox.plugin_sources()] == [paths.REPO_ROOT / "plugins"] * 2


def test_the_doctests_of_the_lab_netbox_module() -> None:
    import doctest

    assert doctest.testmod(netbox).failed == 0
