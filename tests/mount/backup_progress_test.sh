#!/usr/bin/env bash
# Progress of `itemfs backup`: on a terminal (a pseudo-terminal made by
# script) every long verb (full, incremental, verify, restore) draws one
# updating line on stderr with done/total, percent and the phase; through a
# pipe nothing of it is printed; stdout gets one JSON summary of the job,
# also with --json, and `backup list --json` one JSON array.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
command -v script >/dev/null || fail "script (util-linux) is needed"

make_items "$T/src" 300
"$ITEMFS" import "$STORE" "$T/src" >/dev/null 2>&1

on_tty() {  # the words of `itemfs backup STORE ...`; output with \r as newlines in $T/tty
  script -qec "$ITEMFS backup $STORE $*" /dev/null </dev/null | tr '\r' '\n' >"$T/tty" || true
}
progress_line() {  # job phase
  grep -q "^backup $1 .*[0-9]% .* of .*, $2" "$T/tty" || fail "no progress line for $1 ($2): $(head -c 600 "$T/tty")"
}

on_tty full
progress_line full "writing archive"
ID=$(grep -o '"id": "[^"]*"' "$T/tty" | head -n 1 | cut -d '"' -f 4)
[ -d "$STORE/backups/$ID" ] || fail "the backup on a terminal was not written: $ID"
on_tty verify "$ID"
progress_line verify "verifying"
on_tty restore "$ID"
progress_line restore "restoring"

# Through a pipe: no progress, the summary on stdout.
echo '{"v":"changed"}' >"$T/src/$(ls "$T/src" | head -n 1)/changed.json"
"$ITEMFS" import "$STORE" "$T/src" >/dev/null 2>&1
"$ITEMFS" backup "$STORE" incremental >"$T/out" 2>"$T/err" | cat || fail "incremental through a pipe"
[ -s "$T/err" ] && fail "progress or noise on stderr through a pipe: $(head -c 300 "$T/err")"
jq -e '.ok == true and .job == "incremental"' "$T/out" >/dev/null || fail "summary: $(cat "$T/out")"
"$ITEMFS" backup --json "$STORE" verify all 2>"$T/err" | jq -e '.ok == true and .job == "verify"' >/dev/null ||
  fail "--json summary of verify all"
[ -s "$T/err" ] && fail "stderr of verify --json through a pipe: $(head -c 300 "$T/err")"
"$ITEMFS" backup "$STORE" list --json | jq -e 'length == 2 and .[1].kind == "incremental"' >/dev/null ||
  fail "list --json"
exit 0
