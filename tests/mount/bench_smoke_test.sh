#!/usr/bin/env bash
# Smoke test of scripts/bench: 500 documents of the real corpus (made by
# scripts/corpus --limit 500; the .deb downloads are cached), all four
# targets (passthrough_ll on its multi-threaded and on its single-threaded
# loop), and a check that the JSON it writes is complete and well formed.
# No timing is asserted.  Needs root (drop_caches) and Debian's apt sources.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
ITEMFS=${ITEMFS:-$repo/build/itemfs}
base=${ITEMFS_TEST_TMP:-/tmp}
mkdir -p "$base"
tmp=$(mktemp -d "$base/bench_smoke.XXXXXX")

cleanup() {
  # scripts/bench unmounts what it mounted; this is the safety net.
  while read -r _ mp _; do
    case "$mp" in "$tmp"/*) fusermount3 -u "$mp" 2>/dev/null || fusermount3 -uz "$mp" || true ;; esac
  done < /proc/mounts
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "bench_smoke: ITEMFS=$ITEMFS tmp=$tmp"
ITEMFS=$ITEMFS /usr/bin/python3 "$repo/scripts/bench" --docs 500 \
  --out "$tmp/r.json" --workdir "$tmp/work" --plot "$tmp/ratios.png" | tee "$tmp/bench.out"

# Nothing of ours may stay mounted.
if grep -q " $tmp/" /proc/mounts; then
  echo "bench_smoke: FAIL: mounts left behind:"; grep " $tmp/" /proc/mounts
  exit 1
fi

/usr/bin/python3 - "$tmp/r.json" "$ITEMFS" <<'EOF'
import json, os, sys

path, itemfs = sys.argv[1], sys.argv[2]
r = json.load(open(path))
fails = []

def need(cond, msg):
    if not cond:
        fails.append(msg)

m = r["meta"]
need(m["docs"] == 500, f"meta.docs is {m['docs']}, not 500")
need(m["runs"] >= 3, "fewer than 3 runs")
for k in ("date", "commit", "machine", "corpus_bytes", "passthrough_docs"):
    need(k in m, f"meta.{k} missing")

keys = ["cp_in", "cp_in_indexed", "cat_cold", "cat_warm", "grep_cold", "grep_warm", "ls_cold", "ls_warm",
        "stat_cold", "stat_warm", "rsync_out", "rm_rf", "rm_rf_indexed", "rsync_in", "rsync_in_indexed",
        "rsync_noop"]
w = r["workloads"]
for k in keys:
    need(k in w, f"workload {k} missing")
    if k not in w:
        continue
    row = w[k]
    for t in ("plain", "passthrough", "passthrough_s", "itemfs"):
        s = row.get(t)
        need(isinstance(s, dict), f"{k}.{t} missing")
        if not isinstance(s, dict):
            continue
        need(s.get("status") in ("ok", "unavailable"), f"{k}.{t}: bad status {s.get('status')}")
        if s.get("status") == "ok":
            need(len(s["runs_s"]) >= 3, f"{k}.{t}: {len(s['runs_s'])} runs")
            need(s["median_s"] > 0 and s["us_per_file"] > 0, f"{k}.{t}: non-positive time")
            need(s["files"] in (500, m["passthrough_docs"]), f"{k}.{t}: files {s['files']}")
        else:
            need(bool(s.get("error")), f"{k}.{t}: unavailable without an error")
    need(row["plain"].get("status") == "ok", f"{k}: the plain directory must always be measured")
    for rk, other in (("ratio_itemfs_plain", "plain"), ("ratio_itemfs_passthrough", "passthrough"),
                      ("ratio_itemfs_passthrough_s", "passthrough_s")):
        both = row["itemfs"].get("status") == "ok" and row[other].get("status") == "ok"
        v = row.get(rk)
        need((v is not None and v > 0) if both else v is None, f"{k}.{rk} = {v!r}")

# passthrough_ll -s is the same binary: where it runs multi-threaded, it runs on
# the single-threaded loop too.
for k in keys:
    row = w.get(k, {})
    if row.get("passthrough", {}).get("status") == "ok":
        need(row.get("passthrough_s", {}).get("status") == "ok",
             f"{k}.passthrough_s: {row.get('passthrough_s', {}).get('error')}")
        need("passthrough_s" in r.get("daemon_peak_rss_mib", {}), "daemon_peak_rss_mib.passthrough_s missing")

# A write workload "until indexed" is the write plus the index's catch-up.
for k in ("cp_in", "rm_rf", "rsync_in"):
    a, b = w.get(k, {}).get("itemfs", {}), w.get(k + "_indexed", {}).get("itemfs", {})
    if a.get("status") == "ok" and b.get("status") == "ok":
        need(all(y >= x for x, y in zip(a["runs_s"], b["runs_s"])), f"{k}_indexed shorter than {k}")

# itemfs's core must carry the basic workloads.
if os.access(itemfs, os.X_OK):
    for k in ("cp_in", "cat_warm", "ls_warm", "rsync_in", "rsync_noop"):
        s = w.get(k, {}).get("itemfs", {})
        need(s.get("status") == "ok", f"itemfs {k}: {s.get('error')}")
    sent = w.get("rsync_noop", {}).get("itemfs_files_sent")
    need(sent in (0, None) or w["rsync_noop"]["itemfs"].get("status") != "ok",
         f"rsync -a re-run sent {sent} files to itemfs")
    x = r["itemfs_only"]
    for k in ("import", "search", "backup", "storage"):
        need(k in x, f"itemfs_only.{k} missing")
    b = x.get("backup", {})
    for k in ("full_s", "incremental_s", "verify_full_s", "verify_incremental_s"):
        need(isinstance(b.get(k), list) and b[k], f"itemfs_only.backup.{k} missing: {b.get('error')}")
    need(isinstance(b.get("verify_full_mb_per_s"), (int, float)), "itemfs_only.backup.verify_full_mb_per_s missing")
need("daemon_peak_rss_mib" in r, "daemon_peak_rss_mib missing")

if fails:
    print("bench_smoke: FAIL")
    for f in fails:
        print("  -", f)
    sys.exit(1)
print("bench_smoke: results JSON complete")
EOF
