#!/usr/bin/env bash
# Progress of `itemfs export` and `itemfs reindex`: on a terminal (a
# pseudo-terminal made by script) each draws one updating line on stderr with
# done of total, percent and rate; through a pipe nothing of it is printed;
# --json prints one JSON summary on stdout (export: exported, dir, damaged,
# seconds; reindex: items, seconds), and a damaged item is left out of an
# export, named in the summary, with exit status 1.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
command -v script >/dev/null || fail "script (util-linux) is needed"

make_items "$T/src" 300
"$ITEMFS" import "$STORE" "$T/src" >/dev/null 2>&1

# On a terminal: the line, then the summary.
script -qec "$ITEMFS export $STORE $T/out1" /dev/null </dev/null | tr '\r' '\n' >"$T/tty" || true
grep -q "^export *[0-9]*% [0-9,]* of 300 items" "$T/tty" || fail "no export progress line: $(head -c 600 "$T/tty")"
grep -q "exported 300 items to" "$T/tty" || fail "no export summary on a terminal: $(head -c 600 "$T/tty")"
diff -r "$T/src" "$T/out1" >/dev/null || fail "export on a terminal differs from the source"

script -qec "$ITEMFS reindex $STORE" /dev/null </dev/null | tr '\r' '\n' >"$T/tty" || true
grep -q "^reindex *[0-9]*% [0-9,]* of 300 items" "$T/tty" || fail "no reindex progress line: $(head -c 600 "$T/tty")"

# Through a pipe: no progress; --json: one summary on stdout.
"$ITEMFS" export "$STORE" "$T/out2" --json >"$T/json" 2>"$T/err" || fail "export --json"
[ -s "$T/err" ] && fail "stderr of export --json through a pipe: $(head -c 300 "$T/err")"
jq -e --arg d "$T/out2" '.exported == 300 and .dir == $d and .damaged == [] and .seconds >= 0' "$T/json" >/dev/null ||
  fail "export summary: $(cat "$T/json")"
"$ITEMFS" reindex --json "$STORE" >"$T/json" 2>"$T/err" || fail "reindex --json"
[ -s "$T/err" ] && fail "stderr of reindex --json through a pipe: $(head -c 300 "$T/err")"
jq -e '.items == 300 and .seconds >= 0' "$T/json" >/dev/null || fail "reindex summary: $(cat "$T/json")"
"$ITEMFS" export "$STORE" "$T/out3" >/dev/null 2>"$T/err" || fail "export through a pipe"
assert_eq "exported 300 items to $T/out3" "$(cat "$T/err")" "export's stderr through a pipe"

# A damaged item: left out, named, exit 1.
one=$(first_of "$T/src" '*/*.json')
id=$(basename "$one" .json)
sqlite3 "$STORE/store.db" "UPDATE blobs SET data=zeroblob(length(data)) WHERE id=(SELECT blob FROM chunks JOIN items USING(ino) WHERE items.id='$id')"
if "$ITEMFS" export "$STORE" "$T/out4" --json >"$T/json" 2>"$T/err"; then fail "export of a damaged store exited 0"; fi
jq -e --arg id "$id" '.exported == 299 and .damaged == [$id]' "$T/json" >/dev/null || fail "damaged summary: $(cat "$T/json")"
[ -e "$T/out4/$(basename "$(dirname "$one")")/$id.json" ] && fail "the damaged item was written out"
exit 0
