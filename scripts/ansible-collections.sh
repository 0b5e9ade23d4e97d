#!/bin/sh
# Install the Ansible collections the playbooks and the NetBox inventory need, into a cache dir
# that ANSIBLE_COLLECTIONS_PATH points at (runbooks.gateways.ansible sets it). Idempotent.
#
# Galaxy is not reachable from these machines, PyPI is: the full `ansible` wheel bundles the
# netbox.netbox collection, so download that wheel (no dependencies, ~50 MB, once) and extract
# only ansible_collections/netbox/netbox (~1.7 MB). Its nb_inventory plugin needs pytz.
#
#   scripts/ansible-collections.sh [PYTHON]      # PYTHON: the venv's python (default .venv/bin/python)
set -eu

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${1:-$REPO/.venv/bin/python}"
ANSIBLE_VERSION="${RUNBOOKS_ANSIBLE_WHEEL_VERSION:-14.5.0}"
CACHE="${RUNBOOKS_CACHE_DIR:-/var/cache/runbooks}"
DEST="$CACHE/ansible-collections"
COLLECTION="$DEST/ansible_collections/netbox/netbox"
STAMP="$DEST/.from-ansible-$ANSIBLE_VERSION"

if [ -f "$STAMP" ] && [ -f "$COLLECTION/plugins/inventory/nb_inventory.py" ]; then
    echo "ansible-collections: netbox.netbox present in $DEST"
    exit 0
fi

mkdir -p "$CACHE/wheels" "$DEST"
WHEEL="$(ls "$CACHE/wheels"/ansible-"$ANSIBLE_VERSION"-*.whl 2>/dev/null | head -n 1 || true)"
if [ -z "$WHEEL" ]; then
    echo "ansible-collections: downloading ansible==$ANSIBLE_VERSION (wheel, no dependencies)"
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$CACHE/wheels" "ansible==$ANSIBLE_VERSION"
    WHEEL="$(ls "$CACHE/wheels"/ansible-"$ANSIBLE_VERSION"-*.whl | head -n 1)"
fi

echo "ansible-collections: extracting netbox.netbox from $(basename "$WHEEL")"
TMP="$(mktemp -d "$DEST/.extract.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
"$PY" - "$WHEEL" "$TMP" <<'PYEOF'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
prefix = "ansible_collections/netbox/netbox/"
with zipfile.ZipFile(wheel) as zf:
    names = [n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"{wheel} holds no {prefix}")
    for name in names:
        zf.extract(name, out)
PYEOF
# swap in atomically-ish: the old copy goes only once the new one is complete
rm -rf "$COLLECTION.old"
[ -d "$COLLECTION" ] && mv "$COLLECTION" "$COLLECTION.old"
mkdir -p "$(dirname "$COLLECTION")"
mv "$TMP/ansible_collections/netbox/netbox" "$COLLECTION"
rm -rf "$COLLECTION.old" "$DEST"/.from-ansible-*
touch "$STAMP"
VERSION="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$COLLECTION/MANIFEST.json")"
echo "ansible-collections: netbox.netbox $VERSION in $DEST"
