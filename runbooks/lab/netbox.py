"""The lab's NetBox: a real NetBox 4.7.3 from PyPI, seeded from inventory/lab.yml.

Layout (all names fixed so `lab status` and people can find them):

- ``cache_dir()/netbox-<version>/venv``: NetBox's own virtualenv (kept across runs), shared
  by every clone on the machine. This checkout's ``plugins/runbooks-rules`` and
  ``plugins/netbox-runbooks`` are installed into it editable: plugin edits take effect when
  the server next starts, and `up` restarts a running server whose plugin code changed. `up`
  from another clone re-points the venv at that clone's plugins (and `up` from this one back).
- ``cache_dir()/netbox-<version>/migrated.sql.gz``: a dump of a freshly migrated, empty
  database, NetBox core only, when this machine migrated one; else the dump shipped with the
  package for exactly this version (``runbooks/lab/snapshots``, see `netbox_schema`). NetBox's
  first migrate takes ~7 minutes here (with a progress bar); a dump restores in seconds.
- ``state_dir()/netbox/``: NETBOX_ROOT (``conf/configuration.py``, ``wsgi/``), the generated
  secret key, token peppers and API tokens (mode 0600), the server's pid file and log.
- The server: gunicorn (``netbox.wsgi:application``, 2 workers of 3 threads, no control
  socket), as NetBox's installation guide has it; the static files the web UI needs are
  served by Django's StaticFilesHandler around that application (no web server in the lab).
- PostgreSQL databases on 127.0.0.1:5432: ``runbooks_lab_netbox`` (live),
  ``runbooks_lab_netbox_migrated`` (template: migrated, empty; core from the dump, then the
  plugin's migrations, labelled with both) and ``runbooks_lab_netbox_seeded`` (template: the
  seeded lab). `reset()` recreates the live database from the seeded template.
- Redis on 127.0.0.1:6379, databases 10 (tasks) and 11 (cache).
- RUNBOOKS_NETBOX_INSTANCE=<name> (with its own RUNBOOKS_NETBOX_PORT) runs an independent
  second NetBox: databases ``runbooks_lab_netbox_<name>[_seeded|_migrated]``, state in
  ``state_dir()/netbox-<name>``, Redis dbs 12/13 or 14/15. Sessions that reset NetBox
  concurrently must not share one instance.

Public API: install, up, down, destroy, reset, serve, stop, status, credentials, web_login,
render_configs, build_snapshot.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import requests

from runbooks.core.errors import InputError
from runbooks.lab import netbox_schema, netbox_seed, paths, topology
from runbooks.lab.errors import LabError
from runbooks.lab.locks import MachineLock
from runbooks.lab.status import ComponentStatus

log = logging.getLogger(__name__)

VERSION = "4.7.3"
DB_BASE = "runbooks_lab_netbox"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
HOST = "127.0.0.1"  # never anything else: the lab must not listen beyond this machine
ROLES = ("operator", "reviewer", "approver", "approver2", "supervisor", "worker", "admin")


# -- where things live ------------------------------------------------------------------------


def port() -> int:
    raw = os.environ.get("RUNBOOKS_NETBOX_PORT", "8765")
    if not raw.isdigit() or not 1024 <= int(raw) <= 65535:
        raise InputError(f"RUNBOOKS_NETBOX_PORT must be a port number 1024-65535, not {raw!r}")
    return int(raw)


def url() -> str:
    return f"http://{HOST}:{port()}"


def instance() -> str:
    """RUNBOOKS_NETBOX_INSTANCE: a second, independent lab NetBox (own databases, state dir,
    Redis dbs; give it its own RUNBOOKS_NETBOX_PORT too), e.g. for a test session that must
    not see another session's resets. Empty: the lab's one NetBox."""
    name = os.environ.get("RUNBOOKS_NETBOX_INSTANCE", "")
    valid = name.isascii() and name.isalnum() and name.islower() and len(name) <= 16
    if name and (not valid or name in ("seeded", "migrated")):
        raise InputError(
            f"RUNBOOKS_NETBOX_INSTANCE must be up to 16 lowercase letters/digits: {name!r}"
        )
    return name


def database() -> str:
    """The live database NetBox serves from (for tests that look at what NetBox stored)."""
    return _db()


def _db() -> str:
    """The live database NetBox serves from."""
    return f"{DB_BASE}_{instance()}" if instance() else DB_BASE


def _db_seeded() -> str:
    """Template: the seeded lab (reset() copies it over the live database)."""
    return f"{_db()}_seeded"


def _db_migrated() -> str:
    """Template: migrated, empty (restored from the cached dump when missing)."""
    return f"{_db()}_migrated"


def _redis_dbs() -> tuple[int, int]:
    """(tasks, cache) Redis database numbers: 10/11, an instance 12/13 or 14/15."""
    if not instance():
        return 10, 11
    base = 12 + 2 * (zlib.crc32(instance().encode()) % 2)
    return base, base + 1


def home() -> Path:
    """Kept across runs: venv and migrated snapshot for this NetBox version."""
    return paths.cache_dir() / f"netbox-{VERSION}"


def venv() -> Path:
    return home() / "venv"


def snapshot() -> Path:
    """NetBox core's first migrate, dumped: no plugin's tables (those come from this checkout)."""
    return home() / "migrated.sql.gz"


def plugin_sources() -> tuple[Path, ...]:
    """This checkout's packages installed into NetBox's venv, a dependency before its user."""
    plugins = paths.REPO_ROOT / "plugins"
    return plugins / "runbooks-rules", plugins / "netbox-runbooks"


def _plugin_migrations() -> Path:
    return plugin_sources()[-1] / netbox_seed.PLUGINS[0] / "migrations"


def root() -> Path:
    """NETBOX_ROOT, in the lab's state dir."""
    return paths.state_dir() / (f"netbox-{instance()}" if instance() else "netbox")


def _tokens_file() -> Path:
    return root() / "tokens.json"


def _seed_marker() -> Path:
    return root() / "seeded.json"


def _pid_file() -> Path:
    return root() / "server.pid"


def _log_file() -> Path:
    return root() / "server.log"


def _code_file() -> Path:
    """`plugin_code_digest()` as it was when the running server started."""
    return root() / "server.code"


# -- small helpers ------------------------------------------------------------------------------


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    what: str,
    *,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = 120,
) -> str:
    """Run a command; on failure raise a LabError naming `what` and the command's last line."""
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            input=stdin,
            capture_output=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"{what}: {exc.filename} not found (run scripts/lab-deps.sh)") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what}: no answer after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        last = err[-1] if err else f"exit status {proc.returncode}"
        raise LabError(f"{what} failed: {last}", returncode=proc.returncode)
    return proc.stdout.decode(errors="replace")


def _write_private(path: Path, text: str) -> None:
    """Write a secret file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    tmp.replace(path)


def _secret(name: str, length: int = 60) -> str:
    """A generated secret kept in NETBOX_ROOT (mode 0600); created once, reused afterwards."""
    path = root() / name
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(length)[:length])
    return path.read_text(encoding="utf-8").strip()


def _answers(host: str, port_: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port_), timeout=1):
        return True
    return False


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """One NetBox operation at a time on this machine (two test sessions must not seed at
    once); inside `held()`, the holder's own go ahead."""
    paths.state_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    with _netbox_lock():
        yield


_netbox_lock = MachineLock(lambda: root().with_suffix(".lock"), "lab's NetBox")


@contextlib.contextmanager
def held(*, reset_first: bool = True) -> Iterator[None]:
    """The lab's NetBox for a while (a test): other processes' resets wait until it is
    released; this process's own go ahead. Reset to the seed first unless told not to."""
    with _exclusive():
        if reset_first:
            reset()
        yield


# -- install ------------------------------------------------------------------------------------


def find_python() -> Path:
    """An interpreter >= 3.12 for NetBox: pyenv's 3.12/3.13 (not its shims), else the system's."""
    candidates: list[Path] = []
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    if shutil.which("pyenv"):
        with contextlib.suppress(LabError):
            pyenv_root = _run(["pyenv", "root"], "pyenv root").strip() or pyenv_root
    for minor in ("12", "13"):
        candidates += sorted(Path(pyenv_root, "versions").glob(f"3.{minor}.*/bin/python3.{minor}"))
    candidates += [Path(f"/usr/bin/python3{v}") for v in (".12", ".13", "")]
    for cand in candidates:
        if not cand.is_file():
            continue
        with contextlib.suppress(LabError):
            out = _run(
                [cand, "-c", "import sys, venv; print(sys.version_info >= (3, 12))"],
                f"probe {cand}",
                timeout=20,
            )
            if out.strip() == "True":
                return cand
    raise LabError("NetBox needs Python >= 3.12 with venv; none found (pyenv 3.12/3.13 or system)")


def install() -> None:
    """NetBox in its own venv (once per version), this checkout's plugins in it (when missing
    or installed from elsewhere), and its configuration (every time)."""
    with _venv_lock():
        done = venv() / ".runbooks-installed"  # written last: a half-made venv is redone
        if not done.exists():
            _install_netbox()
            done.write_text(VERSION, encoding="utf-8")
        stale = _stale_plugins()
        if stale:
            _install_plugins(stale)
    write_configuration()


# The venv is shared by every clone and instance on the machine, whose NetBox locks differ.
_venv_lock = MachineLock(lambda: home().with_suffix(".lock"), "NetBox venv")


def _install_netbox() -> None:
    python = find_python()
    log.info("installing NetBox %s with %s into %s (about 75 s)", VERSION, python, venv())
    started = time.monotonic()
    if venv().exists():
        shutil.rmtree(venv())  # a half-made venv from an interrupted install
    home().mkdir(parents=True, exist_ok=True)
    _run([python, "-m", "venv", venv()], "creating NetBox's venv")
    _pip(["install", f"netbox=={VERSION}"], f"pip install netbox=={VERSION}", timeout=900)
    log.info("NetBox installed in %.0f s", time.monotonic() - started)


def _pip(args: list[str | os.PathLike[str]], what: str, timeout: float = 300) -> None:
    pip = venv() / "bin" / "pip"
    quiet = ["--quiet", "--no-input", "--disable-pip-version-check"]
    _run([pip, *quiet, *args], what, env=_netbox_env(), timeout=timeout)


def _dist_key(name: str) -> str:
    """A distribution name as dist-info directories spell it (PEP 503 normalised, with `_`).

    >>> _dist_key("netbox-runbooks"), _dist_key("Runbooks.Rules")
    ('netbox_runbooks', 'runbooks_rules')
    """
    return re.sub(r"[-_.]+", "_", name).lower()


def _project(source: Path) -> tuple[str, str]:
    """(distribution name, digest of pyproject.toml) of a package directory."""
    raw = (source / "pyproject.toml").read_bytes()
    name = str(tomllib.loads(raw.decode())["project"]["name"])
    return name, hashlib.sha256(raw).hexdigest()


def installed_from(dist: str) -> str | None:
    """Where NetBox's venv has `dist` from: the file URL of an editable install (pip's
    direct_url.json), "" when installed otherwise, None when not installed. Read from the
    files, not by starting NetBox's interpreter: `up` asks on every run."""
    for info in venv().glob("lib/python3.*/site-packages/*.dist-info"):
        if _dist_key(info.name.split("-", 1)[0]) != _dist_key(dist):
            continue
        try:
            direct = json.loads((info / "direct_url.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        editable = bool(direct.get("dir_info", {}).get("editable"))
        return str(direct.get("url", "")) if editable else ""
    return None


def _plugins_marker() -> Path:
    """pyproject digests of the plugins as last installed: an editable install reads code from
    the checkout, but its metadata (version, dependencies) only from a reinstall."""
    return venv() / ".runbooks-plugins.json"


def _recorded_plugins() -> dict[str, str]:
    try:
        recorded = json.loads(_plugins_marker().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


def _stale_plugins() -> list[Path]:
    """This checkout's plugin packages that NetBox's venv lacks, has from another checkout
    (a CI clone), or has with metadata from another pyproject.toml."""
    recorded = _recorded_plugins()
    stale = []
    for source in plugin_sources():
        dist, digest = _project(source)
        if installed_from(dist) != source.resolve().as_uri() or recorded.get(dist) != digest:
            stale.append(source)
    return stale


def _install_plugins(sources: list[Path]) -> None:
    """pip install -e: NetBox imports the checkout's files, so code edits need no reinstall.
    netbox-runbooks requires runbooks-rules, which is installed first or already is."""
    started = time.monotonic()
    log.info("installing %s into NetBox's venv (editable)", ", ".join(str(s) for s in sources))
    editable: list[str | os.PathLike[str]] = []
    for source in sources:
        editable += ["-e", source.resolve()]
    _pip(["install", *editable], "pip install -e " + " ".join(s.name for s in sources))
    recorded = _recorded_plugins() | dict(_project(s) for s in sources)
    _plugins_marker().write_text(json.dumps(recorded, sort_keys=True), encoding="utf-8")
    log.info("plugins installed in %.1f s", time.monotonic() - started)


def write_configuration() -> Path:
    """NetBox's configuration.py. It holds no secret itself: it reads them from 0600 files."""
    conf = root() / "conf" / "configuration.py"
    root().mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(paths.state_dir(), 0o700)
    _secret("secret_key", 60)
    _secret("pepper", 60)
    text = _CONFIGURATION.format(
        root=str(root()),
        db=_db(),
        pg_host=PG_HOST,
        pg_port=PG_PORT,
        pg_user=PG_USER,
        redis_host=REDIS_HOST,
        redis_port=REDIS_PORT,
        tasks_db=_redis_dbs()[0],
        cache_db=_redis_dbs()[1],
        plugins=list(netbox_seed.PLUGINS),
    )
    conf.parent.mkdir(parents=True, exist_ok=True)
    if not conf.exists() or conf.read_text(encoding="utf-8") != text:
        _write_private(conf, text)
    wsgi = _wsgi_dir() / f"{WSGI_MODULE}.py"
    if not wsgi.exists() or wsgi.read_text(encoding="utf-8") != _WSGI:
        _write_private(wsgi, _WSGI)
    return conf


WSGI_MODULE = "runbooks_lab_wsgi"
# NetBox's installation guide puts gunicorn behind a web server that serves /static/ from
# collectstatic's STATIC_ROOT; the lab has no web server on 127.0.0.1, so the static files are
# served from where Django's finders find them, as `runserver --insecure` did (nothing to
# collect, nothing stale after an upgrade). Every other request goes to NetBox's application.
_WSGI = """\
# Written by runbooks.lab.netbox: NetBox's WSGI application, with its static files.
from django.contrib.staticfiles.handlers import StaticFilesHandler
from netbox.wsgi import application as netbox_application

application = StaticFilesHandler(netbox_application)
"""


def _wsgi_dir() -> Path:
    return root() / "wsgi"


_CONFIGURATION = """\
# Written by runbooks.lab.netbox; regenerated on every `lab up`. Secrets live in 0600 files.
import os
from pathlib import Path

_ROOT = Path({root!r})
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES = {{
    "default": {{
        "NAME": os.environ.get("RUNBOOKS_NETBOX_DB", {db!r}),  # seeding targets the template
        "USER": {pg_user!r},
        "PASSWORD": "",
        "HOST": {pg_host!r},
        "PORT": {pg_port},
        "CONN_MAX_AGE": 300,
        "CONN_HEALTH_CHECKS": True,
    }}
}}
REDIS = {{
    "tasks": {{"HOST": {redis_host!r}, "PORT": {redis_port}, "DATABASE": {tasks_db}}},
    "caching": {{"HOST": {redis_host!r}, "PORT": {redis_port}, "DATABASE": {cache_db}}},
}}
SECRET_KEY = (_ROOT / "secret_key").read_text().strip()
API_TOKEN_PEPPERS = {{1: (_ROOT / "pepper").read_text().strip()}}
CENSUS_REPORTING_ENABLED = False
RELEASE_CHECK_URL = None
ISOLATED_DEPLOYMENT = True
TIME_ZONE = "UTC"
# Without plugins only for the first migrate, whose dump (kept per NetBox version) is core only.
PLUGINS = [] if os.environ.get("RUNBOOKS_NETBOX_CORE_ONLY") else {plugins!r}
"""


def _netbox_env(db: str | None = None, *, core_only: bool = False) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "RUNBOOKS_NETBOX_CORE_ONLY"))
    }
    env["NETBOX_ROOT"] = str(root())
    env["RUNBOOKS_NETBOX_DB"] = db or _db()
    env["PATH"] = f"{venv() / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    if core_only:
        env["RUNBOOKS_NETBOX_CORE_ONLY"] = "1"
    return env


def manage(
    *args: str,
    stdin: bytes | None = None,
    timeout: float = 120,
    db: str | None = None,
    core_only: bool = False,
) -> str:
    """Run one NetBox management command (`netbox migrate`, ...); each costs ~8 s of start-up.
    `db`: another database than the live one (a template); `core_only`: without plugins."""
    return _run(
        [venv() / "bin" / "netbox", *args],
        f"netbox {args[0]}",
        env=_netbox_env(db, core_only=core_only),
        stdin=stdin,
        timeout=timeout,
    )


# -- services: Redis and PostgreSQL (started only when not already answering) --------------------


def _redis_pid_file() -> Path:
    return root() / "redis.pid"


def _pg_started_marker() -> Path:
    return root() / "postgresql.started-by-lab"


def ensure_services() -> None:
    root().mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _answers(REDIS_HOST, REDIS_PORT):
        log.info("starting Redis on %s:%d", REDIS_HOST, REDIS_PORT)
        _run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                REDIS_HOST,
                "--port",
                str(REDIS_PORT),
                "--pidfile",
                str(_redis_pid_file()),
            ],
            "starting redis-server",
        )
        _wait_for(lambda: _answers(REDIS_HOST, REDIS_PORT), 10, "Redis to answer")
    if not _answers(PG_HOST, PG_PORT):
        versions = sorted(p.name for p in Path("/etc/postgresql").glob("*"))
        if not versions:
            raise LabError("PostgreSQL is not installed (run scripts/lab-deps.sh)")
        log.info("starting PostgreSQL %s cluster main", versions[-1])
        _run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
            "starting PostgreSQL",
            timeout=60,
        )
        _pg_started_marker().write_text(versions[-1], encoding="utf-8")
        _wait_for(lambda: _answers(PG_HOST, PG_PORT), 20, "PostgreSQL to answer")


def stop_services() -> None:
    """Stop Redis and PostgreSQL only if this lab started them."""
    pid = _read_pid(_redis_pid_file())
    if pid is not None:
        log.info("stopping the Redis this lab started (pid %d)", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        _redis_pid_file().unlink(missing_ok=True)
    marker = _pg_started_marker()
    if marker.exists():
        version = marker.read_text(encoding="utf-8").strip()
        log.info("stopping the PostgreSQL %s cluster this lab started", version)
        _run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop"],
            "stopping PostgreSQL",
            timeout=60,
        )
        marker.unlink()


def _flush_cache() -> None:
    import redis

    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=_redis_dbs()[1], socket_timeout=5).flushdb()


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise LabError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


# -- databases: migrate once, keep a snapshot and templates -------------------------------------


def _pg_login() -> list[str]:
    return ["-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER]


def _psql(
    sql: str, *, db: str = "postgres", stdin: bytes | None = None, timeout: float = 60
) -> str:
    """One SQL statement (or, with sql="", a script on stdin) as the postgres superuser."""
    cmd = [
        "psql",
        *_pg_login(),
        "-d",
        db,
        "-v",
        "ON_ERROR_STOP=1",
        "-qAtX",
    ]
    cmd += ["-c", sql] if sql else ["-f", "-"]
    what = f"psql {sql[:60]}" if sql else f"restoring into {db}"
    return _run(cmd, what, stdin=stdin, timeout=timeout).strip()


def databases() -> set[str]:
    """The lab's databases that exist (names are module constants, never user input)."""
    out = _psql("SELECT datname FROM pg_database WHERE datname LIKE 'runbooks_lab_netbox%'")
    return set(out.split()) & {_db(), _db_seeded(), _db_migrated()}


def _drop(name: str) -> None:
    _psql(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true')
    _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create_from(name: str, template: str) -> None:
    _psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def _freeze(name: str, label: str = f"netbox {VERSION}") -> None:
    """Mark a database as a template nobody connects to (so CREATE ... TEMPLATE never waits),
    labelled with the schema it holds (see `migrated_label`)."""
    _psql(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
    _psql(f"COMMENT ON DATABASE \"{name}\" IS '{label}'")


def plugin_migrations_digest() -> str:
    """A digest of the plugin's migration files (names and contents), "" when it has none.
    Contents, not paths: a CI clone with the same migrations shares the templates."""
    files = sorted(_plugin_migrations().glob("*.py"))
    if not any(f.name != "__init__.py" for f in files):
        return ""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def migrated_label(plugin_digest: str) -> str:
    """The migrated template's label: NetBox's version, and the plugin's migrations if any.

    >>> migrated_label(""), migrated_label("0123abcd")
    ('netbox 4.7.3', 'netbox 4.7.3 netbox_runbooks 0123abcd')
    """
    core = f"netbox {VERSION}"
    return f"{core} {netbox_seed.PLUGINS[0]} {plugin_digest}" if plugin_digest else core


def _version_of(name: str) -> str:
    out = _psql(
        "SELECT datname || ' ' || coalesce(shobj_description(oid, 'pg_database'), '')"
        " FROM pg_database WHERE datname LIKE 'runbooks_lab_netbox%'"
    )
    labels = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return labels.get(name, "").strip()


def ensure_migrated() -> None:
    """The migrated, empty template: NetBox core from itself, the cached dump or (once, ~6 min)
    a migrate; then the plugin's migrations (seconds) whenever its migration files changed."""
    core, want = migrated_label(""), migrated_label(plugin_migrations_digest())
    if _db_migrated() in databases():
        have = _version_of(_db_migrated())
        if have == want:
            return
        if have != core:
            # another NetBox version, or migrations since edited in place (as they are while a
            # plugin is young): only the core schema is certain, so start again from it
            _drop(_db_migrated())
    if _db_migrated() not in databases():
        _migrate_core()
    if want != core:
        _migrate_plugin(want)


def _migrate_core() -> None:
    """The core-only migrated template: from this machine's dump, else from the dump shipped
    for exactly this NetBox version, else by NetBox's first migrate (kept as this machine's)."""
    for dump, source in (
        (snapshot(), "this machine's"),
        (netbox_schema.shipped_snapshot(VERSION), "the shipped"),
    ):
        if dump.exists() and _restore_core(dump, source):
            return
    log.info("migrating a new NetBox %s database once (about 7 minutes; kept afterwards)", VERSION)
    started = time.monotonic()
    sql = _migrate_fresh(_db())
    tmp = snapshot().with_suffix(".tmp")
    tmp.write_bytes(netbox_schema.compress(sql))
    tmp.replace(snapshot())
    _create_from(_db_migrated(), _db())
    _freeze(_db_migrated())
    _drop(_db())
    log.info("migrated in %.0f s; snapshot kept at %s", time.monotonic() - started, snapshot())


def _restore_core(dump: Path, source: str) -> bool:
    """The migrated template from a core dump; False (nothing left behind) when PostgreSQL
    refuses it, e.g. a dump from a newer PostgreSQL than this machine's."""
    started = time.monotonic()
    _psql(f'CREATE DATABASE "{_db_migrated()}"')
    try:
        _psql("", db=_db_migrated(), stdin=gzip.decompress(dump.read_bytes()), timeout=300)
    except (LabError, OSError, EOFError) as exc:
        log.warning(
            "could not restore %s NetBox %s dump %s (%s): migrating", source, VERSION, dump, exc
        )
        _drop(_db_migrated())
        return False
    _freeze(_db_migrated())
    log.info(
        "restored %s migrated NetBox %s schema (%s) in %.1f s",
        source,
        VERSION,
        dump.name,
        time.monotonic() - started,
    )
    return True


def _migrate_fresh(db: str) -> str:
    """NetBox core's migrations (no plugin) into a new, empty database `db`; its dump."""
    _psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    _psql(f'CREATE DATABASE "{db}"')
    migrate_with_progress(db, core_only=True)
    return _dump(db)


def _dump(db: str) -> str:
    """A plain dump fit to restore anywhere and to ship: no owners, grants or psql meta-commands."""
    dump = _run(
        ["pg_dump", *_pg_login(), "--no-owner", "--no-privileges", db],
        f"pg_dump of {db}",
        timeout=300,
    )
    return netbox_schema.clean_dump(dump)


def migrate_with_progress(
    db: str | None = None, *, core_only: bool = False, timeout: float = 2400
) -> None:
    """`netbox migrate` on `db`, each migration reported as it starts (to the CLI's progress
    bar: `netbox_schema.reporting`) out of the count `migrate --plan` gives (~10 s more)."""
    plan = manage("migrate", "--plan", db=db, core_only=core_only, timeout=300)
    total = len(netbox_schema.planned_migrations(plan))
    log.info("NetBox migrate: %d migrations to apply", total)
    env = _netbox_env(db, core_only=core_only) | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [venv() / "bin" / "netbox", "migrate", "--no-input"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        started, tail = netbox_schema.follow(proc.stdout, total)
        returncode = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if returncode != 0:
        last = next((line for line in reversed(tail) if line.strip()), f"exit status {returncode}")
        raise LabError(f"netbox migrate failed after {started} of {total} migrations: {last}")
    log.info("NetBox migrate: %d of %d migrations applied", started, total)


def build_snapshot(dest: Path | None = None) -> Path:
    """Regenerate the shipped core dump for this NetBox version (`runbook lab netbox-snapshot`):
    a real migrate into a scratch database (~7 min), dumped to `dest` (default: the package's
    ``snapshots/netbox-<version>-core.sql.gz``). Refuses a dump with any user, token or session."""
    dest = dest or netbox_schema.shipped_snapshot(VERSION)
    scratch = f"{DB_BASE}_core_snapshot"  # no instance's name: instance names have no "_"
    started = time.monotonic()
    install()  # under the venv's lock; not NetBox's: the lab's resets go on meanwhile
    ensure_services()
    try:
        sql = _migrate_fresh(scratch)
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    private = netbox_schema.private_rows(sql)
    if private:
        raise LabError(f"the migrated schema holds private rows, not shipping it: {private}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(netbox_schema.compress(sql))
    tmp.replace(dest)
    log.info("wrote %s in %.0f s", dest, time.monotonic() - started)
    return dest


def _migrate_plugin(label: str) -> None:
    """Apply the plugin's migrations to the migrated template in place: core's are all applied
    already, so `migrate` costs NetBox's start-up and the plugin's own (seconds)."""
    started = time.monotonic()
    _psql(f'ALTER DATABASE "{_db_migrated()}" WITH ALLOW_CONNECTIONS true')
    try:
        manage("migrate", "--no-input", db=_db_migrated(), timeout=600)
    except BaseException:
        _drop(_db_migrated())  # partly migrated: the next `up` starts again from the core schema
        raise
    _freeze(_db_migrated(), label)
    log.info("applied the plugin's migrations in %.1f s (%s)", time.monotonic() - started, label)


def _spec_digest(spec: dict[str, object]) -> str:
    """What the seeded template depends on: NetBox's version, the plugin's migrations (the
    seed grants access to the plugin's object types, which exist only after them), the spec."""
    migrations = plugin_migrations_digest()
    blob = json.dumps(
        {"netbox": VERSION, "migrations": migrations, "spec": spec}, sort_keys=True
    ).encode()
    return hashlib.sha256(blob).hexdigest()


def _seeded_is_current(digest: str) -> bool:
    try:
        marker = json.loads(_seed_marker().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(marker.get("digest") == digest and _tokens_file().exists())


def _start_seeding(spec: dict[str, object]) -> subprocess.Popen[bytes]:
    """Seed the (migrated, empty) seeded-template database in NetBox's interpreter, in the
    background; the generated API tokens land in tokens.json (0600)."""
    spec_file = root() / "seed-spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    env = _netbox_env(_db_seeded()) | {"DJANGO_SETTINGS_MODULE": "netbox.settings"}
    with open(root() / "seed.log", "wb") as logf:
        # -I: the seed file's directory (runbooks/lab, holding a netbox.py) must not be on sys.path
        return subprocess.Popen(
            [venv() / "bin" / "python", "-I", netbox_seed.__file__, spec_file, _tokens_file()],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )


def _seed_and_serve(spec: dict[str, object], digest: str) -> None:
    """Seed a fresh template while NetBox starts on a migrated, empty live database; then swap
    the live database for the seeded one. Both take ~8-10 s of Python start-up: in parallel."""
    stop()  # the live database is about to be replaced
    ensure_migrated()
    for name in (_db(), _db_seeded()):
        if name in databases():
            _drop(name)
    _seed_marker().unlink(missing_ok=True)
    _tokens_file().unlink(missing_ok=True)
    _create_from(_db_seeded(), _db_migrated())
    _create_from(_db(), _db_migrated())
    started = time.monotonic()
    seeder = _start_seeding(spec)
    try:
        server = _start_server()
        _wait_serving(server, authenticated=False)
        if seeder.wait(timeout=300) != 0:
            lines = (root() / "seed.log").read_text(errors="replace").strip().splitlines()
            raise LabError(f"seeding NetBox failed: {lines[-1] if lines else 'no output'}")
    except BaseException:
        if seeder.poll() is None:
            seeder.kill()
            seeder.wait()
        stop()
        raise
    os.chmod(_tokens_file(), 0o600)
    _freeze(_db_seeded())
    _restore_live()
    _seed_marker().write_text(json.dumps({"digest": digest, "netbox": VERSION}), encoding="utf-8")
    _wait_serving(server, authenticated=True)
    log.info("seeded NetBox from %s in %.1f s", paths.topology_file(), time.monotonic() - started)


def _restore_live() -> None:
    """Live database := seeded template. FORCE ends NetBox's connections; its health checks
    reconnect, so the server keeps serving. The cache is flushed so no stale object survives."""
    _psql(f'DROP DATABASE IF EXISTS "{_db()}" WITH (FORCE)')
    _create_from(_db(), _db_seeded())
    _flush_cache()


# -- the server: started by us, stopped by its recorded pid only --------------------------------


def _read_pid(path: Path) -> int | None:
    try:
        raw = path.read_text(encoding="utf-8").split()
        return int(raw[0]) if raw else None
    except (OSError, ValueError):
        return None


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: tells a recycled pid from the process we started.
    None when there is no such (living) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie is gone for our purposes


def _server_pid() -> int | None:
    """The pid of the NetBox server this lab started, if it is still that process."""
    try:
        pid_s, started, *_how = _pid_file().read_text(encoding="utf-8").split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    return pid if _start_time(pid) == started else None


def _api(
    path: str,
    role: str = "admin",
    *,
    method: str = "GET",
    timeout: float = 10,
    body: object = None,
    accept: str = "application/json",
) -> requests.Response:
    base, token = credentials(role)
    headers = {"Authorization": f"Bearer {token}", "Accept": accept}
    return requests.request(method, f"{base}{path}", headers=headers, json=body, timeout=timeout)


def _serving() -> bool:
    with contextlib.suppress(requests.RequestException, LabError):
        resp = _api("/api/status/", timeout=3)
        return resp.status_code == 200 and resp.headers.get("Content-Type", "").startswith(
            "application/json"
        )
    return False


def _answering_unauthenticated() -> bool:
    """NetBox's API answers (403 without a token is an answer): used before tokens exist."""
    with contextlib.suppress(requests.RequestException):
        resp = requests.get(f"{url()}/api/status/", timeout=3)
        return resp.headers.get("Content-Type", "").startswith("application/json")
    return False


def _start_server() -> subprocess.Popen[bytes]:
    if _answers(HOST, port()):
        raise LabError(
            f"port {port()} on {HOST} is taken by another program; set RUNBOOKS_NETBOX_PORT"
        )
    code = plugin_code_digest()  # before it starts: an edit made meanwhile restarts it next time
    with open(_log_file(), "ab") as logf:
        proc = subprocess.Popen(
            [venv() / "bin" / "gunicorn", *gunicorn_args()],
            env=_netbox_env() | {"DJANGO_SETTINGS_MODULE": "netbox.settings"},
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() signals exactly that group
        )
    _pid_file().write_text(
        f"{proc.pid} {_start_time(proc.pid)} {_serving_digest()}", encoding="utf-8"
    )
    _code_file().write_text(code, encoding="utf-8")
    return proc


def gunicorn_args() -> list[str]:
    """How the lab runs gunicorn. 2 workers (~600 MB together; the machines have 2 cores) of
    3 threads each, as NetBox's guide does with threads; --preload: NetBox is imported once,
    before the fork (start-up ~8 s instead of two imports competing for the cores)."""
    return [
        "--bind",
        f"{HOST}:{port()}",
        "--workers",
        "2",
        "--threads",
        "3",
        "--timeout",
        "300",
        "--graceful-timeout",
        "10",
        "--preload",
        "--no-control-socket",
        "--chdir",  # gunicorn puts its directory on sys.path: the module's, not a checkout's
        str(_wsgi_dir()),
        f"{WSGI_MODULE}:application",
    ]


def _wait_serving(
    proc: subprocess.Popen[bytes], timeout: float = 90, *, authenticated: bool = True
) -> None:
    started = time.monotonic()
    ready = _serving if authenticated else _answering_unauthenticated
    while not ready():
        if proc.poll() is not None:
            tail = _log_file().read_text(errors="replace").strip().splitlines()[-1:]
            raise LabError(f"NetBox exited at start-up: {tail[0] if tail else 'no output'}")
        if time.monotonic() - started > timeout:
            stop()
            raise LabError(
                f"NetBox did not answer on {url()} within {timeout:.0f} s; see {_log_file()}"
            )
        time.sleep(0.2)
    log.info("NetBox answering on %s (pid %d)", url(), proc.pid)


def plugin_code_digest() -> str:
    """The plugin code a server started now would run: the packages' files and their place
    (a server started from another clone's plugins runs other code, whatever the contents)."""
    digest = hashlib.sha256()
    for source in plugin_sources():
        package = source / _dist_key(_project(source)[0])
        files = [source / "pyproject.toml", *sorted(package.rglob("*"))]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _serving_digest() -> str:
    """How the server is started (gunicorn's arguments, the WSGI module): recorded with its pid."""
    how = json.dumps(gunicorn_args()) + _WSGI
    return "gunicorn-" + hashlib.sha256(how.encode()).hexdigest()[:12]


def _served_another_way() -> bool:
    """The running server was started another way than `_start_server` starts one now (e.g.
    runserver, before gunicorn): its pid file records no or another `_serving_digest()`."""
    try:
        fields = _pid_file().read_text(encoding="utf-8").split()
    except OSError:
        return False
    return fields[2:] != [_serving_digest()]


def _runs_current_code() -> bool:
    with contextlib.suppress(OSError):
        return _code_file().read_text(encoding="utf-8").strip() == plugin_code_digest()
    return False


def serve(timeout: float = 90) -> None:
    """Run NetBox on 127.0.0.1:<port> (gunicorn; the web UI's static files too). A running
    server whose plugin code has changed since it started is restarted: Django loads a plugin
    once, and gunicorn does not watch files."""
    if _server_pid() is not None and _serving():
        if _served_another_way():
            log.info("NetBox was started another way than the lab serves it now: restarting it")
        elif _runs_current_code():
            return
        else:
            log.info("the plugins' code changed since NetBox started: restarting it")
    stop()
    _wait_serving(_start_server(), timeout)


def stop(timeout: float = 15) -> None:
    """Stop the NetBox server this lab started (by its recorded pid and process group only)."""
    pid = _server_pid()
    _pid_file().unlink(missing_ok=True)
    if pid is None:
        return
    log.info("stopping NetBox (pid %d)", pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _start_time(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if _start_time(pid) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # reap it when this process started it
        os.waitpid(pid, 0 if _start_time(pid) is None else os.WNOHANG)


# -- the public API -----------------------------------------------------------------------------


def up() -> None:
    """Install, start Redis/PostgreSQL if needed, seed once, serve. Idempotent; fast when kept."""
    started = time.monotonic()
    spec = netbox_seed.build_spec(topology.load())
    digest = _spec_digest(spec)
    with _exclusive():
        install()
        ensure_services()
        if _seeded_is_current(digest) and _db_seeded() in databases():
            if _db() not in databases():
                _create_from(_db(), _db_seeded())
            serve()
        else:
            _seed_and_serve(spec, digest)
    log.info("NetBox lab up in %.1f s", time.monotonic() - started)


def down() -> None:
    """Stop every process this lab started; databases, tokens and the cache stay."""
    with _exclusive():
        stop()
        stop_services()


def destroy(*, keep_migrated: bool = True) -> None:
    """`lab down`: stop, drop the live and seeded databases, remove the state. The cache stays,
    and with it (unless keep_migrated=False) the migrated, empty template: it holds no lab data,
    only NetBox's schema, and saves the 3-6 s snapshot restore on the next `up`."""
    with _exclusive():
        stop()
        if _answers(PG_HOST, PG_PORT):
            for name in databases():
                if name != _db_migrated() or not keep_migrated:
                    _drop(name)
        stop_services()
        shutil.rmtree(root(), ignore_errors=True)


def reset() -> None:
    """Back to the seeded state in about a second; the running NetBox keeps serving."""
    started = time.monotonic()
    with _exclusive():
        if _db_seeded() not in databases():
            raise LabError("NetBox lab is not seeded: run `runbook lab up` first")
        _restore_live()
    log.info("NetBox reset to the seeded state in %.2f s", time.monotonic() - started)


def status() -> list[ComponentStatus]:
    """One line per NetBox-side component: Redis, PostgreSQL (+ databases), the NetBox server."""
    redis_detail = (
        f"{REDIS_HOST}:{REDIS_PORT} (db {_redis_dbs()[0]} tasks, {_redis_dbs()[1]} cache)"
    )
    result = [ComponentStatus("netbox-redis", _answers(REDIS_HOST, REDIS_PORT), redis_detail)]
    if _answers(PG_HOST, PG_PORT):
        have = databases()
        names = ", ".join(
            f"{n}{'' if n in have else ' (missing)'}" for n in (_db(), _db_seeded(), _db_migrated())
        )
        snap = (
            "this machine's core dump"
            if snapshot().exists()
            else "the shipped core dump"
            if netbox_schema.shipped_snapshot(VERSION).exists()
            else "no core dump (a first up migrates)"
        )
        result.append(
            ComponentStatus(
                "netbox-postgresql",
                _db() in have and _db_seeded() in have,
                f"{PG_HOST}:{PG_PORT} {names}; {snap}",
            )
        )
    else:
        result.append(
            ComponentStatus("netbox-postgresql", False, f"{PG_HOST}:{PG_PORT} not answering")
        )
    pid = _server_pid()
    if pid is None:
        result.append(ComponentStatus("netbox", False, f"not running ({url()})"))
    else:
        ok = _serving()
        detail = f"{VERSION} at {url()} (pid {pid})" + ("" if ok else ", not answering")
        if not _runs_current_code():
            detail += "; plugin code changed since it started (`lab up` restarts it)"
        if _served_another_way():
            detail += "; started another way than the lab serves it now (`lab up` restarts it)"
        result.append(ComponentStatus("netbox", ok, detail))
    return result


def _person(role: str) -> dict[str, str]:
    try:
        people: dict[str, dict[str, str]] = json.loads(_tokens_file().read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabError("NetBox lab has no tokens yet: run `runbook lab up` first") from exc
    for key, entry in people.items():
        if role in (key, entry["username"]):
            return entry
    raise InputError(f"no lab NetBox user for {role!r}; roles: {', '.join(sorted(people))}")


def credentials(role: str) -> tuple[str, str]:
    """(NetBox URL, API token) of a lab person by role (operator, ...) or username; "admin" too.

    The token is v2 (`nbt_<key>.<secret>`, header `Authorization: Bearer <token>`); its owner,
    the acting person, is what `GET /api/authentication-check/` returns (with their groups).
    """
    return url(), _person(role)["token"]


def web_login(role: str = "admin") -> tuple[str, str, str]:
    """(URL, username, password) for signing in to the web UI as a lab person by role or
    username ("admin" too), e.g. a browser test as the reviewer; never logged."""
    entry = _person(role)
    if "password" not in entry:  # tokens from a seed older than web passwords for everyone
        raise LabError(f"the lab's {role!r} has no web password: run `runbook lab up` again")
    return url(), entry["username"], entry["password"]


def web_session(role: str) -> requests.Session:
    """A lab person signed in to NetBox's web UI, as their browser would be (session cookie,
    CSRF token in ``session.headers``); for UI tests and benchmarks."""
    base, username, password = web_login(role)
    session = requests.Session()
    page = session.get(f"{base}/login/", timeout=30)
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if found is None:
        raise LabError(f"NetBox's login page at {base}/login/ has no CSRF token")
    answer = session.post(
        f"{base}/login/",
        data={"csrfmiddlewaretoken": found[1], "username": username, "password": password},
        headers={"Referer": f"{base}/login/"},
        timeout=30,
    )
    if answer.status_code != 200 or "/login/" in answer.url:
        raise LabError(f"{username} could not sign in to NetBox's web UI ({answer.status_code})")
    session.headers["X-CSRFToken"] = session.cookies.get("csrftoken") or ""
    return session


def render_configs(platform: str = "frr", intent: str = "service") -> dict[str, str]:
    """device name -> configuration rendered by NetBox (render-config, as the operator) for
    every device of a platform (frr.conf for `frr`, bird.conf for `bird2`), with the runbooks'
    render intent (service, drain or bare) in the request's body."""
    resp = _api(f"/api/dcim/devices/?platform={platform}&limit=0&fields=id,name", "operator")
    if resp.status_code != 200:
        raise LabError(f"NetBox refused the device list: HTTP {resp.status_code}")
    configs: dict[str, str] = {}
    for dev in resp.json()["results"]:
        rendered = _api(
            f"/api/dcim/devices/{dev['id']}/render-config/",
            "operator",
            method="POST",
            body={"runbooks_intent": intent},
            accept="text/plain",
        )
        if rendered.status_code != 200:
            raise LabError(
                f"NetBox could not render {dev['name']}: HTTP {rendered.status_code} "
                f"{rendered.text.strip()[:200]}"
            )
        configs[dev["name"]] = rendered.text
    return configs
