#!/usr/bin/env bash
# scratch files (names not ending in .json) under an fsx-like
# load. Random pwrite/pread/ftruncate/reopen with a fixed seed against an
# in-memory model, on rsync-, vim- and backup-style names in a shard and in
# items/ itself; every read must equal the model. Then: the scratch files
# never reach the store (stats.json, `itemfs stats`, sqlite3), search (a word
# only they hold finds nothing) or a backup archive, and are gone after a
# remount. ITEMFS_LONG=1 runs ten times the operations.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
ops=20000
[ -n "${ITEMFS_LONG:-}" ] && ops=200000
start_mount
mkdir "$MNT/items/sc"
printf '{"title":"the only item","content":"plain words"}\n' >"$MNT/items/sc/sc-real.json"

python3 - "$MNT" "$ops" >"$T/fsx" 2>&1 <<'PY' || true
import os, random, sys
mnt, ops = sys.argv[1], int(sys.argv[2])
names = ["sc/.sc-x.json.tmp", "sc/4913", "sc/sc-x.json~", "sc/.sc-x.json.swp",
         ".x.json.AbC123", "4913", "x.json~"]
rnd = random.Random(20240906)
WORD = b" xyzzyscratch "
MAX = 300_000
problems = []
model = {n: bytearray() for n in names}
fds = {}
def path(n):
    return f"{mnt}/items/{n}"
for n in names:
    fds[n] = os.open(path(n), os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
counts = {}
for i in range(ops):
    n = rnd.choice(names)
    m, fd = model[n], fds[n]
    op = rnd.choices(["write", "read", "truncate", "reopen", "stat"], [40, 35, 12, 5, 8])[0]
    counts[op] = counts.get(op, 0) + 1
    try:
        if op == "write":
            off = rnd.randrange(0, MAX)
            size = rnd.choice([1, 7, 512, 4096, 4097, 65536, rnd.randrange(1, 40000)])
            data = (WORD + bytes(rnd.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1))[:size]
            if os.pwrite(fd, data, off) != len(data):
                problems.append(f"op {i}: short write on {n}")
            if off > len(m):
                m.extend(b"\0" * (off - len(m)))
            m[off:off + len(data)] = data
        elif op == "read":
            off = rnd.randrange(0, max(1, len(m) + 1000))
            size = rnd.choice([1, 4096, 100000, rnd.randrange(1, 70000)])
            got = os.pread(fd, size, off)
            want = bytes(m[off:off + size])
            if got != want:
                k = next((j for j in range(min(len(got), len(want))) if got[j] != want[j]), min(len(got), len(want)))
                problems.append(f"op {i}: read {n} at {off}+{size}: {len(got)} bytes, expected {len(want)}, first difference at {off + k}")
        elif op == "truncate":
            size = rnd.choice([0, rnd.randrange(0, MAX), len(m) // 2, len(m) + rnd.randrange(1, 5000)])
            os.ftruncate(fd, size)
            if size < len(m):
                del m[size:]
            else:
                m.extend(b"\0" * (size - len(m)))
        elif op == "reopen":
            os.close(fd)
            fds[n] = os.open(path(n), os.O_RDWR)
        elif op == "stat":
            if os.fstat(fd).st_size != len(m) or os.stat(path(n)).st_size != len(m):
                problems.append(f"op {i}: size of {n} is {os.fstat(fd).st_size}, expected {len(m)}")
    except OSError as e:
        problems.append(f"op {i}: {op} on {n}: {e}")
    if len(problems) > 10:
        break
for n in names:
    os.close(fds[n])
    if open(path(n), "rb").read() != bytes(m := model[n]):
        problems.append(f"final content of {n} differs")
    os.makedirs(os.path.dirname(path(n)), exist_ok=True)
# Every name is still there for the checks that follow; the word is in each.
for n in names:
    with open(path(n), "ab") as f:
        f.write(WORD)
print(f"ops {counts}, sizes {[len(model[n]) for n in names]}", file=sys.stderr)
print("\n".join(problems))
print(f"done {len(problems)}")
PY
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died: $(tail -n 5 "$T/fsx")"
tail -n 1 "$T/fsx" | grep -q '^done 0$' || fail "$(head -n 20 "$T/fsx")"
grep '^ops' "$T/fsx" | sed 's/^/scratch: /'

# Listed while mounted, full POSIX files...
for n in sc/.sc-x.json.tmp sc/4913 sc/sc-x.json~ .x.json.AbC123 4913 x.json~; do
  [ -f "$MNT/items/$n" ] || fail "$n is not listed"
done
# ...but not in the store, the search index nor a backup.
assert_eq 1 "$(jq .items "$MNT/stats.json")" "stats.json items"
assert_eq 1 "$("$ITEMFS" stats "$STORE" | jq .items)" "itemfs stats items"
command -v sqlite3 >/dev/null || fail "sqlite3 is needed"
assert_eq "sc-real" "$(sqlite3 "file:$STORE/store.db?mode=ro" 'SELECT id FROM items' 2>&1)" "ids in store.db"
assert_eq "" "$(ls "$MNT/search/xyzzyscratch")" "search for a word only scratch files hold"
assert_eq 0 "$(jq .total "$MNT/search/xyzzyscratch.json")" "search total"
assert_eq 1 "$(jq .total "$MNT/search/plain.json")" "search still finds the item"
echo full >"$MNT/backups/ctl" || fail "backup: $(cat "$MNT/backups/status")"
archive=$(find "$MNT/backups" -name '*.tar.gz' | head -n 1)
[ -n "$archive" ] || fail "no archive listed"
tar -tzf "$archive" >"$T/members" || fail "tar tzf"
grep -q 'items/sc/sc-real.json' "$T/members" || fail "the item is not in the archive"
grep -E '4913|~$|\.tmp$|\.swp$|AbC123' "$T/members" && fail "a scratch file is in the archive"
tar -xzOf "$archive" | grep -q xyzzyscratch && fail "scratch bytes are in the archive"

# Gone after a remount; the item is untouched.
remount
assert_eq "sc-real.json" "$(ls -A "$MNT/items/sc")" "shard after remount"
assert_eq "sc" "$(ls -A "$MNT/items")" "items/ after remount"
assert_eq "plain words" "$(jq -r .content "$MNT/items/sc/sc-real.json")" "the item"
stop_mount
"$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
