"""What the install promised, read back from the PC, as JSON. Arguments: the account, the
office configuration file, then the packages of the standard set."""

import json
import pwd
import socket
import subprocess
import sys


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def version(package):
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    status, _, ver = done.stdout.partition("\t")
    return ver if "install ok installed" in status else ""


def office_address(path):
    for line in read(path).splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "address":
            return words[1]
    return ""


def account(name):
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return {"name": "", "full_name": "", "must_change_password": False}
    chage = subprocess.run(["chage", "-l", name], capture_output=True, text=True, check=False)
    return {
        "name": entry.pw_name,
        "full_name": entry.pw_gecos.split(",")[0],
        "must_change_password": "must be changed" in chage.stdout,
    }


name, config, packages = sys.argv[1], sys.argv[2], sys.argv[3:]
print(
    json.dumps(
        {
            "hostname": socket.gethostname(),
            "etc_hostname": read("/etc/hostname").strip(),
            "office_config": office_address(config),
            "account": account(name),
            "software": {p: version(p) for p in packages},
        }
    )
)
