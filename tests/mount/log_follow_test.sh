#!/usr/bin/env bash
# MNT/log is a log people can follow: its size is real, `tail -f MNT/log`
# prints new events as they happen, the events of earlier mounts are still
# there after a remount (STORE/log, 0600), and -o log_file=PATH with
# log_max_size=SIZE appends to PATH, moving it to PATH.1 when it is full.
source "$(dirname "$0")/lib.sh"
start_mount
echo '{"ok":true}' >"$MNT/items/fine.json"
# A refused write makes an event.
# A refused write makes an event (one python3 for all the names given).
refuse() { python3 -c 'import sys
for path in sys.argv[1:]:
    try:
        f = open(path, "w"); f.write("{"); f.close()
    except OSError: pass' "${@/#/$MNT/items/}"; }
# Waits up to 10 s for a line matching $1 in file $2.
wait_for_line() { for _ in $(seq 1 100); do grep -q "$1" "$2" && return 0; sleep 0.1; done; return 1; }
refuse first-refusal.json
wait_for_line first-refusal "$MNT/log"
grep -q "refused items/fi/first-refusal.json" "$MNT/log" || fail "no event for the refusal: $(cat "$MNT/log")"
assert_eq "$(cat "$MNT/log" | wc -c)" "$(stat -c %s "$MNT/log")" "the size of log is the bytes it reads"

# tail -f follows, also after a listing of the mount root (readdirplus gives
# the kernel attributes of log, which must not be cached).
ls -l "$MNT" >/dev/null
tail -n 0 -f "$MNT/log" >"$T/tail.out" 2>"$T/tail.err" &
tail_pid=$!
CLEANUP_EXTRA='kill $tail_pid 2>/dev/null || true'
sleep 1.5
refuse followed-refusal.json
wait_for_line followed-refusal "$T/tail.out" || true
grep -q "refused items/fo/followed-refusal.json" "$T/tail.out" ||
  fail "tail -f did not follow: [$(cat "$T/tail.out")] [$(cat "$T/tail.err")]"
if grep -q "first-refusal" "$T/tail.out"; then fail "tail -n 0 -f printed an old event"; fi
kill $tail_pid 2>/dev/null || true
wait $tail_pid 2>/dev/null || true

# The events outlive the mount.
assert_eq 600 "$(stat -c %a "$STORE/log")" "mode of STORE/log"
remount
grep -q "first-refusal" "$MNT/log" || fail "the last mount's events are gone after a remount"
grep -q "followed-refusal" "$STORE/log" || fail "STORE/log does not hold the events"

# -o log_file= and log_max_size=: the file is moved to .1 when full.
remount -o log_file="$T/events.log",log_max_size=2K
refuse $(seq -f 'many-%g.json' 1 40)
wait_for_line "discarded items/ma/many-40.json" "$T/events.log" || fail "the newest event is not in events.log"
[ -s "$T/events.log.1" ] || fail "events.log was never moved to events.log.1: $(ls -la "$T")"
size=$(stat -c %s "$T/events.log")
[ "$size" -lt 4096 ] || fail "events.log is $size bytes, past its limit"
cmp -s "$T/events.log" <(cat "$MNT/log") || fail "MNT/log does not read the log file"
grep -q "many-" "$T/events.log.1" || fail "events.log.1 holds no events"
if grep -q "many-" "$STORE/log"; then fail "events went to STORE/log despite log_file="; fi
