#!/usr/bin/env bash
# Through the mount: ranked entries under search/<q>/, search/<q>.json,
# writes visible at once, bad queries, CJK, and `itemfs search` agreeing.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"

# Imported offline: `itemfs import` indexes in the same transactions.
mkdir -p "$T/src/so" "$T/src/en" "$T/src/fi" "$T/src/ja"
printf '{"title":"Solar panel prices fall","content":"Module makers cut costs again.","url":"https://news.example.com/a","author":"Jane Smith","tags":["energy"]}\n' >"$T/src/so/solar-title.json"
printf '{"title":"Energy weekly","content":"Rooftop owners ask about the solar panel, the solar panel warranty and solar panel cleaning.","url":"https://blog.example.org/b","author":"Bob Jones","tags":["energy","home"]}\n' >"$T/src/en/energy-body.json"
for i in $(seq 1 12); do
  printf '{"title":"Filler %d","content":"Nothing about the sun here, only gardening and tomatoes number %d."}\n' "$i" "$i" >"$T/src/fi/filler$i.json"
done
printf '{"title":"日本のニュース","content":"今日は日本語の文章です。"}\n' >"$T/src/ja/ja-1.json"
"$ITEMFS" import "$STORE" "$T/src" 2>"$T/import.err" || fail "import: $(cat "$T/import.err")"
[ -n "$("$ITEMFS" search "$STORE" tomatoes 2>/dev/null)" ] || fail "import did not index the items"
"$ITEMFS" fsck "$STORE" >"$T/fsck.out" || fail "fsck after import: $(cat "$T/fsck.out")"
grep -q "search index: clean" "$T/fsck.out" || fail "fsck did not check the index"
start_mount
S=$MNT/search

# README documents the language and the entries.
grep -q 'limit:' "$S/README" || fail "search/README lacks the query language"
grep -qi 'symbolic link' "$S/README" || fail "search/README does not say what the entries are"
assert_eq "README" "$(ls "$S")" "ls search/"

# 1. Ranked entries, title hit first, zero-padded rank prefixes, symlinks.
mapfile -t entries < <(ls "$S/solar panel")
assert_eq 2 "${#entries[@]}" "entries of 'solar panel'"
assert_eq "001-solar-title.json" "${entries[0]}" "rank 1 (title hit)"
assert_eq "002-energy-body.json" "${entries[1]}" "rank 2 (body hit)"
assert_eq "../../items/so/solar-title.json" "$(readlink "$S/solar panel/001-solar-title.json")" "link target"
cmp "$S/solar panel/001-solar-title.json" "$T/src/so/solar-title.json" || fail "cat through the entry"
assert_eq "Bob Jones" "$(jq -r .author "$S/solar panel/002-energy-body.json")" "jq through the entry"
assert_eq "$S/solar panel/002-energy-body.json" "$(grep -l warranty "$S/solar panel"/*)" "grep -l over the entries"
expect_fail touch "$S/solar panel/new.json"
expect_fail rm "$S/solar panel/001-solar-title.json"
# Names that are not the current results do not resolve.
[ ! -e "$S/solar panel/001-energy-body.json" ] || fail "a wrong rank resolved"
[ ! -e "$S/solar panel/003-x.json" ] || fail "a missing rank resolved"

# 2. <q>.json: query, total, hits with id, path, score and a marked snippet.
J="$S/solar panel.json"
jq -e . "$J" >/dev/null || fail "<q>.json is not JSON"
assert_eq "solar panel" "$(jq -r .query "$J")" ".query"
assert_eq 2 "$(jq -r .total "$J")" ".total"
assert_eq "solar-title energy-body" "$(jq -r '[.hits[].id] | join(" ")' "$J")" "hit order"
assert_eq "items/so/solar-title.json" "$(jq -r '.hits[0].path' "$J")" ".path"
jq -e '.hits | all(.score | type == "number") and all(.rank | type == "number")' "$J" >/dev/null || fail "scores"
jq -e '.hits[1].snippet | test("\\[solar\\] \\[panel\\]")' "$J" >/dev/null || fail "snippet marks: $(jq .hits[1].snippet "$J")"
for p in $(jq -r '.hits[].path' "$J"); do [ -f "$MNT/$p" ] || fail "path $p does not exist"; done
jq -e '.terms | map(.term) | index("solar") != null' "$S/sol.suggest.json" >/dev/null || fail "suggest"
jq -e '.total == 2 and (.facets.host | length) == 2 and (.facets.tag[0] == {"value":"energy","count":2})' \
  "$S/solar.facets.json" >/dev/null || fail "facets: $(cat "$S/solar.facets.json")"
# Operators and filters reach the engine unchanged.
assert_eq "energy-body" "$(jq -r '[.hits[].id] | join(" ")' "$S/solar -prices.json")" "-word"
assert_eq "solar-title" "$(jq -r '[.hits[].id] | join(" ")' "$S/author:smith solar.json")" "author:"
assert_eq "energy-body" "$(jq -r '[.hits[].id] | join(" ")' "$S/host:example.org.json")" "host:"
assert_eq 14 "$(jq -r .total "$S/tomatoes OR solar.json")" "OR"
assert_eq 5 "$(ls "$S/tomatoes limit:5" | wc -l)" "limit: in a directory"
assert_eq "001-ja-1.json" "$(ls "$S/日本語")" "CJK inside a sentence"
# Phrases: the index finds items with all the words, each is checked for the
# words next to each other (the index keeps no positions).
assert_eq "energy-body" "$(jq -r '[.hits[].id] | join(" ")' "$S/\"solar panel warranty\".json")" "phrase"
assert_eq 0 "$(jq -r .total "$S/\"panel solar\".json")" "phrase in the wrong order"
assert_eq "solar-title" "$(jq -r '[.hits[].id] | join(" ")' "$S/solar -\"panel warranty\".json")" "-\"phrase\""
# A query cannot hold '/': %2F stands for it. The url has the words
# news.example.com/a: the phrase finds solar-title only.
assert_eq "solar-title" "$(jq -r '.hits[].id' "$S/url:news.example.com%2Fa.json")" "url: with %2F"
[ -L "$S/url:news.example.com%2Fa/001-solar-title.json" ] || fail "no hit listed for url:...%2Fa"

# 7. Bad queries: EINVAL and the reason in the log; nothing crashes.
for q in '"unclosed' 'solar OR' '-solar' 'limit:5 limit:6' 'foo NEAR bar' '(x)'; do
  out=$(ls "$S/$q" 2>&1) && fail "ls of bad query [$q] succeeded: $out"
  grep -q 'Invalid argument' <<<"$out" || fail "bad query [$q]: $out"
  expect_fail cat "$S/$q.json"
  grep -Fq "search: refused query '$q'" "$MNT/log" || fail "no log line for [$q]"
done
grep -q "unbalanced quote" "$MNT/log" || fail "the log does not say why"
[ -e "$S/solar.json" ] || fail "the mount stopped answering after bad queries"

# 4. Writes show up at once: create, edit, rename, remove.
q="$S/zebracorn"
[ -z "$(ls "$q")" ] || fail "zebracorn found before it exists"
printf '{"title":"A zebracorn","content":"striped"}\n' >"$T/z.json"
cp "$T/z.json" "$MNT/items/z1.json"
assert_eq "001-z1.json" "$(ls "$q")" "after cp"
assert_eq 1 "$(jq .total "$q.json")" "after cp (.json)"
assert_eq "striped" "$(jq -r .content "$q/001-z1.json")" "new item through the entry"
printf '{"title":"A plain horse","content":"zebracorn no more? no: horse"}\n' >"$MNT/items/z1/z1.json"
assert_eq 0 "$(jq .total "$S/striped.json")" "edit removed a word"
assert_eq 1 "$(jq .total "$S/horse.json")" "edit added a word"
mv "$MNT/items/z1/z1.json" "$MNT/items/z2.json"
assert_eq "001-z2.json" "$(ls "$q")" "after mv"
assert_eq "../../items/z2/z2.json" "$(readlink "$q/001-z2.json")" "link after mv"
assert_eq "zebracorn no more? no: horse" "$(jq -r .content "$q/001-z2.json")" "content after mv"
rm "$MNT/items/z2/z2.json"
assert_eq "" "$(ls "$q")" "after rm"
assert_eq 0 "$(jq .total "$q.json")" "after rm (.json)"
# An editor-style save (write a temp, rename over) is seen too.
printf '{"title":"Solar panel prices fall","content":"now with a zebracorn"}\n' >"$MNT/items/so/.solar-title.json.tmp"
mv "$MNT/items/so/.solar-title.json.tmp" "$MNT/items/so/solar-title.json"
assert_eq "001-solar-title.json" "$(ls "$q")" "after rename over"

# 8. The offline command agrees with the mount (the mount stays up).
mount_ids=$(ls "$S/solar OR tomatoes" | sed 's/^[0-9]*-//; s/\.json$//')
cli_ids=$("$ITEMFS" search "$STORE" "solar OR tomatoes" --json | jq -r '.hits[].id')
assert_eq "$mount_ids" "$cli_ids" "itemfs search --json vs ls"
cli_paths=$("$ITEMFS" search "$STORE" "solar OR tomatoes" 2>/dev/null | cut -f3)
assert_eq "$(jq -r '.hits[].path' "$S/solar OR tomatoes.json")" "$cli_paths" "itemfs search plain output"
assert_eq 1 "$("$ITEMFS" search "$STORE" "solar panel" 2>/dev/null | head -1 | cut -f1)" "plain output rank"
expect_fail "$ITEMFS" search "$STORE" '"unclosed'
grep -q "unbalanced" "$T/last.err" || fail "itemfs search does not say why"

# rm -rf of many items: searches agree at once, and the index is clean after
# the unmount (removes delete their full-text rows in batches).
mkdir -p "$MNT/items/bu"
for i in $(seq 1 300); do printf '{"title":"bulk %d","content":"quokka"}\n' "$i" >"$MNT/items/bu/bu$i.json"; done
assert_eq 300 "$(jq .total "$S/quokka.json")" "bulk items"
rm -rf "$MNT/items/bu"
assert_eq 0 "$(jq .total "$S/quokka.json")" "after rm -rf"
assert_eq 14 "$(jq -r .total "$S/tomatoes OR solar.json")" "others after rm -rf"

stop_mount
"$ITEMFS" fsck "$STORE" >"$T/fsck2.out" || fail "fsck after rm -rf: $(cat "$T/fsck2.out")"
if command -v sqlite3 >/dev/null; then  # deletes still pending were written at unmount
  assert_eq 0 "$(sqlite3 "$STORE/search.db" "SELECT count(*) FROM search_dead")" "dead rows after unmount"
fi
"$ITEMFS" reindex "$STORE" 2>/dev/null || fail "reindex"
"$ITEMFS" fsck "$STORE" --repair >/dev/null || fail "fsck --repair"
assert_eq "solar-title" "$("$ITEMFS" search "$STORE" zebracorn --json | jq -r '.hits[].id')" "after reindex"
