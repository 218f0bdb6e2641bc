#!/usr/bin/env bash
# SIGKILL of the daemon at random moments while several
# writers copy, rename (scratch -> item, as rsync does) and delete items.
# 20 cycles (200 with ITEMFS_LONG=1). After each kill `itemfs fsck` is clean
# and every item is byte-equal to one of the versions written to it (all
# versions are kept in $T/versions) or absent. Then a SIGKILL during a full
# backup (no half-written backup is ever listed; the listed ones verify) and
# during a restore (the store is the old state or the restored one).
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
cycles=20
[ -n "${ITEMFS_LONG:-}" ] && cycles=200
V=$T/versions
RANDOM=6  # a fixed seed for the kill times and the writers' choices

# 40 ids in 4 shards, 6 versions each; two ids have versions over 1 MiB
# (several chunks). sums: "<id> <sha256>" for every version.
python3 - "$V" <<'PY'
import hashlib, json, os, random, sys
v = sys.argv[1]
rnd = random.Random(1)
with open(f"{v}.sums", "w") as sums:
    for s in ("ca", "cb", "cc", "cd"):
        for n in range(10):
            i = f"{s}{n:02d}"
            os.makedirs(f"{v}/{i}", exist_ok=True)
            for k in range(6):
                size = (1 << 20) + 5000 * k if n == 0 and s in ("ca", "cb") else rnd.randrange(10, 20000)
                words = " ".join(rnd.choice(["alpha", "beta", "gamma", "delta", i]) for _ in range(size // 6))
                data = json.dumps({"id": i, "version": k, "content": words}).encode() + b"\n"
                open(f"{v}/{i}/{k}.json", "wb").write(data)
                print(i, hashlib.sha256(data).hexdigest(), file=sums)
PY
ids=($(ls "$V"))

writer_pids=()
start_writers() {
  local w
  for w in 1 2 3; do  # cp onto the item
    (
      RANDOM=$((w * 1000 + cycle))
      while :; do
        id=${ids[RANDOM % ${#ids[@]}]}
        cp "$V/$id/$((RANDOM % 6)).json" "$MNT/items/${id:0:2}/$id.json" 2>/dev/null || true
      done
    ) &
    writer_pids+=($!)
  done
  for w in 4 5; do  # write a scratch file, rename it onto the item
    (
      RANDOM=$((w * 1000 + cycle))
      while :; do
        id=${ids[RANDOM % ${#ids[@]}]}
        tmp="$MNT/items/${id:0:2}/.$id.json.$w$RANDOM"
        cp "$V/$id/$((RANDOM % 6)).json" "$tmp" 2>/dev/null && mv -f "$tmp" "$MNT/items/${id:0:2}/$id.json" 2>/dev/null || true
      done
    ) &
    writer_pids+=($!)
  done
  (  # delete
    RANDOM=$((6000 + cycle))
    while :; do
      id=${ids[RANDOM % ${#ids[@]}]}
      rm -f "$MNT/items/${id:0:2}/$id.json" 2>/dev/null || true
      sleep 0.0$((RANDOM % 5))
    done
  ) &
  writer_pids+=($!)
}
stop_writers() {
  local p
  for p in "${writer_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${writer_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  writer_pids=()
}

# Every exported item must be a version written to its id.
check_store() {  # $1: what happened
  "$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "$1: fsck: $(cat "$T/fsck")"
  rm -rf "$T/export"
  "$ITEMFS" export "$STORE" "$T/export" >/dev/null 2>&1 || fail "$1: export"
  (cd "$T/export" && find . -name '*.json' -exec sha256sum {} +) |
    awk '{n = split($2, p, "/"); id = p[n]; sub(/\.json$/, "", id); print id, $1}' >"$T/present"
  bad=$(awk 'NR == FNR {ok[$1 " " $2] = 1; next} !(($1 " " $2) in ok)' "$V.sums" "$T/present")
  [ -z "$bad" ] || fail "$1: items that are no version written to them: $bad"
  present=$(wc -l <"$T/present")
}

mkdir -p "$STORE"
total_present=0
for cycle in $(seq 1 "$cycles"); do
  start_mount
  [ "$cycle" -eq 1 ] && for s in ca cb cc cd; do mkdir -p "$MNT/items/$s"; done
  start_writers
  sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
  kill_mount
  stop_writers
  check_store "cycle $cycle"
  total_present=$((total_present + present))
done
echo "crash: $cycles SIGKILLs under 6 writers, $((total_present / cycles)) items present on average"

# SIGKILL during a full backup: no half-written backup is listed, and each
# listed one verifies. Done a few times at different moments.
start_mount
for id in "${ids[@]}"; do cp "$V/$id/0.json" "$MNT/items/${id:0:2}/$id.json"; done
for k in 1 2 3 4 5; do
  (echo full >"$MNT/backups/ctl") 2>/dev/null &
  bpid=$!
  sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
  kill_mount
  wait "$bpid" 2>/dev/null || true
  start_mount
  for b in $(ls "$MNT/backups"); do
    case "$b" in ctl | status) continue ;; esac
    case "$b" in .*) fail "a temporary backup is listed: $b" ;; esac
    echo "verify $b" >"$MNT/backups/ctl" || fail "listed backup $b does not verify: $(cat "$MNT/backups/status")"
  done
done
nbackups=$(ls "$MNT/backups" | grep -cvx 'ctl\|status' || true)

# SIGKILL during a restore: the store is the old state or the backup's.
echo full >"$MNT/backups/ctl" || fail "backup: $(cat "$MNT/backups/status")"
backup=$(ls "$MNT/backups" | grep -vx 'ctl\|status' | sort | tail -n 1)
stop_mount
"$ITEMFS" export "$STORE" "$T/state_backup" >/dev/null 2>&1
start_mount
for id in "${ids[@]}"; do cp "$V/$id/3.json" "$MNT/items/${id:0:2}/$id.json"; done
rm "$MNT/items/ca/ca05.json"
stop_mount
"$ITEMFS" export "$STORE" "$T/state_before" >/dev/null 2>&1
# How long a restore takes, to kill within it.
start_mount
t0=$(date +%s%N)
echo "restore $backup clear" >"$MNT/backups/ctl" || fail "restore: $(cat "$MNT/backups/status")"
restore_ms=$((($(date +%s%N) - t0) / 1000000))
for id in "${ids[@]}"; do cp "$V/$id/3.json" "$MNT/items/${id:0:2}/$id.json"; done
rm "$MNT/items/ca/ca05.json"
stop_mount
outcomes=""
for k in 1 2 3 4 5 6 7 8; do
  start_mount
  (echo "restore $backup clear" >"$MNT/backups/ctl") 2>/dev/null &
  rpid=$!
  sleep "$(awk -v ms=$((RANDOM % (restore_ms * 3 / 2 + 1))) 'BEGIN {printf "%.3f", ms / 1000}')"
  kill_mount
  wait "$rpid" 2>/dev/null || true
  check_store "SIGKILL during restore $k"
  if diff -r "$T/export" "$T/state_backup" >/dev/null; then
    outcomes+=" restored"
    # Back to the old state for the next round.
    start_mount
    for id in "${ids[@]}"; do cp "$V/$id/3.json" "$MNT/items/${id:0:2}/$id.json"; done
    rm "$MNT/items/ca/ca05.json"
    stop_mount
  elif diff -r "$T/export" "$T/state_before" >/dev/null; then
    outcomes+=" old"
  else
    fail "after SIGKILL during restore the store is neither the old state nor the backup's: $(diff -rq "$T/export" "$T/state_before" | head -5)"
  fi
done
echo "crash: $nbackups complete backups after 5 SIGKILLs during backups; a restore takes ${restore_ms} ms; restores killed:$outcomes"
