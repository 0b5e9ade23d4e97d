"""The PC's state before an install, as JSON: hostname, which packages of the standard set are
installed, whether the account exists. Arguments: the account, then the packages."""

import json
import pwd
import socket
import subprocess
import sys


def installed(package):
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return "install ok installed" in done.stdout


def account_exists(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


account, packages = sys.argv[1], sys.argv[2:]
print(
    json.dumps(
        {
            "hostname": socket.gethostname(),
            "packages": [p for p in packages if installed(p)],
            "account": bool(account) and account_exists(account),
        }
    )
)
