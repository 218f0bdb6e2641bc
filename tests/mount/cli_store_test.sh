#!/usr/bin/env bash
# Only `mount` and `import` make a new store, and say so on stderr. Every
# other command (search, stats, fsck, export, reindex, backup) given a path
# that holds no store fails with exit status 1 and a message naming the
# path, and creates nothing there, not even the directory. An unknown
# option is a usage error (exit 2), never taken for a path; options may
# stand before or after STORE.
source "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || fail "jq is needed"

# Runs the command, which must exit with status $1; its stderr in $T/err.
expect_status() {
  local want=$1 rc=0
  shift
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "$*: exit status $rc, expected $want (stderr: $(head -c 300 "$T/err"))"
}

typo=$T/typo
for cmd in "search $typo solar" "search --json $typo solar" "stats $typo" "fsck $typo" "fsck --repair $typo" \
  "backup $typo full" "backup $typo list" "backup $typo verify all" "export $typo $T/out-dir" "reindex $typo"; do
  # shellcheck disable=SC2086
  expect_status 1 "$ITEMFS" $cmd
  grep -q "itemfs: $typo holds no itemfs store (no store.db)" "$T/err" || fail "$cmd: message: $(cat "$T/err")"
  [ ! -e "$typo" ] || fail "$cmd created $typo"
  [ ! -e "$T/out-dir" ] || fail "$cmd created the export directory"
done
# An existing directory without a store: the same, and nothing made in it.
mkdir "$T/plain"
expect_status 1 "$ITEMFS" stats "$T/plain"
grep -q "holds no itemfs store" "$T/err" || fail "stats of a plain directory: $(cat "$T/err")"
[ -z "$(ls -A "$T/plain")" ] || fail "stats wrote into a plain directory: $(ls -A "$T/plain")"

# Unknown options are usage errors, wherever they stand, and never paths.
cd "$T"
for cmd in "backup --json-typo $STORE list" "search $STORE solar --jsn" "stats --frobnicate $STORE" \
  "fsck $STORE --repiar" "export -x $STORE $T/o" "reindex $STORE --now" "import --fast $STORE $T/plain"; do
  # shellcheck disable=SC2086
  expect_status 2 "$ITEMFS" $cmd
  grep -q "unknown option" "$T/err" || fail "$cmd: message: $(cat "$T/err")"
done
[ -z "$(ls -A "$T" | grep -v '^\(mnt\|plain\|out\|err\)$')" ] || fail "a command created $(ls -A "$T")"

# --help is known to every command: the usage on stdout, exit 0.
for cmd in search stats fsck export reindex import backup; do
  expect_status 0 "$ITEMFS" $cmd --help
  grep -q "usage: itemfs $cmd" "$T/out" || fail "$cmd --help: $(cat "$T/out")"
done

# import makes a new store and says so; a second import does not say it again.
mkdir -p "$T/src/a1"
echo '{"id":"a1x","title":"solar"}' >"$T/src/a1/a1x.json"
expect_status 0 "$ITEMFS" import "$STORE" "$T/src"
grep -q "itemfs: created a new store at $STORE" "$T/err" || fail "import did not say it created a store: $(cat "$T/err")"
[ -f "$STORE/store.db" ] || fail "no store.db after import"
expect_status 0 "$ITEMFS" import "$STORE" "$T/src"
if grep -q "created a new store" "$T/err"; then fail "a second import says it created the store"; fi

# With the store there, the commands work, options before or after STORE.
expect_status 0 "$ITEMFS" search --json "$STORE" solar
assert_eq a1x "$(jq -r '.hits[0].id' "$T/out")" "search --json before STORE"
expect_status 0 "$ITEMFS" search "$STORE" solar --json
assert_eq a1x "$(jq -r '.hits[0].id' "$T/out")" "search --json after STORE"
expect_status 0 "$ITEMFS" backup --json "$STORE" list
[ ! -e "$T/--json" ] || fail "backup --json STORE list made a store named --json"
assert_eq 0 "$(jq length "$T/out")" "backup --json list of no backups"
expect_status 0 "$ITEMFS" backup "$STORE" full
expect_status 0 "$ITEMFS" backup "$STORE" list --json
assert_eq 1 "$(jq length "$T/out")" "backup list --json after a full backup"
expect_status 0 "$ITEMFS" fsck --repair "$STORE"
expect_status 0 "$ITEMFS" stats "$STORE"
assert_eq 1 "$(jq .items "$T/out")" "stats items"

# mount makes a new store and says so, once.
STORE=$T/store2
start_mount
grep -q "itemfs: created a new store at $STORE" "$T/daemon.log" || fail "mount did not say it created a store"
stop_mount
n=$(grep -c "created a new store" "$T/daemon.log")
start_mount
assert_eq "$n" "$(grep -c "created a new store" "$T/daemon.log")" "a second mount says it created the store"
echo "cli: only mount and import create a store; typos and unknown options fail"
