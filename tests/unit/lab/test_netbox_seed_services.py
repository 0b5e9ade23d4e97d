"""The seed's application services: the lab's database server db1 is found in NetBox by
``server=db1`` (db-maintenance, db-upgrade) through its postgresql service."""

from __future__ import annotations

from runbooks.lab import hosts, netbox_seed, topology
from runbooks.library.db_upgrade_parts import SERVICE, VERSION_FIELD


def test_every_postgresql_host_has_its_service_with_port_and_version() -> None:
    topo = topology.load()
    spec = netbox_seed.build_spec(topo)
    devices = {d["name"] for d in spec["devices"]}
    clusters = {h.name: h.postgresql for h in topo.hosts if h.postgresql}
    assert clusters == {"db1": hosts.PG_VERSION}
    assert spec["services"] == [
        {
            "parent": "db1",
            "name": SERVICE,
            "port_mappings": [f"tcp/{hosts.PG_PORT}"],
            VERSION_FIELD: hosts.PG_VERSION,
            "description": f"PostgreSQL {hosts.PG_VERSION} cluster",
        }
    ]
    assert {s["parent"] for s in spec["services"]} <= devices
