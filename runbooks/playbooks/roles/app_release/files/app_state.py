"""An application's state on this host, as JSON on stdout (read-only; the standard library only).

    python3 app_state.py NAME ROOT BIND PORT HEALTH_PATH LOG SINCE_S MAX_LINES

The release in place (the link ROOT/current) and the releases kept; the init script and
whether its process runs (its pid file); the TCP ports that process listens on (from
/proc/net/tcp*, by socket inode) and every listening socket on PORT; one GET of
http://BIND:PORT/HEALTH_PATH (status code, latency, the answer's first 200 characters); the
log's ERROR lines of the last SINCE_S seconds (at most MAX_LINES, the newest last).
"""

import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone


def release(root):
    link = os.path.join(root, "current")
    target = os.readlink(link) if os.path.islink(link) else None
    releases_dir = os.path.join(root, "releases")
    kept = sorted(os.listdir(releases_dir)) if os.path.isdir(releases_dir) else []
    return (os.path.basename(target.rstrip("/")) if target else None), kept


def process(name):
    init = f"/etc/init.d/{name}"
    installed = os.access(init, os.X_OK)
    running = False
    if installed:
        status = subprocess.run([init, "status"], capture_output=True, timeout=20, check=False)
        running = status.returncode == 0
    pid = None
    try:
        with open(f"/run/{name}.pid") as f:
            pid = int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        pass
    return installed, running, (pid if running else None)


def _address(hexaddr, family):
    raw = bytes.fromhex(hexaddr)
    if family == socket.AF_INET:
        return socket.inet_ntop(family, struct.pack("<I", int(hexaddr, 16)))
    words = [struct.pack("<I", struct.unpack(">I", raw[i : i + 4])[0]) for i in range(0, 16, 4)]
    return socket.inet_ntop(family, b"".join(words))


def listening():
    """inode -> "address:port" of every listening TCP socket."""
    out = {}
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(path) as table:
                lines = table.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            host, port = fields[1].split(":")
            out[fields[9]] = f"{_address(host, family)}:{int(port, 16)}"
    return out


def process_sockets(pid):
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def health(url):
    started = time.monotonic()
    out = {"url": url}
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 (the play's http:// URL)
            out["code"], body = reply.status, reply.read(200)
    except urllib.error.HTTPError as exc:
        out["code"], body = exc.code, exc.read(200)
    except (OSError, ValueError) as exc:
        out["code"], body = None, b""
        out["error"] = str(getattr(exc, "reason", exc))
    out["latency_ms"] = round(1000 * (time.monotonic() - started), 1)
    out["answer"] = body.decode("utf-8", "replace").strip()
    return out


def log_errors(path, since_s, max_lines):
    """ERROR lines (``<ISO time> ERROR ...``) of the last since_s seconds."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    since = datetime.now(timezone.utc) - timedelta(seconds=since_s)  # noqa: UP017 (hosts' Python < 3.11)
    found = []
    for line in lines:
        stamp, _, rest = line.partition(" ")
        if not rest.startswith("ERROR"):
            continue
        try:
            when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            continue
        if when >= since:
            found.append(line)
    return found[-max_lines:]


def main(name, root, bind, port, path, log, since_s, max_lines):
    port = int(port)
    version, releases = release(root)
    installed, running, pid = process(name)
    sockets = listening()
    own = process_sockets(pid) if pid else set()
    host = f"[{bind}]" if ":" in bind else bind
    return {
        "app": name,
        "version": version,
        "releases": releases,
        "installed": installed,
        "running": running,
        "pid": pid,
        "process_listens": sorted(a for i, a in sockets.items() if i in own),
        "listening_on_port": sorted(
            a for a in sockets.values() if a.rsplit(":", 1)[1] == str(port)
        ),
        "port": port,
        "health": health(f"http://{host}:{port}{path}"),
        "log": log,
        "log_errors": log_errors(log, float(since_s), int(max_lines)),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:9])))
