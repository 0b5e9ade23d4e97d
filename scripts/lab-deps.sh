#!/bin/sh
# Install the Debian packages the lab needs (NetBox's PostgreSQL and Redis, FRR devices, the
# BIRD2 border router, Linux hosts). Idempotent: installs only what is missing; safe to run twice.
# For CI on a fresh Debian 12/13 machine; run as root (or with sudo available).
set -eu

PACKAGES="
postgresql postgresql-client
redis-server
frr frr-pythontools
bird2
openssh-server openssh-client
lldpd
iproute2 iputils-ping traceroute
procps psmisc util-linux
sudo ca-certificates gzip
dpkg-dev
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

if [ -n "$missing" ]; then
    echo "lab-deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
else
    echo "lab-deps: all packages present"
fi

# The lab's NetBox connects as postgres over 127.0.0.1 without a password (a throw-away lab on
# a CI machine); Debian's default asks for one. Add one trust line for exactly that, once.
for hba in /etc/postgresql/*/main/pg_hba.conf; do
    [ -f "$hba" ] || continue
    if ! grep -Eq '^host[[:space:]]+all[[:space:]]+(all|postgres)[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        echo "lab-deps: allowing postgres from 127.0.0.1 without password in $hba"
        $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust  # runbooks lab' "$hba"
        version=$(basename "$(dirname "$(dirname "$hba")")")
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
    fi
done

# NetBox 4.7 needs Python >= 3.12 (Debian 13's python3; on Debian 12 use pyenv or uv).
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
    && ! ls "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.1[23].*/bin/python3.1[23] >/dev/null 2>&1; then
    echo "lab-deps: warning: no Python >= 3.12 found; NetBox's venv needs one" >&2
fi
echo "lab-deps: done"
