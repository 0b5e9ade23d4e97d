# Shared by the scripts: find Python >= 3.12, make the project venv, start services.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# An interpreter >= 3.12. pyenv's global version may be older and its `python3.12` shim then
# refuses to run, so look at pyenv's installed versions directly, then the usual names.
find_python() {
    local candidates=() root
    if command -v pyenv >/dev/null 2>&1 && root="$(pyenv root 2>/dev/null)"; then
        candidates+=("$root"/versions/3.1[2-9]*/bin/python3.1[2-9])
    fi
    [ -d "$HOME/.pyenv/versions" ] && candidates+=("$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3.1[2-9])
    candidates+=(/usr/bin/python3.13 /usr/bin/python3.12 /usr/local/bin/python3.13
                 /usr/local/bin/python3.12 /usr/bin/python3 python3)
    local py
    for py in "${candidates[@]}"; do
        [ -x "$py" ] || py="$(command -v "$py" 2>/dev/null)" || continue
        [ -n "$py" ] || continue
        if "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    echo "no Python >= 3.12 found (tried pyenv versions and python3.12/3.13)" >&2
    return 1
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
        local py
        py="$(find_python)"
        say "creating $VENV with $py"
        rm -rf "$VENV"
        "$py" -m venv "$VENV"
    fi
    say "installing runbooks and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # the rules the CLI shares with the NetBox plugin: a package of this repository, first
    "$VENV/bin/python" -m pip install -q -e "$REPO/plugins/runbooks-rules"
    "$VENV/bin/python" -m pip install -q -e "$REPO[dev]"
    if [ -f "$REPO/plugins/napalm-frr/pyproject.toml" ]; then
        "$VENV/bin/python" -m pip install -q -e "$REPO/plugins/napalm-frr"
    fi
}

# PostgreSQL and Redis: machines of this kind start them before a session; a fresh machine of
# another kind may not have them running (or installed).
ensure_services() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
        say "installing PostgreSQL and Redis"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server
    fi
    if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
        say "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    fi
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        say "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no
    fi
}

# Packages the tests need beyond the lab's: a headless browser (and its driver, for Selenium)
# for the review pages, CJK fonts for the manual's terms on them.
ensure_test_packages() {
    local missing=() pkg
    for pkg in chromium chromium-driver fonts-noto-cjk; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}"
    fi
}
