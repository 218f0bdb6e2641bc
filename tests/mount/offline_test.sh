#!/usr/bin/env bash
# import (dir, JSON Lines), export, stats, fsck finding damage.
source "$(dirname "$0")/lib.sh"
make_items "$T/src" 300
printf '{"id":"jl1","v":1}\n{"id":"jl2","v":2}\n\n{"no":"id"}\n{"id":"jl3",\n' >"$T/lines.jsonl"
mkdir -p "$T/src/br"; printf '{"broken":\n' >"$T/src/br/broken.json"

set +e
"$ITEMFS" import "$STORE" "$T/src" "$T/lines.jsonl" 2>"$T/import.err"
rc=$?
set -e
assert_eq 1 "$rc" "import exit status with skipped input"
grep -q "skipped $T/src/br/broken.json: invalid JSON" "$T/import.err" || fail "import report: $(cat "$T/import.err")"
grep -q 'lines.jsonl:4: no "id" field' "$T/import.err" || fail "jsonl report: $(cat "$T/import.err")"
assert_eq 302 "$("$ITEMFS" stats "$STORE" | jq .items)" "items after import"
rm "$T/src/br/broken.json"; rmdir "$T/src/br"
"$ITEMFS" export "$STORE" "$T/out" 2>/dev/null
mkdir -p "$T/expect"; cp -a "$T/src/." "$T/expect/"
mkdir -p "$T/expect/jl"
for i in 1 2; do printf '{"id":"jl%d","v":%d}' "$i" "$i" >"$T/expect/jl/jl$i.json"; done
diff -r "$T/expect" "$T/out" || fail "export differs from what was imported"
one=$(first_of "$T/src" "*/*.json")
assert_eq "$(stat -c %Y "$T/src/$one")" "$(stat -c %Y "$T/out/$one")" "export keeps mtime"

"$ITEMFS" fsck "$STORE" >"$T/fsck" || fail "fsck of a clean store: $(cat "$T/fsck")"
grep -q "checked 302 items" "$T/fsck" || fail "fsck report: $(cat "$T/fsck")"
# Damage one blob as a disk fault would, and a count as a bug would.
sqlite3 "$STORE/store.db" "update blobs set data = zeroblob(length(data)) where id = (select min(id) from blobs)"
sqlite3 "$STORE/store.db" "update blobs set refs = refs + 5 where id = (select max(id) from blobs)"
set +e
"$ITEMFS" fsck "$STORE" >"$T/fsck"
rc=$?
set -e
assert_eq 1 "$rc" "fsck exit status on damage"
grep -q "content damaged" "$T/fsck" || fail "fsck did not name the damaged item: $(cat "$T/fsck")"
grep -q "reference count" "$T/fsck" || fail "fsck did not report the count: $(cat "$T/fsck")"
"$ITEMFS" fsck "$STORE" --repair >/dev/null || true
"$ITEMFS" fsck "$STORE" >"$T/fsck2" || true
grep -q "reference count" "$T/fsck2" && fail "repair did not fix the count"
grep -q "content damaged" "$T/fsck2" || fail "damage must stay reported"
# A TTY shows a progress line (script(1) gives import a terminal).
script -qec "$ITEMFS import $T/store2 $T/expect" /dev/null </dev/null | tr '\r' '\n' | grep -q "items/s" || fail "no progress line"
