#!/usr/bin/env bash
# itemfs import for pipelines: JSON Lines on standard input (`-`, gzipped or
# not), .ndjson and gzipped .jsonl/.json files read directly, --id-field and
# --id-from-url (the first 16 hex digits of the URL's SHA-256), a summary of
# added, changed, unchanged and skipped items with the reasons (--json: one
# JSON document), unchanged items not written again, files whose "id" field
# is not their name listed, and a progress line with percent and rate on a
# terminal only.
source "$(dirname "$0")/lib.sh"
S=$T/store
summary() { "$ITEMFS" import "$S" "$@" --json 2>"$T/err"; }

# Standard input, plain and gzipped; the store is created and says so.
printf '{"id":"a","v":1}\n{"id":"b","v":2}\n\n{"no":"id"}\n{"id":"c",\n' | "$ITEMFS" import "$S" - --json >"$T/out" 2>"$T/err" && fail "skipped lines must make exit 1"
grep -q "created a new store at $S" "$T/err" || fail "no word of the new store: $(cat "$T/err")"
assert_eq '2 0 0 2' "$(jq -r '"\(.added) \(.changed) \(.unchanged) \(.skipped)"' "$T/out")" "stdin counts"
assert_eq '{"invalid JSON":1,"no id":1}' "$(jq -c .skip_reasons "$T/out")" "skip reasons"
grep -q 'skipped stdin:4: no "id" field' "$T/err" || fail "the skip is not named: $(cat "$T/err")"
printf '{"id":"a","v":1}\n{"id":"b","v":3}\n{"id":"d","v":4}\n' | gzip | summary - >"$T/out" || fail "gzipped stdin failed: $(cat "$T/err")"
assert_eq '1 1 1 0' "$(jq -r '"\(.added) \(.changed) \(.unchanged) \(.skipped)"' "$T/out")" "gzipped stdin: added changed unchanged skipped"
assert_eq '{"id":"b","v":3}' "$("$ITEMFS" export "$S" "$T/x1" >/dev/null && cat "$T/x1/00/b.json")" "the changed item"

# Files: .ndjson, .jsonl.gz, .json.gz, --id-field.
printf '{"key":"n1","v":1}\n{"key":"n2","v":2}\n' >"$T/in.ndjson"
summary "$T/in.ndjson" --id-field key >"$T/out" || fail ".ndjson with --id-field: $(cat "$T/err")"
assert_eq 2 "$(jq .added "$T/out")" ".ndjson items"
printf '{"id":"g1"}\n{"id":"g2"}\n' | gzip >"$T/in.jsonl.gz"
mkdir "$T/dir" && printf '{"title":"zipped"}' | gzip >"$T/dir/zipped.json.gz"
summary "$T/in.jsonl.gz" "$T/dir" >"$T/out" || fail "gzipped files: $(cat "$T/err")"
assert_eq 3 "$(jq .added "$T/out")" "gzipped files"
"$ITEMFS" export "$S" "$T/x2" >/dev/null
assert_eq '{"title":"zipped"}' "$(cat "$T/x2/zi/zipped.json")" "a .json.gz is named by its file name, without .gz"
[ -f "$T/x2/g1/g1.json" ] || fail "a .jsonl.gz line is missing"

# --id-from-url: crawlers' ids.
printf '{"url":"https://example.com/a/b?c=1","t":"x"}\n' >"$T/urls.jsonl"
summary "$T/urls.jsonl" --id-from-url url >"$T/out" || fail "--id-from-url: $(cat "$T/err")"
id=$(printf '%s' 'https://example.com/a/b?c=1' | sha256sum | cut -c1-16)
"$ITEMFS" export "$S" "$T/x3" >/dev/null
[ -f "$T/x3/${id:0:2}/$id.json" ] || fail "no item $id made from the url: $(ls "$T/x3")"
expect_fail "$ITEMFS" import "$S" "$T/urls.jsonl" --id-from-url url --id-field key
expect_fail "$ITEMFS" import "$S" "$T/urls.jsonl" --id-from-url

# A .json file whose "id" is not its name: stored under its name, listed.
# Only the top level's "id" counts; a number is compared as written.
mkdir "$T/named" && printf '{"id":"other"}' >"$T/named/mine.json"
printf '{"meta":{"id":"inner"},"id":"nested"}' >"$T/named/nested.json"
printf '{"n":[{"id":1}],"id":7}' >"$T/named/7.json"
printf '{"id":7}' >"$T/named/eight.json"
summary "$T/named" >"$T/out" || fail "named: $(cat "$T/err")"
assert_eq 2 "$(jq .id_differs_from_name "$T/out")" "files whose id is not their name"
grep -q 'named/mine.json ("id": "other")' "$T/err" || fail "the file is not listed: $(cat "$T/err")"
grep -q 'named/eight.json ("id": "7")' "$T/err" || fail "the numbered file is not listed: $(cat "$T/err")"
# The summary line without --json.
"$ITEMFS" import "$S" "$T/named" 2>"$T/err" >/dev/null || fail "plain import"
grep -q "^0 added, 0 changed, 4 unchanged, 0 skipped" "$T/err" || fail "summary line: $(cat "$T/err")"

# Progress: on a terminal one updating line with percent and rate; none otherwise.
make_items "$T/many" 400
script -qec "$ITEMFS import $T/store2 $T/many" /dev/null </dev/null >"$T/tty" 2>&1 || true
tr '\r' '\n' <"$T/tty" | grep -q "^import *[0-9]*% .* of .*MB.*items" || fail "no progress line on a terminal: $(cat -A "$T/tty" | head)"
"$ITEMFS" import "$T/store3" "$T/many" 2>"$T/err" >/dev/null
if grep -q "%" "$T/err"; then fail "progress drawn when stderr is not a terminal: $(cat "$T/err")"; fi

# One id twice in a run: the later line wins, on a new store and again, and
# the counts say what the store did.
printf '{"id":"dup","v":1}\n{"id":"dup","v":2}\n' >"$T/dup.jsonl"
summary "$T/dup.jsonl" >"$T/out" || fail "dup: $(cat "$T/err")"
assert_eq '1 1 0' "$(jq -r '"\(.added) \(.changed) \(.unchanged)"' "$T/out")" "first import of a repeated id"
summary "$T/dup.jsonl" >"$T/out" || fail "dup again: $(cat "$T/err")"
assert_eq '0 2 0' "$(jq -r '"\(.added) \(.changed) \(.unchanged)"' "$T/out")" "second import of a repeated id"
"$ITEMFS" export "$S" "$T/x4" >/dev/null
assert_eq '{"id":"dup","v":2}' "$(cat "$T/x4/du/dup.json")" "the later line is stored"
# A gzip stream cut short is reported, not taken for the whole.
seq 1 3000 | sed 's/.*/{"id":"cut&","v":&}/' | gzip >"$T/whole.jsonl.gz"
head -c 4000 "$T/whole.jsonl.gz" >"$T/cut.jsonl.gz"
if "$ITEMFS" import "$S" "$T/cut.jsonl.gz" 2>"$T/err" >/dev/null; then fail "a cut gzip stream was imported without a word"; fi
grep -q "cut short" "$T/err" || fail "the cut is not reported: $(cat "$T/err")"
