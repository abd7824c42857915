#!/bin/sh
# Installs the Debian packages a make target needs, when they are missing.
# Usage: tools/install-deps.sh [check] build|run|test|train|bench
# As root it runs apt-get; otherwise it prints the exact command to run.
# With `check` it never installs: it prints that command and fails if
# anything is missing (`make` and `make all` only check; `make run`,
# `make test` and `make bench` install).
set -eu

check=0
if [ "${1:-}" = check ]; then
    check=1
    shift
fi

# the library needs zlib; the tools libcsv and jansson; the demo server
# libmicrohttpd, SQLite and MariaDB Connector/C
build="build-essential pkg-config zlib1g-dev libcsv-dev libjansson-dev libmicrohttpd-dev
       libsqlite3-dev libmariadb-dev"
# make run's seed: /usr/bin/python3 (python3-minimal) and its json module
run="$build python3-minimal libpython3-stdlib"
test="$run libcmocka-dev python3-numpy python3-scipy python3-sklearn"
train="python3-torch python3-numpy python3-sklearn python3-xgboost python3-onnx libopenblas0-pthread"
bench="$run python3-torch python3-numpy python3-scipy python3-sklearn python3-onnx python3-threadpoolctl libopenblas0-pthread time wrk
       mariadb-server mariadb-client nginx redis-server redis-tools"

case "${1:-build}" in
    build) want=$build ;;
    run) want=$run ;;
    test)
        # npm for playwright-core and, when the node on PATH is older than
        # 20, a Node 20 runtime from the npm registry (see the Makefile);
        # mariadb-server: test_store runs the storage contract on a real mariadbd
        want="$test python3-torch libopenblas0-pthread sqlite3 prometheus prometheus-alertmanager chromium nginx systemd wrk mariadb-server"
        command -v node >/dev/null 2>&1 || want="$want nodejs"
        command -v npm >/dev/null 2>&1 || want="$want npm" ;;
    train) want=$train ;;
    bench)
        want=$bench
        # node and npm may come from Debian's packages or from nodejs alone
        command -v node >/dev/null 2>&1 || want="$want nodejs"
        command -v npm >/dev/null 2>&1 || want="$want npm" ;;
    *) echo "usage: $0 [check] build|run|test|train|bench" >&2; exit 2 ;;
esac

missing=
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$check" -eq 1 ] || [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages; install them (as root) with:" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q $missing >/dev/null
