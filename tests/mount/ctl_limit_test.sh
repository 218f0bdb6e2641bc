#!/usr/bin/env bash
# backups/ctl takes one command line of at most 4096 bytes. A longer write
# (one write() of 2 MiB, which the kernel cuts into several requests) fails
# with EINVAL at the caller's write(), not at some later request while the
# caller is told the first part went in; the close of that open file fails
# too, and nothing of it is run. A command of normal length still works on
# a fresh open.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"

start_mount
echo '{"id":"a1","title":"one"}' >"$MNT/items/a1.json"

python3 - "$MNT" >"$T/problems" 2>&1 <<'PY' || true
import errno, os, sys
mnt = sys.argv[1]
ctl = f"{mnt}/backups/ctl"
problems = []

def name(e):
    return errno.errorcode.get(e, str(e))

def check(what, data):
    fd = os.open(ctl, os.O_WRONLY)
    try:
        n = os.write(fd, data)
        problems.append(f"{what}: write() returned {n} of {len(data)} bytes, expected EINVAL")
    except OSError as e:
        if e.errno != errno.EINVAL:
            problems.append(f"{what}: write() failed with {name(e.errno)}, expected EINVAL")
    # The open file stays refused: a later write and the close fail too.
    try:
        os.write(fd, b"full\n")
        problems.append(f"{what}: a later write on the refused open file succeeded")
    except OSError as e:
        if e.errno != errno.EINVAL:
            problems.append(f"{what}: later write: {name(e.errno)}, expected EINVAL")
    try:
        os.close(fd)
        problems.append(f"{what}: close() of the refused open file succeeded")
    except OSError as e:
        if e.errno != errno.EINVAL:
            problems.append(f"{what}: close: {name(e.errno)}, expected EINVAL")

# A 1 MiB command, its newline, and a second MiB: one write() of 2 MiB.
check("2 MiB write", b"verify " + b"a" * (1 << 20) + b"\nfull " + b"b" * ((1 << 20) - 6))
# Just past the cap, in one request.
check("4097-byte line", b"full" + b" " * 4092 + b"\n")
# A command without its newline grown past the cap by small writes: the
# write that passes it fails, and the close runs nothing.
fd = os.open(ctl, os.O_WRONLY)
os.write(fd, b"full" + b" " * 3000)
try:
    os.write(fd, b" " * 2000)
    problems.append("small writes past the cap: the write passing it succeeded")
except OSError as e:
    if e.errno != errno.EINVAL:
        problems.append(f"small writes past the cap: {name(e.errno)}, expected EINVAL")
try:
    os.close(fd)
    problems.append("small writes past the cap: close succeeded")
except OSError:
    pass
print("\n".join(problems))
print(f"done {len(problems)}")
PY
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died"
tail -n 1 "$T/problems" | grep -q '^done 0$' || fail "$(head -n 20 "$T/problems")"
# Nothing ran: no backup was made.
[ -z "$(find "$MNT/backups" -mindepth 1 -maxdepth 1 -type d)" ] || fail "a refused ctl write ran a backup"
grep -q 'a command is one line of at most 4096 bytes' "$MNT/log" || fail "the log does not say why"
# A command of normal length works on a fresh open; one just under the cap
# is read whole (and fails as an unknown backup, not as too long).
echo full >"$MNT/backups/ctl" || fail "full after refused writes: $(cat "$MNT/backups/status")"
[ "$(find "$MNT/backups" -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 1 ] || fail "no backup after 'full'"
python3 -c '
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, b"verify " + b"x" * 4000 + b"\n")
    sys.exit("a verify of no backup succeeded")
except OSError as e:
    print(errno.errorcode[e.errno])
try:
    os.close(fd)
except OSError:
    pass
' "$MNT/backups/ctl" >"$T/under" || fail "under the cap: $(cat "$T/under")"
grep -q "verify x\{100\}" "$MNT/log" || fail "a 4008-byte command was not taken whole: $(tail -n 3 "$MNT/log")"
echo "ctl: writes past 4096 bytes fail at the caller's write and close, nothing runs"
