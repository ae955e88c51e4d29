#!/usr/bin/env bash
# Real readers of Tideflow's Parquet and Delta Lake outputs, for its tests and for trying them:
# pyarrow and the deltalake package (delta-rs's Python binding), from PyPI.
#
#   scripts/lake-tools.sh install        install them once, print the directory to put on PYTHONPATH
#   scripts/lake-tools.sh read ARGS...   run scripts/read_lake.py ARGS with them (see its --help)
#
# They are installed with pip into ${TIDEFLOW_CACHE_DIR:-~/.cache/tideflow}/lake-tools on first
# use (registry access needed once), pinned, so that every machine reads with the same versions.
set -euo pipefail

CACHE="${TIDEFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tideflow}/lake-tools"
PACKAGES="$CACHE/packages"
REQUIREMENTS=(pyarrow==26.0.1 deltalake==1.6.6)
HERE="$(cd "$(dirname "$0")" && pwd)"

die() { echo "lake-tools.sh: $*" >&2; exit 1; }

install() {
    if [[ -f "$PACKAGES/installed.txt" && "$(cat "$PACKAGES/installed.txt")" == "${REQUIREMENTS[*]}" ]]; then
        return
    fi
    command -v python3 >/dev/null || die "python3 is needed to read Parquet and Delta outputs (install python3 and pip)"
    mkdir -p "$CACHE"
    # Tests call this in parallel: one installs, the others wait for it.
    exec 9>"$CACHE/install.lock"
    flock 9
    if [[ -f "$PACKAGES/installed.txt" && "$(cat "$PACKAGES/installed.txt")" == "${REQUIREMENTS[*]}" ]]; then
        return
    fi
    local tmp="$CACHE/packages.tmp.$$"
    rm -rf "$tmp"
    if ! python3 -m pip install --quiet --disable-pip-version-check --no-input --target "$tmp" \
        "${REQUIREMENTS[@]}" >"$CACHE/pip.log" 2>&1; then
        rm -rf "$tmp"
        die "cannot install ${REQUIREMENTS[*]} from PyPI: see $CACHE/pip.log"
    fi
    echo "${REQUIREMENTS[*]}" >"$tmp/installed.txt"
    rm -rf "$PACKAGES"
    mv "$tmp" "$PACKAGES"
}

case "${1:-}" in
    install)
        install
        echo "$PACKAGES"
        ;;
    read)
        shift
        install
        PYTHONPATH="$PACKAGES" exec python3 "$HERE/read_lake.py" "$@"
        ;;
    *)
        die "usage: lake-tools.sh install | read ARGS..."
        ;;
esac
