"""Finding and opening the FRR devices of the live tests (shared with their subprocesses).

1. ``NAPALM_FRR_TEST_DEVICES``: a JSON list of ``{"host", "username", "key_file", "port"}``
   (optionally ``"password"``, ``"optional_args"``), for any FRR boxes you own;
2. otherwise the runbooks lab (``runbooks.lab.frr.device_ssh_params``) when it is up;
3. otherwise the tests are skipped.
"""

from __future__ import annotations

import json
import os
from typing import Any

from napalm_frr import FRRDriver

ENV = "NAPALM_FRR_TEST_DEVICES"


def _runbooks_lab_devices() -> list[dict[str, Any]]:
    try:
        from runbooks.lab import frr, topology
    except ImportError:
        return []
    try:
        topo = topology.load()
        params = [frr.device_ssh_params(name, topo) for name in frr_device_names(topo)]
    except Exception:  # lab not configured or not up
        return []
    return [p for p in params if os.path.exists(p["key_file"])]


def frr_device_names(topo: Any) -> list[str]:
    """The lab's active devices that run FRR (the lab has other network OSes too)."""
    platform = getattr(topo, "platform", lambda name: "frr")
    return [d.name for d in topo.devices if d.status == "active" and platform(d.name) == "frr"]


def lab_devices() -> list[dict[str, Any]]:
    if os.environ.get(ENV):
        return list(json.loads(os.environ[ENV]))
    return _runbooks_lab_devices()


def make_driver(params: dict[str, Any]) -> FRRDriver:
    optional = {"key_file": params.get("key_file"), "port": params.get("port", 22)}
    optional.update(params.get("optional_args", {}))
    return FRRDriver(
        params["host"], params.get("username", "root"), params.get("password", ""), 30, optional
    )
