#!/usr/bin/env bash
# DeformCast one-command set-up on Debian bookworm (run as root, or with sudo available).
#  - installs QGIS 3.22 and GDAL from Debian,
#  - creates .venv on /usr/bin/python3 with --system-site-packages (so qgis and osgeo import),
#  - installs the pinned Python dependencies with constraints.txt (numpy < 2 for Debian's GDAL),
#  - installs the plugin into a project-local QGIS profile (.qgis-profile/), never the user's own.
# Running it twice is harmless: every step checks what is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[setup] %s\n' "$*"; }
t0=$(date +%s)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PKGS="qgis python3-qgis qgis-providers python3-gdal python3-h5py python3-matplotlib python3-venv gdal-bin postgresql python3-psycopg2"
missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
else
  log "Debian packages already installed"
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv on /usr/bin/python3 (system site packages)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.deformcast-deps
want="$(cat requirements.txt constraints.txt | sha1sum | cut -c1-40)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing Python dependencies (pinned, numpy < 2)"
  # torch: the CPU wheel already on this machine's disk is found through pip's find-links.
  FIND=""
  [ -d /opt/wheels ] && FIND="--find-links /opt/wheels"
  .venv/bin/python -m pip install -q --disable-pip-version-check $FIND \
      -c constraints.txt -r requirements.txt
  echo "$want" > "$stamp"
else
  log "Python dependencies already installed"
fi
# The contract with Debian's GDAL: gdal_array must still import.
.venv/bin/python -c "from osgeo import gdal_array; import numpy; assert numpy.__version__ < '2', numpy.__version__" \
  || { echo "GDAL/numpy check failed: numpy 2 was pulled in; see constraints.txt" >&2; exit 1; }

# Project-local QGIS profile with the plugin linked in and enabled.
PROFILE="$ROOT/.qgis-profile"
mkdir -p "$PROFILE/python/plugins"
ln -sfn "$ROOT" "$PROFILE/python/plugins/deformcast"
"$ROOT/deformcast" plugins enable deformcast >/dev/null 2>&1 || true
log "done in $(( $(date +%s) - t0 )) s. Versions:"
.venv/bin/python - <<'PY'
import importlib
for m in ("numpy", "scipy", "statsmodels", "optuna", "torch"):
    try:
        print(f"  {m} {importlib.import_module(m).__version__}")
    except Exception as e:  # noqa: BLE001
        print(f"  {m} MISSING ({e})")
from osgeo import gdal; print("  GDAL", gdal.__version__)
from qgis.core import Qgis; print("  QGIS", Qgis.QGIS_VERSION)
PY
