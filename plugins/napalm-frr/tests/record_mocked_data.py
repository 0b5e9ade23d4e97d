"""Record a real FRR device's answers as a conformance test case.

    python tests/record_mocked_data.py HOST CASE --key-file KEY [--username root] [--port 22]

writes tests/unit/mocked_data/test_<getter>/<CASE>/ with one file per command (named as
napalm.base.test.double.BaseTestDouble expects) and expected_result.json. Review the
expected results before committing them: they are what the driver printed, not truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from napalm.base.test.double import BaseTestDouble

from napalm_frr import FRRDriver

MOCKED = Path(__file__).parent / "unit" / "mocked_data"

GETTERS: dict[str, tuple[str, dict[str, Any]] | list[tuple[str, dict[str, Any]]]] = {
    "test_is_alive": ("is_alive", {}),
    "test_get_facts": ("get_facts", {}),
    "test_get_interfaces": ("get_interfaces", {}),
    "test_get_interfaces_ip": ("get_interfaces_ip", {}),
    "test_get_interfaces_counters": ("get_interfaces_counters", {}),
    "test_get_lldp_neighbors": ("get_lldp_neighbors", {}),
    "test_get_lldp_neighbors_detail": ("get_lldp_neighbors_detail", {}),
    "test_get_bgp_neighbors": ("get_bgp_neighbors", {}),
    "test_get_config": ("get_config", {}),
    "test_get_config_sanitized": ("get_config", {"sanitized": True}),
    "test_get_config_filtered": [
        ("get_config", {"retrieve": r}) for r in ("running", "startup", "candidate")
    ],
    "test_get_config_sanitized_filtered": [
        ("get_config", {"retrieve": r, "sanitized": True}) for r in ("running", "startup")
    ],
}


class Recorder:
    """Stands in for the Netmiko connection and saves every answer to ``folder``."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.folder = MOCKED

    def send_command(self, command: str, **kwargs: Any) -> str:
        output = str(self.real.send_command(command, **kwargs))
        name = BaseTestDouble.sanitize_text(command) + ".txt"
        (self.folder / name).write_text(output)
        return output

    def is_alive(self) -> bool:
        return bool(self.real.is_alive())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("case")
    parser.add_argument("--username", default="root")
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--only", nargs="*", help="record only these tests (test_get_facts ...)")
    args = parser.parse_args()
    device = FRRDriver(
        args.host, args.username, "", optional_args={"key_file": args.key_file, "port": args.port}
    )
    device.open()
    recorder = Recorder(device.device)
    device.device = recorder
    for test, calls in GETTERS.items():
        if args.only and test not in args.only:
            continue
        recorder.folder = MOCKED / test / args.case
        recorder.folder.mkdir(parents=True, exist_ok=True)
        results = [
            getattr(device, method)(**kwargs)
            for method, kwargs in (calls if isinstance(calls, list) else [calls])
        ]
        result = results[-1]
        if test == "test_get_config_sanitized_filtered":  # the test merges its two calls
            result = {
                "running": results[0]["running"],
                "startup": results[1]["startup"],
                "candidate": "",
            }
        (recorder.folder / "expected_result.json").write_text(
            json.dumps(result, indent=2, sort_keys=True) + "\n"
        )
    device.device = recorder.real
    device.close()


if __name__ == "__main__":
    main()
