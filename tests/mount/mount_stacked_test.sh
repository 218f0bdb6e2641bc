#!/usr/bin/env bash
# Mounting onto a mount point that is already mounted (by itemfs or by
# anything else) is refused with a clear message and exit status 1, before
# anything is created; no second daemon is stacked on the first. A mount
# point that is not a directory is refused the same way.
source "$(dirname "$0")/lib.sh"

start_mount
# A second itemfs on the same mount point (a fresh store path, a relative
# path and a trailing slash), in the foreground: it must not start serving.
rc=0
timeout 20 "$ITEMFS" mount "$T/store2" "$MNT/" -f >"$T/second.out" 2>&1 || rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 0 ]; then
  # It mounted on top: take it off again so the EXIT trap finds the first.
  fusermount3 -u "$MNT" 2>/dev/null || true
  fail "a second itemfs mounted on $MNT (exit $rc)"
fi
assert_eq 1 "$rc" "exit status of a mount onto a mounted itemfs"
grep -q "$MNT is already mounted" "$T/second.out" || fail "message: $(cat "$T/second.out")"
[ ! -e "$T/store2" ] || fail "the refused mount created its store"
assert_eq 1 "$(grep -c " $MNT fuse" /proc/self/mounts)" "mounts on $MNT"
[ -e "$MNT/stats.json" ] || fail "the first mount is gone"
(cd "$T" && "$ITEMFS" mount store "./mnt" >"$T/third.out" 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 0 ]; then
  fusermount3 -u "$MNT" 2>/dev/null || true
  fail "a relative path to the mounted point was mounted again"
fi
assert_eq 1 "$rc" "exit status (relative mount point)"

# Something else mounted there: a tmpfs.
mkdir "$T/tmpfs"
mount -t tmpfs -o size=1m itemfs-test "$T/tmpfs" || fail "cannot mount a tmpfs (the test runs as root)"
CLEANUP_EXTRA="umount '$T/tmpfs' 2>/dev/null; umount '$T/tmpfs' 2>/dev/null"
rc=0
timeout 20 "$ITEMFS" mount "$T/store3" "$T/tmpfs" -f >"$T/tmpfs.out" 2>&1 || rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 0 ]; then
  fusermount3 -u "$T/tmpfs" 2>/dev/null || true
  fail "itemfs mounted on top of a tmpfs (exit $rc)"
fi
assert_eq 1 "$rc" "exit status of a mount onto a tmpfs"
grep -q "already mounted" "$T/tmpfs.out" || fail "message: $(cat "$T/tmpfs.out")"
[ ! -e "$T/store3" ] || fail "the refused mount created its store"

# Not a directory, or not there: exit 1, nothing created.
touch "$T/file"
expect_fail "$ITEMFS" mount "$T/store4" "$T/file" -f
grep -q "not a directory" "$T/last.err" || fail "message for a file: $(cat "$T/last.err")"
expect_fail "$ITEMFS" mount "$T/store4" "$T/nowhere" -f
grep -q "cannot mount on $T/nowhere" "$T/last.err" || fail "message for a missing mount point: $(cat "$T/last.err")"
[ ! -e "$T/store4" ] || fail "a refused mount created its store"
echo "mount: an already mounted mount point is refused"
