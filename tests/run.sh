#!/bin/sh
# Runs test programs from the repository root, each under a time limit.
#
#   tests/run.sh BINARY...        every binary, then one summary line;
#                                 exit status 1 if any failed
#   tests/run.sh --cmd PROG ARG.. one program with its arguments (the fuzz
#                                 corpus replays, the browser test);
#                                 exit status that of the program
#
# Each program runs under timeout(1): one that hangs (a server that never
# answers, a FIFO nobody opens) is stopped, with every process it started,
# and counts as failed. timeout(1) gives the program its own process group,
# which Ctrl-C on the terminal does not reach: so it runs in the background
# and an interrupt of this script is passed on to it as SIGTERM.
#
# Environment: BUILD (build directory), PYTHON (Debian's python3),
# TEST_TIMEOUT (seconds per program, default 600).
set -u
limit=${TEST_TIMEOUT:-600}
case "$limit" in
    '' | *[!0-9]* | 0)
        echo "TEST_TIMEOUT must be a whole number of seconds above 0, not '$limit'" >&2
        exit 2 ;;
esac

pid=
interrupted=0
trap 'interrupted=1; [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null' INT TERM HUP

# ---------------------------------------------------------------------------
# bounded PROG ARG...: runs it under the limit; its exit status in $st.
bounded() {
    # -k: a program still running 10 s after SIGTERM gets SIGKILL
    timeout -k 10 "$limit" "$@" &
    pid=$!
    wait "$pid"
    st=$?
    # a trapped signal ends `wait` early: wait again for the real status
    while [ "$interrupted" -eq 1 ] && kill -0 "$pid" 2>/dev/null; do
        wait "$pid"
        st=$?
    done
    pid=
    if [ "$interrupted" -eq 1 ]; then
        echo "interrupted during $(basename "$1")"
        exit 130
    fi
    case "$st" in
        124) echo "$(basename "$1"): timed out after $limit s (TEST_TIMEOUT), stopped" ;;
        137) echo "$(basename "$1"): killed (SIGKILL; after timing out at $limit s" \
                  "if it ignored SIGTERM)" ;;
    esac
}

if [ "${1:-}" = --cmd ]; then
    shift
    [ $# -gt 0 ] || { echo "usage: $0 --cmd PROG [ARG...]" >&2; exit 2; }
    bounded "$@"
    exit "$st"
fi

# ---------------------------------------------------------------------------
failed=0
failed_names=
for t in "$@"; do
    echo "=== $t"
    bounded "$t"
    if [ "$st" -ne 0 ]; then
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
