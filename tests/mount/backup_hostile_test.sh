#!/usr/bin/env bash
# Backup jobs never hang on what they find in the backup directory, and every
# job ends when the daemon is asked to exit:
#  - verify and restore of a backup whose archive is a symbolic link to
#    /dev/zero, or a FIFO, fail at once (EIO), status says the archive is not
#    a regular file, and the next ctl command works;
#  - a manifest.json that is a FIFO does not hang listing backups/;
#  - SIGTERM during a job: the daemon cancels it and exits within seconds.
# Every step runs under `timeout`, so a hang is a failure, not a stuck run.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"

B=$MNT/backups
ctl() { timeout -k 2 20 sh -c "echo '$1' > '$B/ctl'"; }

make_items "$T/src" 20
start_mount
rsync -a "$T/src/" "$MNT/items/"
ctl full || fail "full backup"
ID=$(jq -r .last.id "$B/status")
A=$STORE/backups/$ID/$ID.tar.gz
mv "$A" "$T/good.tar.gz"

for kind in zero fifo; do
  rm -f "$A"
  if [ $kind = zero ]; then ln -s /dev/zero "$A"; else mkfifo "$A"; fi
  for cmd in "verify $ID" "restore $ID"; do
    start=$(date +%s)
    rc=0
    ctl "$cmd" 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] || fail "$cmd with a $kind archive succeeded"
    [ $rc -ne 124 ] && [ $rc -ne 137 ] || fail "$cmd with a $kind archive hung (killed after 20 s)"
    [ $(($(date +%s) - start)) -lt 10 ] || fail "$cmd with a $kind archive took $(($(date +%s) - start)) s"
    grep -q "Input/output error\\|I/O error" "$T/err" || fail "$cmd with a $kind archive: $(cat "$T/err")"
    timeout 5 jq -e '.state == "idle" and .last.ok == false and .last.error == "EIO"' "$B/status" >/dev/null ||
      fail "status after $cmd ($kind): $(timeout 5 cat "$B/status")"
    timeout 5 jq -r .last.message "$B/status" | grep -q "not a regular file" ||
      fail "status does not say why ($kind): $(timeout 5 jq -r .last.message "$B/status")"
  done
  # The next command works (no job is stuck, ctl opens).
  ctl incremental || fail "incremental after the $kind archive: $(timeout 5 cat "$B/status")"
  timeout 5 ls "$B/$ID" >/dev/null || fail "listing backups/$ID ($kind)"
done
rm -f "$A"
mv "$T/good.tar.gz" "$A"
ctl "verify $ID" || fail "verify of the restored archive: $(jq -r .last.message "$B/status")"

# A manifest.json that is a FIFO: the backup is not listed, nothing hangs.
M=$STORE/backups/$ID/manifest.json
mv "$M" "$T/manifest.json"
mkfifo "$M"
timeout -k 2 10 ls "$B" >"$T/ls" || fail "ls backups/ with a FIFO manifest.json hung or failed"
grep -qx "$ID" "$T/ls" && fail "a backup whose manifest.json is a FIFO is listed"
timeout -k 2 10 cat "$MNT/stats.json" >/dev/null || fail "stats.json with a FIFO manifest.json"
ctl "verify all" 2>/dev/null || true
timeout 5 jq -e '.state == "idle"' "$B/status" >/dev/null || fail "verify all with a FIFO manifest.json"
rm "$M"
mv "$T/manifest.json" "$M"
stop_mount

# SIGTERM while a job may be running (a `verify all` of a few hundred items,
# sent as soon as the ctl write is under way): the daemon cancels the job
# rather than waiting for it, exits within 10 s and leaves no mount. (That
# cancel() ends a job at once is held and checked in
# tests/unit/backup_progress_test.cpp.)
make_items "$T/more" 600
"$ITEMFS" import "$STORE" "$T/more" >/dev/null 2>&1
"$ITEMFS" backup "$STORE" full >/dev/null
start_mount
(timeout -k 2 60 sh -c "echo 'verify all' > '$B/ctl'" 2>/dev/null || true) &
job=$!
for _ in $(seq 1 200); do
  jq -e '.state == "running" or .last.job == "verify"' "$B/status" >/dev/null 2>&1 && break
  sleep 0.01
done
kill -TERM "$DAEMON_PID"
exited=
for _ in $(seq 1 100); do  # 10 s
  if ! kill -0 "$DAEMON_PID" 2>/dev/null; then exited=1; break; fi
  sleep 0.1
done
[ -n "$exited" ] || fail "the daemon did not exit within 10 s of SIGTERM during a job"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=
wait "$job" || true
mountpoint -q "$MNT" && fail "still mounted after SIGTERM"
exit 0
