#!/usr/bin/env bash
# Sandbox benchmark (issue 4): `repoman list` and `repoman status` over N registered projects with
# running containers, against `incus list --project P --format json` (the Go client, which asks
# the server for every instance's state) on the same containers in the same run. Two more rows
# for context: `incus list -c ns` (name and status only) and `incus query` of the same
# `recursion=1` listing repoman makes (one CLI process, one request: the floor for a CLI).
#
# Creates a throw-away Incus project `repoman-bench-<pid>` (images shared with the default project,
# the lab's busybox image) and a private HOME whose registry points at it; both are removed on
# exit. Needs root and the lab (`scripts/incus-lab`), and hyperfine (`apt-get install hyperfine`).
#
# usage: scripts/bench/sandbox.sh [N=50] [RUNS=20]
# env:   REPOMAN_BIN (default target/release/repoman; `cargo build --release -p repoman`)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${REPOMAN_BIN:-target/release/repoman}")
N=${1:-50}; RUNS=${2:-20}
IMAGE=${REPOMAN_LAB_IMAGE_ALIAS:-repoman-test-busybox}
command -v hyperfine >/dev/null || { echo "hyperfine missing: apt-get install hyperfine"; exit 2; }
[ -x "$BIN" ] || { echo "$BIN missing: cargo build --release -p repoman"; exit 2; }

P="repoman-bench-$$"
W=$(mktemp -d /tmp/repoman-bench-sandbox.XXXXXX)
cleanup() {
  for c in $(incus list --project "$P" --format csv -c n 2>/dev/null); do
    incus delete --force --project "$P" "$c" >/dev/null 2>&1 || true
  done
  incus profile device remove default root --project "$P" >/dev/null 2>&1 || true
  incus project delete "$P" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/home" "$W/repos" "$W/run"
export HOME="$W/home" XDG_RUNTIME_DIR="$W/run" USER=bench SUDO_UID=1000 SUDO_GID=1000 SUDO_USER=dev

"$BIN" setup --local-repos "$W/repos" --incus-project "$P" --image "$IMAGE" --quiet
start=$(date +%s.%N)
for i in $(seq -w 1 "$N"); do
  mkdir -p "$W/repos/p$i"
  chown 1000:1000 "$W/repos/p$i"
  "$BIN" new "p$i" --yes --quiet
done
end=$(date +%s.%N)
echo "created $N sandboxes with \`repoman new\` in $(echo "$end - $start" | bc) s" >&2
running=$(incus list --project "$P" --format csv -c s | grep -c RUNNING || true)
echo "$running of $N containers running" >&2

# Sanity: every command sees every sandbox before it is timed.
[ "$("$BIN" --json list | grep -c '"name"')" -eq "$N" ]
"$BIN" --json status >/dev/null

hyperfine --warmup 2 --runs "$RUNS" -N --export-markdown "$W/result.md" \
  -n "repoman list" "$BIN --json list" \
  -n "repoman status" "$BIN --json status" \
  -n "incus list --format json" "incus list --project $P --format json" \
  -n "incus list -c ns --format csv" "incus list --project $P -c ns --format csv" \
  -n "incus query recursion=1" "incus query /1.0/instances?recursion=1&project=$P" >&2
cat "$W/result.md"
