#!/usr/bin/env bash
# disk full. The store lives on a 20 MiB tmpfs the test
# mounts; it is filled through the mount with incompressible items.
#  - writes fail with ENOSPC (at write() when the staging file cannot grow,
#    at close() when the commit cannot), never EIO, and never a half item;
#  - nothing committed before is lost (cmp), overwrites refused for lack of
#    space keep the old version, the daemon keeps serving reads and stats;
#  - after `rm` of the filler items and of a file the test had put on the
#    same disk, writing works again, without a remount (removed items free
#    pages inside store.db for later items, not disk space: docs/USAGE.md);
#  - after a remount fsck is clean and every committed item is byte-equal.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
mkdir "$T/small"
mount -t tmpfs -o size=20m tmpfs "$T/small" || fail "cannot mount a tmpfs (root needed)"
CLEANUP_EXTRA='umount -l "$T/small"'
STORE=$T/small/store
# Another user of the disk, removed once it is full.
head -c $((4 << 20)) /dev/urandom >"$T/small/other-file"

make_items "$T/src" 200
start_mount
cp -a "$T/src/." "$MNT/items/" || fail "cp of the first items"
diff -r "$T/src" "$MNT/items" >/dev/null || fail "first items differ"

python3 - "$MNT" "$T/src" "$T/small" >"$T/report" 2>&1 <<'PY' || true
import base64, errno, json, os, sys, time
mnt, src, small = sys.argv[1:4]
items = f"{mnt}/items"
problems, seen = [], {}
committed = {}  # path -> bytes, for every write whose close() succeeded
rnd = __import__("random").Random(6)

def body(n, tag):
    # base64 of random bytes: zlib cannot shrink it much.
    raw = rnd.randbytes(n)
    return json.dumps({"tag": tag, "blob": base64.b64encode(raw).decode()}).encode() + b"\n"

def write(path, data):
    """Returns (stage, errno): stage is 'open', 'write' or 'close'."""
    try:
        f = open(path, "wb")
    except OSError as e:
        return "open", e.errno
    try:
        for k in range(0, len(data), 65536):
            f.write(data[k:k + 65536])
    except OSError as e:
        try:
            f.close()
        except OSError:
            pass
        return "write", e.errno
    try:
        f.close()
    except OSError as e:
        return "close", e.errno
    return "close", 0

def disk_free():
    st = os.statvfs(small)
    return st.f_bavail * st.f_frsize

def note(stage, err):
    key = f"{stage}:{errno.errorcode.get(err, err)}"
    seen[key] = seen.get(key, 0) + 1

def fill(prefix, size, limit):
    failures = 0
    for n in range(limit):
        path = f"{items}/fi/fi-{prefix}{n:04d}.json"
        data = body(size, f"{prefix}{n}")
        stage, err = write(path, data)
        note(stage, err)
        if err == 0:
            committed[path] = data
        elif err != errno.ENOSPC:
            problems.append(f"{path}: {stage} failed with {errno.errorcode.get(err, err)}, not ENOSPC")
        else:
            failures += 1
            if failures >= 8:
                return n
    problems.append(f"{prefix}: the disk never filled ({disk_free()} bytes free)")
    return limit

os.makedirs(f"{items}/fi", exist_ok=True)
# Big items first, then smaller ones into the last gaps.
fill("big", 512 << 10, 200)
fill("mid", 32 << 10, 400)
fill("small", 1 << 10, 400)
print(f"free after filling: {disk_free()} bytes; outcomes {seen}", file=sys.stderr)

def check_all(when):
    for root, _, files in os.walk(src):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), src)
            try:
                if open(os.path.join(root, name), "rb").read() != open(f"{items}/{rel}", "rb").read():
                    problems.append(f"{when}: {rel} differs")
            except OSError as e:
                problems.append(f"{when}: {rel}: {e}")
    for path, data in committed.items():
        try:
            if open(path, "rb").read() != data:
                problems.append(f"{when}: {path} differs from what was committed")
        except OSError as e:
            problems.append(f"{when}: {path}: {e}")
check_all("full")

# While full: overwriting an item with something bigger fails with ENOSPC
# and keeps the old version; reads, stats and listings still work.
victim = sorted(committed)[0]
stage, err = write(victim, body(256 << 10, "bigger"))
if err not in (0, errno.ENOSPC):
    problems.append(f"overwrite while full: {stage} gave {errno.errorcode.get(err, err)}")
elif err == 0:
    problems.append("overwrite while full succeeded: the disk was not full")
if open(victim, "rb").read() != committed[victim]:
    problems.append("overwrite while full changed the item")
try:
    json.load(open(f"{mnt}/stats.json"))
    os.listdir(f"{items}/fi")
except OSError as e:
    problems.append(f"stats or ls while full: {e}")

# Free space through the mount and on the disk; writing must work again.
for path in sorted(committed):
    if "/big" in path or "/mid" in path:
        os.unlink(path)
        del committed[path]
os.unlink(f"{small}/other-file")
time.sleep(0.2)
print(f"free after rm: {disk_free()} bytes", file=sys.stderr)
after = {}
for n in range(20):
    path = f"{items}/fi/fi-again{n:02d}.json"
    data = body(64 << 10, f"again{n}")
    stage, err = write(path, data)
    if err:
        after[f"{stage}:{errno.errorcode.get(err, err)}"] = after.get(f"{stage}:{errno.errorcode.get(err, err)}", 0) + 1
    else:
        committed[path] = data
if after:
    problems.append(f"after freeing space, writes still fail: {after}; {disk_free()} bytes free")
check_all("after freeing")
json.dump({p: d.decode() for p, d in committed.items()}, open(f"{src}/../committed.json", "w"))
if seen.get("close:ENOSPC", 0) + seen.get("write:ENOSPC", 0) == 0:
    problems.append(f"no write ever failed with ENOSPC: {seen}")
print("\n".join(problems))
print(f"done {len(problems)}")
PY
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died: $(tail -n 5 "$T/report")"
tail -n 1 "$T/report" | grep -q '^done 0$' || fail "$(head -n 40 "$T/report")"
grep -E '^free|outcomes' "$T/report" | sed 's/^/diskfull: /'
[ "$(jq .items "$MNT/stats.json")" -eq $(( $(jq length "$T/committed.json") + 200 )) ] ||
  fail "stats.json items: $(jq .items "$MNT/stats.json"), expected $(( $(jq length "$T/committed.json") + 200 ))"

# A remount and fsck: everything committed is there, byte for byte.
remount
diff -r "$T/src" "$MNT/items" -x fi >/dev/null || fail "the first items differ after remount"
python3 - "$T/committed.json" <<'PY' || fail "committed items differ after remount"
import json, sys
for path, data in json.load(open(sys.argv[1])).items():
    assert open(path, "rb").read() == data.encode(), path
PY
stop_mount
"$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
