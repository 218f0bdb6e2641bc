#!/usr/bin/env bash
# Mount options: a bad value of any option with a number, size, duration or
# word is a usage error (exit 2) whose message names the option and the
# value, and nothing is created. A store that cannot be written (on a
# read-only filesystem) mounts read-only, with a warning on stderr and in
# the log: items read back, writes fail with EROFS. `-o ro` mounts any
# store read-only.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"

check_bad() {  # option value expected-words
  local rc=0
  "$ITEMFS" mount "$T/never" "$MNT" -f -o "$1=$2" >"$T/out" 2>&1 || rc=$?
  if mountpoint -q "$MNT"; then fusermount3 -u "$MNT"; fi
  assert_eq 2 "$rc" "exit status of -o $1=$2"
  grep -qF "itemfs: bad value for $1: '$2' (expected $3" "$T/out" || fail "-o $1=$2: message: $(cat "$T/out")"
  [ ! -e "$T/never" ] || fail "-o $1=$2 created the store"
}
check_bad max_item_size abc "a size like 64M"
check_bad max_item_size 12Q "a size like 64M"
check_bad max_item_size -5 "a size like 64M"
check_bad max_item_size "" "a size like 64M"
check_bad backup_every soon "a duration like 30m or 24h"
check_bad backup_every 0 "a duration like 30m or 24h"
check_bad backup_every 5x "a duration like 30m or 24h"
check_bad backup_keep_last many "a whole number of at least 1"
check_bad backup_keep_last 3.5 "a whole number of at least 1"
check_bad backup_keep_last 0 "a whole number of at least 1"
check_bad backup_chain 99999999999 "a whole number of at least 1"
check_bad sync always "full or normal"
rc=0
"$ITEMFS" mount "$T/never" "$MNT" --frobnicate >"$T/out" 2>&1 || rc=$?
assert_eq 2 "$rc" "exit status of an unknown option"
grep -q "unknown option '--frobnicate'" "$T/out" || fail "unknown option message: $(cat "$T/out")"
[ ! -e "$T/never" ] || fail "an unknown option created the store"

# Good values still mount.
start_mount -o max_item_size=1.5K,backup_every=24h,backup_keep_last=3,backup_chain=5,sync=full
printf '{"id":"a1","pad":"%s"}\n' "$(head -c 1600 /dev/zero | tr '\0' x)" >"$T/big.json"
if cp "$T/big.json" "$MNT/items/a1.json" 2>/dev/null; then fail "max_item_size=1.5K let 1.6 KiB through"; fi
echo '{"id":"a1","title":"kept"}' >"$MNT/items/a1.json" || fail "write a small item"
echo '{"id":"b2","title":"second"}' >"$MNT/items/b2.json"
stop_mount

# -o ro: reads work, writes fail with EROFS, the store is unchanged.
before=$(sha256sum "$STORE/store.db" | cut -d' ' -f1)
start_mount -o ro
assert_eq kept "$(jq -r .title "$MNT/items/a1/a1.json")" "read under -o ro"
if echo '{"id":"c3"}' 2>"$T/w.err" >"$MNT/items/c3.json"; then fail "a write under -o ro worked"; fi
grep -qi "read-only file system" "$T/w.err" || fail "write under -o ro: $(cat "$T/w.err")"
if rm "$MNT/items/a1/a1.json" 2>/dev/null; then fail "rm under -o ro worked"; fi
stop_mount
assert_eq "$before" "$(sha256sum "$STORE/store.db" | cut -d' ' -f1)" "store.db after a read-only mount"

# The store on a filesystem mounted read-only.
mkdir "$T/ro"
mount -t tmpfs -o size=32m itemfs-ro "$T/ro" || fail "cannot mount a tmpfs (the test runs as root)"
CLEANUP_EXTRA="umount -l '$T/ro' 2>/dev/null"
cp -a "$STORE" "$T/ro/store"
mount -o remount,ro "$T/ro" || fail "cannot remount the tmpfs read-only"
STORE=$T/ro/store
start_mount
grep -q "warning: store is on a read-only filesystem" "$T/daemon.log" || fail "no warning on stderr: $(tail -n 5 "$T/daemon.log")"
grep -q "store is on a read-only filesystem" "$MNT/log" || fail "no warning in the log: $(cat "$MNT/log")"
assert_eq kept "$(jq -r .title "$MNT/items/a1/a1.json")" "read of a store on a read-only filesystem"
assert_eq 2 "$(jq .items "$MNT/stats.json")" "items of a store on a read-only filesystem"
ls "$MNT/items/b2" >/dev/null || fail "ls of a shard"
if echo '{"id":"c3"}' 2>"$T/w.err" >"$MNT/items/c3.json"; then fail "a write to a read-only store worked"; fi
grep -qi "read-only file system" "$T/w.err" || fail "write to a read-only store: $(cat "$T/w.err")"
# The offline commands that only read work too.
stop_mount
"$ITEMFS" stats "$STORE" >"$T/stats" 2>"$T/stats.err" || fail "stats of a read-only store: $(cat "$T/stats.err")"
assert_eq 2 "$(jq .items "$T/stats")" "itemfs stats of a read-only store"
echo "mount options: bad values are named; a read-only store mounts read-only"
