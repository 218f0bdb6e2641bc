# Shared by the mount tests: mount a fresh store, always unmount and clean up.
# Usage: source lib.sh; start_mount; ...; the EXIT trap does the rest.
set -euo pipefail

ITEMFS=${ITEMFS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/itemfs}
ITEMFS=$(realpath "$ITEMFS")
base=${ITEMFS_TEST_TMP:-${TMPDIR:-/tmp}}
mkdir -p "$base"
T=$(mktemp -d "$base/$(basename "$0" .sh).XXXXXX")
STORE=$T/store
MNT=$T/mnt
DAEMON_PID=
# A command the EXIT trap runs after the unmount and before removing $T,
# e.g. to unmount a filesystem the test made for its store.
CLEANUP_EXTRA=
mkdir -p "$MNT"

fail() {
  echo "FAIL: $*" >&2
  if [ -f "$T/daemon.log" ]; then
    if grep -q "ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:" "$T/daemon.log"; then
      echo "--- sanitizer report from the daemon" >&2
      grep -A 60 -m 1 "ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:" "$T/daemon.log" | grep -v "^  0x\|^Shadow\|^  [A-Z].*: *[0-9a-f ]*$" >&2
    fi
    echo "--- daemon log (last 30 lines)" >&2
    tail -n 30 "$T/daemon.log" >&2
  fi
  exit 1
}

assert_eq() {  # expected actual message
  [ "$1" == "$2" ] || fail "$3: expected [$1], got [$2]"
}

# Runs a command that must fail; its stderr is kept in $T/last.err.
expect_fail() {
  if "$@" 2>"$T/last.err"; then fail "expected failure: $*"; fi
}

start_mount() {  # extra mount arguments, e.g. -o max_item_size=2G
  "$ITEMFS" mount "$STORE" "$MNT" -f "$@" >>"$T/daemon.log" 2>&1 &
  DAEMON_PID=$!
  # Up to 30 s: a loaded CI machine under ASan can be that slow.
  for _ in $(seq 1 600); do
    if mountpoint -q "$MNT" && [ -e "$MNT/stats.json" ]; then return 0; fi
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "itemfs exited before mounting"
    sleep 0.05
  done
  fail "mount did not appear"
}

stop_mount() {
  if mountpoint -q "$MNT" 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [ -n "$DAEMON_PID" ]; then
    for _ in $(seq 1 200); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
  fi
}

# SIGKILL the daemon, as a crash would, and clear the dead mount.
kill_mount() {
  kill -9 "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=
  fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
}

remount() {
  stop_mount
  start_mount "$@"
}

cleanup() {
  local rc=$?
  stop_mount
  # ITEMFS_TEST_KEEP=DIR keeps a failed test's files (store, logs) there.
  if [ $rc -ne 0 ] && [ -n "${ITEMFS_TEST_KEEP:-}" ]; then
    mkdir -p "$ITEMFS_TEST_KEEP" && cp -a "$T" "$ITEMFS_TEST_KEEP/" 2>/dev/null || true
  fi
  if [ -n "$CLEANUP_EXTRA" ]; then eval "$CLEANUP_EXTRA" || true; fi
  if [ $rc -ne 0 ] && [ -f "$T/daemon.log" ]; then echo "--- daemon log" >&2; tail -n 20 "$T/daemon.log" >&2; fi
  rm -rf "$T"
  if [ $rc -eq 0 ]; then echo "PASS: $(basename "$0")"; fi
  exit $rc
}
trap cleanup EXIT

# The first / last path matching a glob under a directory, relative to it.
# (`ls | head -1` can die of SIGPIPE under pipefail.)
# Damages FILE at byte OFFSET by inverting it (writing a fixed byte would
# change nothing once in 256 runs).
flip_byte() {  # file offset
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
first_of() { (cd "$1" && set -- $2 && printf '%s\n' "$1"); }
last_of() { (cd "$1" && set -- $2 && printf '%s\n' "${!#}"); }

# A small sharded source tree of n items: $1 dir, $2 count.
make_items() {
  local dir=$1 n=$2
  # One process for them all: a few per item made crash_cp_test's 2,000 cost
  # seconds of forks.
  python3 - "$dir" "$n" <<'PY'
import hashlib, os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    id_ = hashlib.sha1(b"item%05d" % i).hexdigest()[:12]
    os.makedirs(os.path.join(root, id_[:2]), exist_ok=True)
    path = os.path.join(root, id_[:2], id_ + ".json")
    with open(path, "w") as f:
        f.write('{"id":"%s","title":"Item %d","content":"text of item %d","n":%d}\n' % (id_, i, i, i))
    t = (1600000000 + i * 3600) * 10**9 + 123456789
    os.utime(path, ns=(t, t))
PY
  # Old directory times, as real data has: rsync compares times to the
  # second, so a tree made this very second would hide a wrong time.
  find "$dir" -type d -exec touch -d '2020-06-01 12:00:00.5' {} +
}
