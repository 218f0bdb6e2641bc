#!/usr/bin/env bash
# SIGKILL the daemon in the middle of `cp -r` of 2,000 items; after a
# remount fsck is clean and every item is absent or complete and valid.
source "$(dirname "$0")/lib.sh"
make_items "$T/src" 2000
start_mount
cp -r "$T/src/." "$MNT/items/" 2>/dev/null &
CP=$!
# Let it get part of the way (however slow the machine: up to a minute).
for _ in $(seq 1 3000); do
  n=$(jq .items "$MNT/stats.json" 2>/dev/null || echo 0)
  [ "$n" -ge 300 ] && break
  sleep 0.02
done
kill_mount
wait "$CP" 2>/dev/null || true
"$ITEMFS" fsck "$STORE" >"$T/fsck" || fail "fsck after SIGKILL: $(cat "$T/fsck")"
start_mount
# Each item there must be valid JSON and its source's bytes: jq reads them
# all in a few runs, python compares them in one (a process per item was the
# test's longest part).
find "$MNT/items" -name '*.json' -print0 | sort -z >"$T/present"
xargs -0 -r -n 500 jq empty <"$T/present" || fail "an item is not valid JSON (jq above)"
present=$(python3 - "$MNT/items" "$T/src" "$T/present" <<'PY'
import os, sys
mnt, src, listing = sys.argv[1:4]
with open(listing, "rb") as f:
    paths = [p for p in f.read().decode().split("\0") if p]
for p in paths:
    rel = os.path.relpath(p, mnt)
    with open(p, "rb") as a, open(os.path.join(src, rel), "rb") as b:
        if a.read() != b.read():
            sys.exit(f"{rel} differs from its source")
print(len(paths))
PY
) || fail "the items read back are not what was copied (above)"
[ "$present" -ge 300 ] || fail "only $present items survived"
[ "$present" -le 2000 ] || fail "too many items: $present"
echo "crash: $present of 2000 items committed before SIGKILL"
