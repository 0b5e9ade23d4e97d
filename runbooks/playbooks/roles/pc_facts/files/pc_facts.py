"""The PC's hardware and system, as JSON on stdout (run by Ansible's script module)."""

import json
import os
import shutil
import socket


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return default


def os_release():
    for line in read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip('"')
    return ""


def mem_available_mb():
    for line in read("/proc/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


print(
    json.dumps(
        {
            "hostname": socket.gethostname(),
            "os": os_release(),
            "machine_id": read("/etc/machine-id"),
            "serial": read("/sys/class/dmi/id/product_serial"),
            "mac": read("/sys/class/net/eth0/address"),
            "disk_free_mb": shutil.disk_usage("/").free // (1024 * 1024),
            "mem_available_mb": mem_available_mb(),
            "cpus": os.cpu_count() or 0,
        }
    )
)
