#!/usr/bin/env bash
# Concurrent fsyncs share syncs: eight writers, each writing 100 items and
# fsync()ing every one before its close(), all succeed, and the store counts
# at most one sync ("syncs" in stats.json) per 4 fsync() calls. Then the
# directory barrier covers other processes' writes: items closed without an
# fsync by several writers are all in the store (committed) once an fsync()
# of their shard directory (`sync DIR`) returned 0, which counts a sync.
# (fsync_test checks one fsync at a time: an item's, items/'s, a shard's,
# other directories', a refused item's, under sync=full.)
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
command -v sqlite3 >/dev/null || fail "sqlite3 is needed"
writers=8
per_writer=100
start_mount
syncs() { jq .syncs "$MNT/stats.json"; }
for w in $(seq 1 $writers); do mkdir "$MNT/items/f$w"; done
mkdir "$MNT/items/gb"
before=$(syncs)

# Each writer waits for the start file, so that they all run at once.
cat >"$T/writer.py" <<'PY'
import json, os, sys, time
mnt, w, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.005)
for i in range(n):
    id_ = f"f{w}{i:04d}"
    data = json.dumps({"id": id_, "writer": int(w), "text": "fsync " * (50 + 37 * i % 500)}).encode()
    fd = os.open(os.path.join(mnt, "items", f"f{w}", id_ + ".json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
PY
pids=()
for w in $(seq 1 $writers); do
  python3 "$T/writer.py" "$MNT" "$w" "$per_writer" "$T/go" 2>"$T/writer$w.err" &
  pids+=($!)
done
touch "$T/go"
for w in $(seq 1 $writers); do
  wait "${pids[$((w - 1))]}" || fail "writer $w: $(tail -n 3 "$T/writer$w.err")"
done
fsyncs=$((writers * per_writer))
after=$(syncs)
n=$(sqlite3 "$STORE/store.db" "SELECT count(*) FROM items WHERE id GLOB 'f[1-8][0-9][0-9][0-9][0-9]'")
assert_eq "$fsyncs" "$n" "fsync'd items in the store"
used=$((after - before))
echo "fsync_shared: $fsyncs fsync() calls from $writers writers made $used syncs ($(awk -v a=$fsyncs -v b=$used 'BEGIN {printf "%.2f", b ? a / b : 0}') fsyncs per sync)"
[ "$used" -ge 1 ] || fail "$fsyncs fsync() calls made no sync"
[ $((used * 4)) -le "$fsyncs" ] || fail "$fsyncs fsync() calls made $used syncs: more than one per 4"

# The directory barrier: four writers close items without fsync, then one
# fsync of the shard directory commits and syncs them all.
for w in 1 2 3 4; do
  (for i in $(seq 1 25); do
    printf '{"id":"gb%d%03d","n":%d}\n' "$w" "$i" "$i" >"$MNT/items/gb/gb$w$(printf %03d "$i").json" || exit 1
  done) &
  pids[$w]=$!
done
for w in 1 2 3 4; do wait "${pids[$w]}" || fail "writer $w of items without fsync"; done
before=$(syncs)
sync "$MNT/items/gb" || fail "fsync of the shard directory"
after=$(syncs)
[ "$after" -gt "$before" ] || fail "fsync of the shard directory counted no sync ($before before, $after after)"
assert_eq 100 "$(sqlite3 "$STORE/store.db" "SELECT count(*) FROM items WHERE id GLOB 'gb*'")" \
  "items closed before the directory fsync, in the store after it"
exit 0
