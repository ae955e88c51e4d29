#!/usr/bin/env bash
# A real browser for the dashboard's test (cli/tests/cli/ui.rs): Debian's chromium, driven by
# playwright-core from npm (its own browser downloads are not used: `npx playwright install`
# is never run).
#
#   scripts/browser-tools.sh install        install them once, print the node_modules directory
#   scripts/browser-tools.sh check URL ...  run scripts/dashboard_check.cjs URL ... with them
#
# chromium (and node and npm, if missing) come from apt (as root; else they must be installed
# already); playwright-core is
# installed with npm into ${TIDEFLOW_CACHE_DIR:-~/.cache/tideflow}/browser-tools on first use
# (registry access needed once), pinned, so that every machine drives the same version.
set -euo pipefail

CACHE="${TIDEFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tideflow}/browser-tools"
PACKAGES="$CACHE/packages"
REQUIREMENTS=(playwright-core@1.65.2)
CHROMIUM=/usr/bin/chromium
HERE="$(cd "$(dirname "$0")" && pwd)"

die() { echo "browser-tools.sh: $*" >&2; exit 1; }

install() {
    mkdir -p "$CACHE"
    # Tests call this in parallel: one installs, the others wait for it.
    exec 9>"$CACHE/install.lock"
    flock 9
    local missing=()
    [[ -x "$CHROMIUM" ]] || missing+=(chromium)
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    if (( ${#missing[@]} )); then
        [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null \
            || die "${missing[*]} missing: install Debian's packages (apt-get install ${missing[*]})"
        { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >"$CACHE/apt.log" 2>&1 \
            || die "cannot install ${missing[*]} with apt-get: see $CACHE/apt.log"
    fi
    if [[ -f "$PACKAGES/installed.txt" && "$(cat "$PACKAGES/installed.txt")" == "${REQUIREMENTS[*]}" ]]; then
        return
    fi
    command -v npm >/dev/null || die "npm is needed to install ${REQUIREMENTS[*]} (install nodejs and npm)"
    local tmp="$CACHE/packages.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error \
        "${REQUIREMENTS[@]}" >"$CACHE/npm.log" 2>&1; then
        rm -rf "$tmp"
        die "cannot install ${REQUIREMENTS[*]} from npm: see $CACHE/npm.log"
    fi
    echo "${REQUIREMENTS[*]}" >"$tmp/installed.txt"
    rm -rf "$PACKAGES"
    mv "$tmp" "$PACKAGES"
}

case "${1:-}" in
    install)
        install
        echo "$PACKAGES/node_modules"
        ;;
    check)
        shift
        install
        command -v node >/dev/null || die "node is needed to drive the browser (install nodejs)"
        NODE_PATH="$PACKAGES/node_modules" CHROMIUM="$CHROMIUM" exec node "$HERE/dashboard_check.cjs" "$@"
        ;;
    *)
        die "usage: browser-tools.sh install | check URL SCREENSHOT.png PID_FILE [--snapshots] [--processes N] [--settle S] [--error TEXT] KIND..."
        ;;
esac
