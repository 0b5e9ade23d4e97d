"""A fault for server-maintenance's rolling lab test: a service of the department's own that runs
on a server before the roll, and stops while that server's batch is maintained, so the batch's
health post-check finds a regression.

`install_web_service` puts a small web service (an init script serving a directory over HTTP on
the server's address) on a lab host and starts it. `stops_service_after_maintenance` is the
Ansible gateway: once a maintenance run that includes the victim is done, it stops the service
there, as a package's post-install script or a restart gone wrong would. The server's files are
untouched by the fault: the batch's rollback restores them as it always does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runbooks.core.gateway import writes
from runbooks.gateways.ansible import AnsibleGateway
from runbooks.gateways.ansible_events import PlaybookResult
from runbooks.lab import hosts, topology

SERVICE = "lab-web"
PORT = 8080

_INIT = """#!/bin/sh
# {service}: the department's own web service on this server (a lab stand-in)
PIDFILE=/run/{service}.pid
case "$1" in
  start)
    mkdir -p /srv/{service} && echo ok > /srv/{service}/index.html
    start-stop-daemon --start --quiet --oknodo --background --make-pidfile --pidfile "$PIDFILE" \\
      --exec /usr/bin/python3 -- -m http.server {port} --bind {address} --directory /srv/{service}
    ;;
  stop)
    start-stop-daemon --stop --quiet --oknodo --retry 5 --pidfile "$PIDFILE" --remove-pidfile
    ;;
  status)
    start-stop-daemon --status --pidfile "$PIDFILE"
    ;;
  *)
    echo "usage: $0 {{start|stop|status}}" >&2
    exit 2
    ;;
esac
"""


def install_web_service(host: str) -> None:
    """The service on ``host``, started, its port answering on the host's address."""
    address = next(h.mgmt for h in topology.load().hosts if h.name == host)
    script = _INIT.format(service=SERVICE, port=PORT, address=address)
    path = f"/etc/init.d/{SERVICE}"
    hosts.run_on_host(host, ["sh", "-c", f"cat > {path} && chmod 755 {path}"], input=script)
    hosts.run_on_host(host, [path, "start"], check=True)
    probe = f"for i in $(seq 50); do (exec 3<>/dev/tcp/{address}/{PORT}) && exit 0; sleep 0.1; done"
    hosts.run_on_host(host, ["bash", "-c", probe + "; exit 1"], check=True)


def service_running(host: str) -> bool:
    return hosts.run_on_host(host, [f"/etc/init.d/{SERVICE}", "status"]).returncode == 0


def stops_service_after_maintenance(victim: str) -> type[AnsibleGateway]:
    class StopsService(AnsibleGateway):
        @writes
        def run(self, playbook: str, *, limit: Sequence[str] = (), **kwargs: Any) -> PlaybookResult:
            done = super().run(playbook, limit=limit, **kwargs)
            if victim in limit and "baseline" in kwargs.get("tags", ()):
                hosts.run_on_host(victim, [f"/etc/init.d/{SERVICE}", "stop"], check=True)
            return done

    return StopsService
