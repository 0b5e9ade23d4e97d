#!/bin/sh
# Install the Debian packages the lab needs (NetBox's PostgreSQL and Redis, FRR devices,
# Linux hosts). Idempotent: installs only what is missing; safe to run twice.
# For CI on a fresh Debian 12/13 machine; run as root (or with sudo available).
set -eu

PACKAGES="
postgresql postgresql-client
redis-server
frr frr-pythontools
openssh-server openssh-client
lldpd
iproute2 iputils-ping
procps psmisc util-linux
sudo ca-certificates gzip
python3 python3-venv
"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "lab-deps: all packages present"
    exit 0
fi

echo "lab-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
# Debian starts services via invoke-rc.d where systemd runs; the lab starts what it needs itself.
echo "lab-deps: done"
