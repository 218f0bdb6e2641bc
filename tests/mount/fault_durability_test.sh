#!/usr/bin/env bash
# durability. With -o sync=full (and with the default), data
# from a successful fsync() survives a SIGKILL of the daemon right after it:
# a writer fsyncs new items and an overwrite, keeps the files open (so no
# close() commits anything later), and the daemon is killed as soon as the
# last fsync returned. After a remount every fsynced version is there, byte
# for byte; bytes written after the last fsync and never closed are not (the
# previous version stays), and fsck is clean. A power loss is not simulated
# here; docs/USAGE.md says what each mode promises for it.
source "$(dirname "$0")/lib.sh"
rounds=5
[ -n "${ITEMFS_LONG:-}" ] && rounds=50

for mode in full normal; do
  for round in $(seq 1 "$rounds"); do
    rm -rf "$STORE" "$T/synced" "$T/expect"
    mkdir -p "$T/expect"
    if [ "$mode" = full ]; then start_mount -o sync=full; else start_mount; fi
    mkdir -p "$MNT/items/du"
    printf '{"v":"old"}\n' >"$MNT/items/du/du-over.json"
    printf '{"v":"old"}\n' >"$MNT/items/du/du-unsynced.json"
    python3 - "$MNT" "$T/synced" "$T/expect" "$round" <<'PY' &
import json, os, sys, time
mnt, marker, expect, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fds = []
def put(name, data, sync):
    fd = os.open(f"{mnt}/items/du/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    if sync:
        os.fsync(fd)
        open(f"{expect}/{name}", "wb").write(data)
    fds.append(fd)  # never closed before the kill
for k in range(20 + seed):
    put(f"du-{k:03d}.json", json.dumps({"k": k, "pad": "x" * (k * 997 % 5000)}).encode() + b"\n", True)
put("du-over.json", b'{"v":"new, fsynced"}\n', True)
put("du-unsynced.json", b'{"v":"new, never synced"}\n', False)
open(f"{expect}/du-unsynced.json", "wb").write(b'{"v":"old"}\n')
open(marker, "w").close()
time.sleep(60)
PY
    writer=$!
    for _ in $(seq 1 6000); do [ -e "$T/synced" ] && break; sleep 0.01; done
    [ -e "$T/synced" ] || fail "$mode: the writer did not finish"
    kill_mount
    kill "$writer" 2>/dev/null || true
    wait "$writer" 2>/dev/null || true
    "$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "$mode round $round: fsck: $(cat "$T/fsck")"
    start_mount
    for f in "$T/expect"/*; do
      cmp -s "$f" "$MNT/items/du/$(basename "$f")" ||
        fail "$mode round $round: $(basename "$f") after SIGKILL: [$(head -c 80 "$MNT/items/du/$(basename "$f")" 2>&1)]"
    done
    stop_mount
  done
done
echo "durability: $rounds SIGKILLs right after fsync in each of sync=full and sync=normal"
