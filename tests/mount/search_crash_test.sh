#!/usr/bin/env bash
# A SIGKILL of the daemon during a bulk write loses nothing of the search
# index: the index follows the store's change feed, so after a remount every
# item the store holds is found by search (the index catches up from the
# feed), `itemfs fsck` finds the index clean, and stats.json shows no lag.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
start_mount
mkdir -p "$MNT/items/bk"
(
  for i in $(seq 1 2000); do
    printf '{"title":"bulk %d","content":"numbat %d"}\n' "$i" "$i" >"$MNT/items/bk/bk$i.json" 2>/dev/null || exit 0
  done
) &
writer=$!
# Kill once a good part is written (whatever the machine's speed).
for _ in $(seq 1 600); do
  [ "$(ls "$MNT/items/bk" 2>/dev/null | wc -l)" -ge 300 ] && break
  sleep 0.05
done
kill_mount
wait "$writer" 2>/dev/null || true
stored=$("$ITEMFS" stats "$STORE" | jq .items)
[ "$stored" -ge 300 ] || fail "only $stored items were stored before the kill"
start_mount
assert_eq "$stored" "$(jq .total "$MNT/search/numbat.json")" "items found by search after the remount"
assert_eq "null" "$(jq .pending "$MNT/search/numbat.json")" "pending after the remount"
assert_eq 0 "$(jq .index_lag "$MNT/stats.json")" "index_lag after the remount"
stop_mount
"$ITEMFS" fsck "$STORE" >"$T/fsck.out" || fail "fsck after the kill: $(cat "$T/fsck.out")"
grep -q "search index: clean" "$T/fsck.out" || fail "fsck did not find the index clean: $(cat "$T/fsck.out")"
