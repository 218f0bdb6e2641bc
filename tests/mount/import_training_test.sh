#!/usr/bin/env bash
# itemfs import returns with the store as it will stay: the compression
# dictionaries its items made due (after 2,000 of them) are trained in the
# background while it writes, and it waits for them, and for the items
# stored before them to be compressed again, before its summary.
source "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || fail "sqlite3 is needed"
S=$T/store
for i in $(seq 0 2499); do
  printf '{"id":"p%d","url":"https://docs.example.org/manual/chapter-%d/page-%d.html","metadata":{"source":"example-docs","lang":"en","http_status":200},"content":"Item %d of the manual."}\n' \
    "$i" $((i % 37)) "$i" $((i * 7919))
done >"$T/items.jsonl"
"$ITEMFS" import "$S" "$T/items.jsonl" --json >"$T/out" 2>"$T/err" || fail "import failed: $(cat "$T/err")"
assert_eq 2500 "$(jq -r .added "$T/out")" "items added"
[ "$(sqlite3 "$S/store.db" "SELECT count(*) FROM dicts")" -ge 1 ] || fail "no dictionary was trained by the end of the import"
assert_eq 0 "$(sqlite3 "$S/store.db" "SELECT count(*) FROM blobs WHERE dict_id IS NULL")" "blobs left without a dictionary"
assert_eq 0 "$(sqlite3 "$S/store.db" "SELECT count(*) FROM meta WHERE key LIKE 'recompress_%'")" "recompression left to do"
"$ITEMFS" export "$S" "$T/x" >/dev/null
assert_eq "$(sed -n 43p "$T/items.jsonl")" "$(cat "$T/x/p4/p42.json")" "p42 read back"
