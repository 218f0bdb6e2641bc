#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# into build-fuzz/ and runs each one, seeded from tests/data/json and the
# seeds below, after replaying tests/fuzz/regressions/<target>/ (inputs that
# once crashed). Usage: tests/fuzz/run.sh [SECONDS]: SECONDS is the fuzzing
# time of the whole run, shared out evenly among the targets (default 60);
# the targets are built and run two at a time (nproc), so the run takes
# about half that.
# A crash stops the run with the input saved under build-fuzz/crashes/; copy
# it into tests/fuzz/regressions/<target>/ with the fix.
# FUZZ_BUILD_DIR=DIR builds and works in DIR instead of build-fuzz/;
# FUZZ_TARGETS="archive ..." runs only those targets.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
CXX=${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++ || true)}
[ -n "$CXX" ] || { echo "tests/fuzz/run.sh: clang++ is needed" >&2; exit 1; }
B=${FUZZ_BUILD_DIR:-build-fuzz}
mkdir -p "$B/crashes"
flags=(-std=c++20 -O1 -g1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I. -DNDEBUG)

declare -A sources=(
  [json]="tests/fuzz/json_fuzz.cpp store/json_check.cpp store/ids.cpp base/utf8.cpp"
  [ctl]="tests/fuzz/ctl_fuzz.cpp backup/command.cpp"
  [search]="tests/fuzz/search_fuzz.cpp search/extract.cpp search/cjk.cpp search/fold.cpp search/query.cpp search/tokenize.cpp store/ids.cpp base/utf8.cpp base/sqlite_stmt.cpp base/log.cpp"
  [manifest]="tests/fuzz/manifest_fuzz.cpp backup/manifest.cpp backup/manifest_sax.cpp backup/manifest_layout.cpp backup/util.cpp store/ids.cpp base/utf8.cpp base/sha256.cpp base/clock.cpp base/json_string.cpp"
  [archive]="tests/fuzz/archive_fuzz.cpp $(echo backup/*.cpp store/*.cpp store/sqlite/*.cpp base/*.cpp)"
)
declare -A libs=([json]="" [ctl]="" [search]="-lsqlite3" [manifest]="-lcrypto"
                 [archive]="-larchive -lsqlite3 -lz -lcrypto -lpthread")
targets=(json ctl search manifest archive)
[ -n "${FUZZ_TARGETS:-}" ] && read -ra targets <<<"$FUZZ_TARGETS"
each=$(( seconds / ${#targets[@]} ))
[ "$each" -ge 1 ] || each=1

# Seeds that are not JSON documents.
seed_dir=$B/seeds
mkdir -p "$seed_dir/ctl" "$seed_dir/search" "$seed_dir/manifest" "$seed_dir/archive"
i=0
for line in "full" "incremental" "verify all" "verify 20240101T000000Z-full" "restore 20240101T000000Z-full clear" \
            "prune keep_last=3 keep_days=30" "delete 20240101T000000Z-incr" "restore ../x" "prune keep_last=-1"; do
  printf '%s\n' "$line" >"$seed_dir/ctl/$((i++))"
done
for q in 'solar panel' 'solar OR wind -farm' '"exact phrase"' 'photovolt*' 'title:solar author:"Jane Smith"' \
         'host:example.com after:2024-03-01 before:2025' 'limit:20 sort:date' '日本語 ニュース' 'metadata.source:reuters' \
         'a OR OR b' '-"x" tag:' 'lang:en-gb rating:5'; do
  printf '%s' "$q" >"$seed_dir/search/$((i++))"
done
printf '{"format_version":1,"id":"20240101T000000Z-full","kind":"full","created_ns":1,"chain":["20240101T000000Z-full"],"deleted":[],"items":{"ab":{"sha256":"%064d","size":3,"mode":33188,"mtime_ns":1,"in":"20240101T000000Z-full"}}}' 0 \
  >"$seed_dir/manifest/full"
# Format 2 exactly as itemfs writes it, so the direct layout parser is reached.
cat >"$seed_dir/manifest/format2" <<'MANIFEST'
{
  "format": "itemfs-backup",
  "format_version": 2,
  "id": "20261121T140353Z-incr",
  "kind": "incremental",
  "parent": "20261121T140353Z-full",
  "created": "2026-11-21T14:03:53.313983046Z",
  "created_ns": 1795269833313983046,
  "encrypted": false,
  "store_format_version": 2,
  "item_count": 3,
  "item_bytes": 24,
  "archived_count": 1,
  "archived_bytes": 8,
  "chain": ["20261121T140353Z-full", "20261121T140353Z-incr"],
  "item_fields": ["sha256", "size", "mtime_ns", "archive", "mode", "uid", "gid"],
  "item_defaults": {"mode": 33188, "uid": 0, "gid": 0},
  "deleted": [],
  "items": {
"abc":["e346432021b04179518d9614f3560ccd71354a4ee101ddcb893d6959a9d6301c",8,1795269833241885721,0],
"abd":["651b5768de252a9f4d2083046d83f81c31369beb73d14411492b20ea8fd1fcf5",8,1795269833241885721,0,33261,0,0],
"abe":["0818b8c7ae5997ac81b0a9325320bd04a69cd7bab547bceda1964d5b8be42be4",8,1795269833287018186,1]
  }
}

MANIFEST

# Two at a time (or nproc): each build and each fuzzer is one process.
parallel=$(nproc)
[ "$parallel" -ge 1 ] || parallel=1
throttle() { while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done; }

build_one() {
  local t=$1 bin=$B/${1}_fuzz srcs
  read -ra srcs <<<"${sources[$t]}"
  if [ ! -x "$bin" ] || [ -n "$(find "${srcs[@]}" base/*.h store/*.h search/*.h backup/*.h -newer "$bin" 2>/dev/null | head -n 1)" ]; then
    # shellcheck disable=SC2086
    if ! "$CXX" "${flags[@]}" "${srcs[@]}" -o "$bin.new" ${libs[$t]} >"$B/$t.build.log" 2>&1; then
      echo "tests/fuzz/run.sh: building $t FAILED:" >"$B/$t.result"
      tail -n 30 "$B/$t.build.log" >>"$B/$t.result"
      return 1
    fi
    mv "$bin.new" "$bin"
    echo "== built $t" >"$B/$t.result"
  else
    : >"$B/$t.result"
  fi
}

fuzz_one() {
  local t=$1 bin=$B/${1}_fuzz corpus=$B/corpus/$1
  mkdir -p "$corpus"
  local seeds=("tests/data/json/valid" "tests/data/json/invalid" "tests/data/json/impl")
  [ -d "$seed_dir/$t" ] && seeds+=("$seed_dir/$t")
  local regressions=()
  [ -d "tests/fuzz/regressions/$t" ] && regressions=("tests/fuzz/regressions/$t")
  # The archive target writes its seeds (real backups, hostile and damaged
  # archives) with the code under test when ITEMFS_FUZZ_SEEDS names a directory.
  echo "== fuzz $t for ${each}s" >>"$B/$t.result"
  if ! ITEMFS_FUZZ_SEEDS="$seed_dir/archive" "$bin" "$corpus" "${regressions[@]}" "${seeds[@]}" -max_total_time="$each" -timeout=10 -rss_limit_mb=2048 \
       -max_len=65536 -print_final_stats=1 -artifact_prefix="$B/crashes/$t-" >"$B/$t.log" 2>&1; then
    { echo "tests/fuzz/run.sh: $t FAILED; input saved as $(ls -t "$B/crashes/$t-"* 2>/dev/null | head -n 1); last lines:"
      tail -n 30 "$B/$t.log"; } >>"$B/$t.result"
    echo failed >"$B/$t.failed"
  else
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$B/$t.log" | tail -n 1 | sed "s/^/   $t: /" >>"$B/$t.result"
  fi
}

for t in "${targets[@]}"; do rm -f "$B/$t.result" "$B/$t.failed"; done
# The longest build (archive, the last target) first, beside the others.
for ((i = ${#targets[@]} - 1; i >= 0; i--)); do
  t=${targets[$i]}
  throttle
  ( build_one "$t" || echo failed >"$B/$t.failed" ) &
done
wait
for t in "${targets[@]}"; do
  [ -e "$B/$t.failed" ] && continue
  throttle
  fuzz_one "$t" &
done
wait

status=0
for t in "${targets[@]}"; do
  if [ -e "$B/$t.failed" ]; then
    cat "$B/$t.result" >&2
    status=1
  else
    cat "$B/$t.result"
  fi
done
exit $status
