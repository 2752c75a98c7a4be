#!/usr/bin/env bash
# Start-time benchmark (issue 11): how long a sandbox takes to start with today's repo mount
# (`raw.idmap` mapping the host user, a plain bind mount) against the mount of older versions
# (`shift=true`, an idmapped mount), same image, same repo, N runs each, alternating. A third row
# times `repoman start` of the raw.idmap sandbox (Incus' start plus repoman's own work: the
# registry, one listing, the pre-start hardening check).
#
# Each run: force-stop (not timed), then time the start; a start that fails stops the benchmark
# (exit 1, with the command). Prints the load average before and after: the figures mean little
# on a busy machine.
#
# Creates a throw-away Incus project `repoman-bench-start-<pid>` (the lab's busybox image) and a
# private HOME; both are removed on exit. Needs root and the lab (`scripts/incus-lab`).
#
# usage: scripts/bench/start.sh [N=20]
# env:   REPOMAN_BIN (default target/release/repoman; `cargo build --release -p repoman`)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${REPOMAN_BIN:-target/release/repoman}")
N=${1:-20}
IMAGE=${REPOMAN_LAB_IMAGE_ALIAS:-repoman-test-busybox}
POOL=${REPOMAN_LAB_POOL:-default}
[ -x "$BIN" ] || { echo "$BIN missing: cargo build --release -p repoman (or set REPOMAN_BIN)" >&2; exit 2; }
command -v incus >/dev/null || { echo "incus missing" >&2; exit 2; }

# The incus CLI keeps the caller's HOME (its config; no first-run hints in the output).
INCUS_HOME=$HOME
incus() { HOME="$INCUS_HOME" command incus "$@"; }
P="repoman-bench-start-$$"
W=$(mktemp -d /tmp/repoman-bench-start.XXXXXX)
cleanup() {
  for c in $(incus list --project "$P" --format csv -c n 2>/dev/null); do
    incus delete --force --project "$P" "$c" >/dev/null 2>&1 || true
  done
  incus profile device remove default root --project "$P" >/dev/null 2>&1 || true
  incus project delete "$P" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'echo "bench/start: FAILED (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
mkdir -p "$W/home/.config/repoman" "$W/repos/app" "$W/run"
chown 1000:1000 "$W/repos/app"
export HOME="$W/home" XDG_RUNTIME_DIR="$W/run" USER=bench SUDO_UID=1000 SUDO_GID=1000 SUDO_USER=dev

echo "# $(date -u +%FT%TZ)  load before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) CPUs)"
echo "# incus $(incus version | sed -n 's/Server version: //p'), image $IMAGE, pool $POOL, N=$N, binary $BIN"

incus project create "$P" -c features.images=false -c features.profiles=true >/dev/null
incus profile device add default root disk path=/ pool="$POOL" --project "$P" >/dev/null
cat > "$W/home/.config/repoman/repoman.toml" <<TOML
schema_version = 1

[defaults]
local_repos = "$W/repos"
incus_project = "$P"
default_image = "$IMAGE"
TOML

# Today's sandbox, made by repoman (raw.idmap, no shift, limits, guest API off).
"$BIN" --no-progress --quiet new app --yes
# The old-style one: the same image and the same repo directory, mounted with shift=true (the
# idmapped mount that is timed). Read-only: a writable shift=true mount lets container root own
# the host's root-owned files, and nothing needs to write here.
incus init "$IMAGE" old --project "$P" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
incus config device add old repo disk source="$W/repos/app" path=/home/dev/app shift=true readonly=true --project "$P" >/dev/null

now() { date +%s%N; }
# One timed start: stop first (untimed), then time `$@`; a failure stops the benchmark.
timed_start() {
  local name=$1; shift
  incus stop --force --project "$P" "$name" >/dev/null 2>&1 || true
  local s e rc=0
  s=$(now)
  "$@" >/dev/null 2>"$W/err" || rc=$?
  e=$(now)
  if [ "$rc" -ne 0 ]; then
    echo "bench/start: FAILED (exit $rc): $*" >&2
    cat "$W/err" >&2
    exit 1
  fi
  [ "$(incus list --project "$P" --format csv -c s "^$name\$")" = RUNNING ] || {
    echo "bench/start: $name is not running after: $*" >&2; exit 1; }
  echo $(( (e - s) / 1000 ))
}

# Warm-up: the first start of each instance sets up its idmap; not timed.
timed_start app incus start --project "$P" app >/dev/null
timed_start old incus start --project "$P" old >/dev/null

: > "$W/idmap"; : > "$W/shift"; : > "$W/repoman"
for _ in $(seq 1 "$N"); do
  timed_start app incus start --project "$P" app >> "$W/idmap"
  timed_start old incus start --project "$P" old >> "$W/shift"
  timed_start app "$BIN" --no-progress --quiet start app >> "$W/repoman"
done

python3 - "$W" <<'PY'
import statistics, sys
w = sys.argv[1]
rows = [
    ("`incus start` raw.idmap (today's repo mount)", "idmap"),
    ("`incus start` shift=true (the old repo mount)", "shift"),
    ("`repoman start` raw.idmap (with the pre-start check)", "repoman"),
]
print("| start | runs | median | mean | min | max |")
print("|---|---|---|---|---|---|")
med = {}
for label, f in rows:
    xs = [int(l) / 1000 for l in open(f"{w}/{f}") if l.strip()]
    med[f] = statistics.median(xs)
    print(f"| {label} | {len(xs)} | {med[f]:.0f} ms | {statistics.mean(xs):.0f} ms | {min(xs):.0f} ms | {max(xs):.0f} ms |")
print(f"\nraw.idmap / shift=true (medians): {med['idmap'] / med['shift']:.2f}")
PY
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
