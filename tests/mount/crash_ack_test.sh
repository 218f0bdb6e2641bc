#!/usr/bin/env bash
# A write acknowledged by close() survives SIGKILL of the daemon at any
# moment. One writer copies items in one at a time (open, write, close),
# distinct valid JSON documents of ~100 B to ~200 KB, many of them replacing
# an earlier version of the same id, and unlinks one item it wrote shortly
# before; after each close() or unlink() that returned 0 it appends the id
# and the SHA-256 of the bytes (or "removed") to a ledger on local disk,
# fsync'd. The daemon is killed at a random moment, the writer fails, the
# store is mounted again, and through the mount:
#   - every acknowledged item reads back byte-exact, at its last acknowledged
#     version; an item whose next write (or unlink) was in flight at the kill
#     is either that version or the in-flight one, never a mix or invalid JSON;
#   - an acknowledged unlink stays: the removed item is not brought back;
#   - no item is there that was never written;
# and `itemfs fsck` is clean after the unmount. 3 cycles (100 with
# ITEMFS_LONG=1) on one store, each cycle's writes on top of the last.
# crash_cp_test kills during `cp -r` and checks items are absent or complete;
# fault_crash_test kills under several writers and checks each item is some
# version once written: neither knows which writes were acknowledged.
source "$(dirname "$0")/lib.sh"
cycles=3
[ -n "${ITEMFS_LONG:-}" ] && cycles=100
# A random seed, printed, so a failure's writes and kill times can be replayed.
seed=${ITEMFS_CRASH_SEED:-$((($(date +%s%N) / 1000) % 1000000))}
echo "crash_ack: seed $seed, $cycles cycles"
RANDOM=$seed
LEDGER=$T/ledger

# The writer: 200 ids in 4 shards; each write picks one at random (at first
# mostly new ids, later mostly replacements). Ledger lines, in order:
#   try <id> <sha256>|removed   before the open (or the unlink)
#   ack <id> <sha256>|removed   after close() (or unlink()) returned 0; fsync'd
# It runs until an operation fails (the daemon is gone).
cat >"$T/writer.py" <<'PY'
import hashlib, json, os, random, sys
mnt, ledger, seed, cycle = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed * 1000 + cycle)
ids = [f"{s}{n:03d}" for s in ("ka", "kb", "kc", "kd") for n in range(50)]
log = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

def note(kind, id_, what, sync):
    os.write(log, f"{kind} {id_} {what}\n".encode())
    if sync:
        os.fsync(log)

def path(id_):
    return os.path.join(mnt, "items", id_[:2], id_ + ".json")

written = []  # ids acknowledged in this cycle, newest last
removed = None
rm_at = rnd.randrange(3, 12)
for op in range(1, 1000000):
    if op == rm_at:
        removed = written[-1]
        note("try", removed, "removed", False)
        os.unlink(path(removed))
        note("ack", removed, "removed", True)
        continue
    id_ = rnd.choice(ids)
    while id_ == removed:
        id_ = rnd.choice(ids)
    # Sizes spread evenly on a log scale from ~100 B to ~200 KB.
    size = int(100 * 2000 ** rnd.random())
    doc = {"id": id_, "cycle": cycle, "op": op, "text": rnd.randbytes(size // 2).hex()}
    if op % 3 == 0:
        doc["parts"] = [{"n": k, "w": rnd.choice(["alpha", "beta", "gamma"])} for k in range(op % 17)]
    data = (json.dumps(doc, indent=op % 2 or None) + "\n").encode()
    sha = hashlib.sha256(data).hexdigest()
    note("try", id_, sha, False)
    fd = os.open(path(id_), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)  # the acknowledgement: close() returned 0
    note("ack", id_, sha, True)
    written.append(id_)
PY

# Reads every item through the mount and checks it against the ledger; then
# writes down what it found ("seen" lines), so that the next cycle starts
# from what is known. Prints "<acked> <removed>" counts of this cycle.
cat >"$T/check.py" <<'PY'
import hashlib, json, os, sys
mnt, ledger, cycle = sys.argv[1], sys.argv[2], sys.argv[3]
allowed, acked_now, removed_now, in_cycle = {}, 0, 0, False
with open(ledger) as f:
    for line in f:
        parts = line.split()
        if parts[0] == "cycle":
            in_cycle = parts[1] == cycle
            continue
        kind, id_, what = parts
        if kind == "try":  # in flight until acknowledged: either may be there
            allowed.setdefault(id_, {"absent"}).add("absent" if what == "removed" else what)
        else:  # ack, seen
            allowed[id_] = {"absent" if what == "removed" else what}
            if kind == "ack" and in_cycle:
                acked_now += 1
                removed_now += what == "removed"
items = os.path.join(mnt, "items")
found = {}
for d, _, files in os.walk(items):
    for name in files:
        p = os.path.join(d, name)
        data = open(p, "rb").read()
        id_ = name[:-len(".json")]
        if not name.endswith(".json") or id_ not in allowed:
            sys.exit(f"{os.path.relpath(p, items)} was never written")
        found[id_] = data
bad = []
for id_, ok in sorted(allowed.items()):
    data = found.get(id_)
    got = "absent" if data is None else hashlib.sha256(data).hexdigest()
    if got in ok:
        continue
    if got == "absent":
        bad.append(f"{id_}: acknowledged, missing after the remount")
    elif "absent" in ok and len(ok) == 1:
        bad.append(f"{id_}: acknowledged removal undone, the item is back")
    else:
        try:
            json.loads(data)
            what = "valid JSON, but no version acknowledged or in flight"
        except ValueError as e:
            what = f"not valid JSON ({e})"
        bad.append(f"{id_}: {len(data)} bytes, {what}")
if bad:
    sys.exit("\n".join(bad[:20]) + (f"\n... {len(bad)} in all" if len(bad) > 20 else ""))
with open(ledger, "a") as f:
    for id_ in sorted(allowed):
        f.write(f"seen {id_} {hashlib.sha256(found[id_]).hexdigest() if id_ in found else 'removed'}\n")
print(acked_now, removed_now)
PY

start_mount
for s in ka kb kc kd; do mkdir "$MNT/items/$s"; done
total=0
for cycle in $(seq 1 "$cycles"); do
  echo "cycle $cycle" >>"$LEDGER"
  python3 "$T/writer.py" "$MNT" "$LEDGER" "$seed" "$cycle" 2>"$T/writer.err" &
  WRITER=$!
  # The kill comes after the writer's unlink was acknowledged (so that a
  # replay could resurrect it), then after a random delay of 0-1.5 s.
  for _ in $(seq 1 1200); do
    [ "$(awk -v c="cycle $cycle" '$0 == c {on = 1; next} /^cycle/ {on = 0} on && /^ack .* removed$/' "$LEDGER")" ] && break
    kill -0 "$WRITER" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$WRITER" 2>/dev/null || fail "cycle $cycle: the writer stopped before the kill: $(tail -n 5 "$T/writer.err")"
  delay_ms=$((RANDOM % 1500))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill_mount
  if wait "$WRITER"; then fail "cycle $cycle: the writer did not fail when the daemon was killed"; fi
  start_mount
  counts=$(python3 "$T/check.py" "$MNT" "$LEDGER" "$cycle") ||
    fail "cycle $cycle (killed ${delay_ms} ms after the unlink): items read back after SIGKILL differ from the acknowledged writes (above)"
  read -r acked removed <<<"$counts"
  [ "$removed" -ge 1 ] || fail "cycle $cycle: no acknowledged unlink"
  stop_mount
  "$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "cycle $cycle: fsck: $(cat "$T/fsck")"
  total=$((total + acked))
  [ "$cycle" -lt "$cycles" ] && start_mount
done
echo "crash_ack: $cycles SIGKILLs, $total acknowledged writes and unlinks checked after them"
