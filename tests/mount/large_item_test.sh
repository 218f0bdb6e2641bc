#!/usr/bin/env bash
# a 1 GiB item (limit raised) stages on disk, not in memory: the
# daemon grows by a few MiB at most. The default limit refuses with EFBIG.
source "$(dirname "$0")/lib.sh"
start_mount
mkdir "$MNT/items/bi"
# 65 MiB is over the default 64 MiB limit.
expect_fail dd if=/dev/zero of="$MNT/items/bi/big.json" bs=1M count=65 status=none
grep -q "File too large" "$T/last.err" || fail "expected EFBIG, got: $(cat "$T/last.err")"
remount -o max_item_size=2G
rss() { awk '/VmRSS/ {print $2}' "/proc/$DAEMON_PID/status"; }
before=$(rss)
# 1 GiB of small objects (a sanitizer build, slower, writes 256 MiB).
# One writer (cat) holds the file: every close() commits, so a shell group
# writing through several processes would commit (and be refused) halfway.
# (nlohmann's validator holds one token in memory, so a single 1 GiB string
# would not stay small: a documented limit, not what is measured here.)
lines=$((1024 * 1024 * 1024 / 35))
[ -n "${ITEMFS_SANITIZED:-}" ] && lines=$((lines / 4))
{ printf '['; (set +o pipefail; yes '{"k":"some text value","n":12345},' | head -n "$lines"); printf '1]'; } | cat >"$MNT/items/bi/big.json"
expected_size=$((lines * 35 + 3))
peak=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
after=$(rss)
assert_eq "$expected_size" "$(stat -c %s "$MNT/items/bi/big.json")" "size"
assert_eq "1" "$(tail -c 2 "$MNT/items/bi/big.json" | head -c 1)" "last bytes"
grew=$(( (peak - before) / 1024 ))
echo "writing $expected_size bytes: daemon RSS before ${before} KiB, peak ${peak} KiB, after ${after} KiB (grew ${grew} MiB)"
# ASan's shadow memory and quarantine inflate RSS; the bound is for a normal build.
# About 20 MiB on an idle machine; a loaded one makes libfuse start more
# worker threads, each with its own 1 MiB receive buffer (28 MiB seen). A
# staging in memory would grow by the item's 1 GiB.
limit=40
[ -n "${ITEMFS_SANITIZED:-}" ] && limit=256
[ "$grew" -le "$limit" ] || fail "daemon grew by $grew MiB writing 1 GiB"
sum1=$(sha256sum <"$MNT/items/bi/big.json")
remount -o max_item_size=2G
assert_eq "$sum1" "$(sha256sum <"$MNT/items/bi/big.json")" "content after remount"
