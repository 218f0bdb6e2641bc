#!/usr/bin/env bash
# The README's tour works when pasted: its shell block, run as written (only
# /tmp/itemfs-tour moved into the test's directory and build/ taken from the
# itemfs under test), creates what it uses, prints what its comments say
# (the note's title, 243 files with "sourdough", the refused cp and the
# previous version kept, the refusal in the log, a backup made through ctl)
# and unmounts.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v jq >/dev/null || fail "jq is needed"
tour=$T/tour
MNT=$tour/mnt  # the EXIT trap unmounts it should the tour stop halfway

# The first code block after "## A short tour".
awk '/^## A short tour/ {on=1} on && /^```/ {n++; next} on && n==1 {print} n==2 {exit}' "$ROOT/README.md" >"$T/tour.sh"
grep -q "itemfs mount store mnt" "$T/tour.sh" || fail "no tour found in README.md: $(head -c 300 "$T/tour.sh")"
grep -q "^export PATH=\$PWD/build:\$PATH$" "$T/tour.sh" || fail "the tour's first line changed: $(head -n 1 "$T/tour.sh")"
sed -i "s|/tmp/itemfs-tour|$tour|g; s|^export PATH=\$PWD/build:\$PATH$|export PATH=$(dirname "$ITEMFS"):\$PATH|" "$T/tour.sh"

(cd "$ROOT" && bash "$T/tour.sh") >"$T/out" 2>"$T/err" || true
mountpoint -q "$MNT" && fail "the tour left its mount behind"
grep -q "command not found\|No such file" "$T/err" && fail "the tour failed: $(cat "$T/err")"
grep -q "^Note 42 on sourdough$" "$T/out" || fail "jq of note-42: $(cat "$T/out")"
grep -q "^243$" "$T/out" || fail "grep -rl sourdough | wc -l is not 243: $(cat "$T/out")"
grep -q "^81$" "$T/out" || fail "the search's total is not 81: $(cat "$T/out")"
grep -q 'failed to close.*Invalid argument' "$T/err" || fail "the cp of a non-JSON file was not refused: $(cat "$T/err")"
grep -q '^{"title":"new"}$' "$T/out" || fail "the previous version was not kept: $(cat "$T/out")"
grep -q "refused items/my/my-first-item.json: invalid JSON at line 1, column 1" "$T/out" ||
  fail "the log's last line: $(cat "$T/out")"
grep -q '"items":501' "$T/out" || fail "stats.json: $(cat "$T/out")"
[ "$(ls "$tour/store/backups" | wc -l)" -ge 1 ] || fail "no backup made through ctl"
exit 0
