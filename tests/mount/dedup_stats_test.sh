#!/usr/bin/env bash
# The same content under 1,000 ids is one blob; stats.json is true.
source "$(dirname "$0")/lib.sh"
start_mount
doc='{"title":"same","content":"identical content for every id, repeated repeated repeated repeated"}'
mkdir "$T/src"
for i in $(seq 1000 1999); do
  mkdir -p "$T/src/d$((i % 10))"
  printf '%s\n' "$doc" >"$T/src/dup$i.json"
done
before=$(jq .blobs "$MNT/stats.json")
cp "$T"/src/*.json "$MNT/items/"
S=$(cat "$MNT/stats.json")
echo "$S" | jq -e . >/dev/null || fail "stats.json is not JSON"
size=$(( ${#doc} + 1 ))
assert_eq 1000 "$(echo "$S" | jq .items)" "items"
assert_eq $((before + 1)) "$(echo "$S" | jq .blobs)" "blobs"
assert_eq $((1000 * size)) "$(echo "$S" | jq .logical_bytes)" "logical bytes"
assert_eq "$size" "$(echo "$S" | jq .unique_bytes)" "unique bytes"
assert_eq 1000 "$(echo "$S" | jq '.dedup_ratio | round')" "dedup ratio"
stored=$(echo "$S" | jq .stored_bytes)
[ "$stored" -lt "$size" ] || fail "stored $stored not compressed below $size"
assert_eq "$(echo "$S" | jq "$size / $stored")" "$(echo "$S" | jq .compression_ratio)" "compression ratio"
# The database agrees.
assert_eq 1 "$(sqlite3 "$STORE/store.db" 'select count(*) from blobs')" "blob rows"
assert_eq 1000 "$(sqlite3 "$STORE/store.db" 'select refs from blobs')" "refs"
# Deleting all but one keeps the blob; deleting the last frees it.
find "$MNT/items" -name 'dup1[0-8]*.json' -delete
rm "$MNT"/items/du/dup19*.json
assert_eq 0 "$(jq .items "$MNT/stats.json")" "items after rm"
assert_eq 0 "$(jq .blobs "$MNT/stats.json")" "blobs after rm"
[ "$(jq .operations.unlinks "$MNT/stats.json")" -ge 1000 ] || fail "unlink counter"
