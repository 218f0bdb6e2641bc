#!/usr/bin/env bash
# itemfs fsck for people and scripts: --json prints one JSON document on
# stdout (clean, counts, problems, damaged items, search index problems)
# with the readable report on stderr; exit 1 when anything is wrong; on a
# terminal a progress line (percent of blobs and items checked), none
# otherwise.
source "$(dirname "$0")/lib.sh"
make_items "$T/src" 3000
"$ITEMFS" import "$STORE" "$T/src" >/dev/null 2>&1 || fail "import"

"$ITEMFS" fsck "$STORE" --json >"$T/out" 2>"$T/err" || fail "fsck of a clean store: $(cat "$T/err")"
jq -e '.clean == true and .items_checked == 3000 and .problems == [] and .damaged_items == []' "$T/out" >/dev/null ||
  fail "clean report: $(cat "$T/out")"
grep -q "checked 3000 items" "$T/err" || fail "the readable report is not on stderr: $(cat "$T/err")"
if grep -q "%" "$T/err"; then fail "progress drawn when stderr is not a terminal"; fi

one=$(first_of "$T/src" '*/*.json')
id=$(basename "$one" .json)
sqlite3 "$STORE/store.db" "UPDATE blobs SET data=zeroblob(length(data)) WHERE id=(SELECT blob FROM chunks JOIN items USING(ino) WHERE items.id='$id')"
if "$ITEMFS" fsck "$STORE" --json >"$T/out" 2>"$T/err"; then fail "fsck of a damaged store exited 0"; fi
assert_eq "[\"$id\"]" "$(jq -c .damaged_items "$T/out")" "damaged items"
jq -e '.clean == false and (.problems | length) >= 1' "$T/out" >/dev/null || fail "damaged report: $(cat "$T/out")"

script -qec "$ITEMFS fsck $STORE" /dev/null </dev/null >"$T/tty" 2>&1 || true
tr '\r' '\n' <"$T/tty" | grep -q "^fsck *[0-9]*% [0-9]* of [0-9]* blobs and items" || fail "no progress line on a terminal: $(cat -A "$T/tty" | head -5)"
