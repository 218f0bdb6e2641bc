#!/usr/bin/env bash
# Issue 2: SIGKILL the daemon in the middle of `cp -r` of 2,000 items; after a
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
present=0
while read -r f; do
  rel=${f#"$MNT/items/"}
  jq -e . "$f" >/dev/null || fail "$rel is not valid JSON"
  cmp -s "$f" "$T/src/$rel" || fail "$rel differs from its source"
  present=$((present + 1))
done < <(find "$MNT/items" -name '*.json')
[ "$present" -ge 300 ] || fail "only $present items survived"
[ "$present" -le 2000 ] || fail "too many items: $present"
echo "crash: $present of 2000 items committed before SIGKILL"
