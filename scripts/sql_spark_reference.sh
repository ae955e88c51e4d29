#!/usr/bin/env bash
# Regenerates the goldens of `tideflow sql` (tests/fixtures/sql/) with Apache Spark SQL:
# installs pyspark (pinned) from PyPI into ${TIDEFLOW_CACHE_DIR:-~/.cache/tideflow}/spark-sql
# on first use, then runs scripts/sql_spark_reference.py with it. Needs python3 and Java 17.
# CI does not run this: the goldens are committed, and cli/tests/cli/sql.rs compares to them.
set -euo pipefail

CACHE="${TIDEFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tideflow}/spark-sql"
PACKAGES="$CACHE/packages"
REQUIREMENT="pyspark==3.5.9"
HERE="$(cd "$(dirname "$0")" && pwd)"

die() { echo "sql_spark_reference.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is needed"
command -v java >/dev/null || die "Java 17 is needed by Spark (install openjdk-17-jre-headless)"
if [[ ! -f "$PACKAGES/installed.txt" || "$(cat "$PACKAGES/installed.txt")" != "$REQUIREMENT" ]]; then
    mkdir -p "$CACHE"
    tmp="$CACHE/packages.tmp.$$"
    rm -rf "$tmp"
    if ! python3 -m pip install --quiet --disable-pip-version-check --no-input --target "$tmp" \
        "$REQUIREMENT" >"$CACHE/pip.log" 2>&1; then
        rm -rf "$tmp"
        die "cannot install $REQUIREMENT from PyPI: see $CACHE/pip.log"
    fi
    echo "$REQUIREMENT" >"$tmp/installed.txt"
    rm -rf "$PACKAGES"
    mv "$tmp" "$PACKAGES"
fi
PYTHONPATH="$PACKAGES${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$HERE/sql_spark_reference.py" "$@"
