#!/bin/sh
# Runs every test binary given as an argument from the repository root and
# prints one summary line. Exit status 1 if any binary failed.
# Environment: BUILD (build directory), PYTHON (Debian's python3).
set -u
failed=0
failed_names=
for t in "$@"; do
    echo "=== $t"
    if ! "$t"; then
        failed=$((failed + 1))
        failed_names="$failed_names $(basename "$t")"
    fi
done
echo
if [ "$failed" -ne 0 ]; then
    echo "test binaries failed:$failed_names"
    exit 1
fi
echo "all $# test binaries passed"
