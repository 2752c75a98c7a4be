#!/usr/bin/env bash
# Backup benchmark (issue 5): repoman sync against a plain `rsync -a --delete` loop over the same
# projects, manifest hashing against b3sum, and a one-change manifest update in a 100,000-file tree.
# Both sides run in the same invocation on the same data; backup roots are tmpfs mounts (needs
# root), the working copies live on the local disk.
#
# usage: scripts/bench/backup.sh [PROJECTS=20] [FILES_PER_PROJECT=5000] [BIG_FILES_MIB=64]
# env:   REPOMAN_BIN (default target/release/repoman; build it with `cargo build --release -p repoman`)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${REPOMAN_BIN:-target/release/repoman}")
P=${1:-20}; N=${2:-5000}; BIG=${3:-64}
command -v b3sum >/dev/null || { echo "b3sum missing: apt-get install b3sum (or cargo install b3sum --root /tmp/b3)"; exit 2; }
W=$(mktemp -d /tmp/repoman-bench.XXXXXX)
mkdir -p "$W/home/.config/repoman" "$W/local" "$W/b1" "$W/b2" "$W/run"
mount -t tmpfs -o size=10g tmpfs "$W/b1"
mount -t tmpfs -o size=10g tmpfs "$W/b2"
cleanup() { umount -l "$W/b1" "$W/b2" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
export HOME="$W/home" XDG_RUNTIME_DIR="$W/run" USER=bench

python3 - "$W/local" "$P" "$N" "$BIG" <<'PY'
import os, sys, random
root, P, N, BIG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
random.seed(1)
for p in range(P):
    base = os.path.join(root, f"p{p:02d}")
    for i in range(N):
        d = os.path.join(base, f"d{i % 50:02d}", f"s{i % 7}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}.txt"), "wb") as f:
            f.write(os.urandom(random.randint(512, 8192)))
    if p < 2:
        for b in range(2):
            with open(os.path.join(base, f"big{b}.bin"), "wb") as f:
                for _ in range(BIG):
                    f.write(os.urandom(1 << 20))
PY

{
  echo "schema_version = 1"
  echo "[defaults]"
  echo "local_repos = \"$W/local\""
  echo "backup_root = \"$W/b1\""
  echo "backup_fstype = \"tmpfs\""
  echo "max_delete = 100000"
  for p in $(seq 0 $((P-1))); do printf '[[project]]\nname = "p%02d"\nrepo = "p%02d"\ncontainer = false\n' "$p" "$p"; done
} > "$W/home/.config/repoman/repoman.toml"

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
repoman_sync() { "$BIN" --no-progress --json sync --all > "$W/last.json"; }
rsync_loop() { for d in "$W"/local/*/; do rsync -a --delete "$d" "$W/b2/$(basename "$d")/"; done; }
# A timed command that fails stops the benchmark (exit 1, with the command and its status): a
# sync refused by a guard or an rsync error would otherwise be timed as if it had worked.
timed() {
  local s e rc=0
  s=$(now)
  "$@" || rc=$?
  e=$(now)
  if [ "$rc" -ne 0 ]; then
    echo "bench/backup: FAILED (exit $rc): $*" >&2
    [ -s "$W/last.json" ] && head -c 2000 "$W/last.json" >&2
    exit 1
  fi
  secs "$s" "$e"
}
trap 'echo "bench/backup: FAILED (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
change_one_percent() {
  python3 - "$W/local" "$1" <<'PY'
import os, sys, random
root, seed = sys.argv[1], int(sys.argv[2])
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".txt"))
random.seed(seed)
for p in random.sample(files, len(files) // 100):
    with open(p, "ab") as f:
        f.write(os.urandom(64))
PY
}

echo "estate: $P projects x $N files, 2 projects with 2 x ${BIG} MiB files"
t_init_r=$(timed repoman_sync)
t_init_l=$(timed rsync_loop)
echo "initial copy: repoman ${t_init_r}s (incl. manifests), rsync loop ${t_init_l}s"

r=(); l=()
for i in 1 2 3; do r+=("$(timed repoman_sync)"); l+=("$(timed rsync_loop)"); done
nr=$(median3 "${r[@]}"); nl=$(median3 "${l[@]}")
echo "no-op sync (median of 3): repoman ${nr}s, rsync loop ${nl}s, ratio $(python3 -c "print(f'{$nr/$nl:.2f}')")"

r=(); l=()
for i in 1 2 3; do change_one_percent "$i"; r+=("$(timed repoman_sync)"); l+=("$(timed rsync_loop)"); done
cr=$(median3 "${r[@]}"); cl=$(median3 "${l[@]}")
echo "1% changed (median of 3): repoman ${cr}s, rsync loop ${cl}s, ratio $(python3 -c "print(f'{$cr/$cl:.2f}')")"

bytes=$(du -sb --exclude=.repoman-backup.json "$W/b1" | cut -f1)
t_b3=$(timed sh -c "find '$W/b1' -type f ! -name .repoman-backup.json -print0 | xargs -0 b3sum > /dev/null")
t_vf=$(timed sh -c "'$BIN' --no-progress --json verify --full --all > /dev/null")
echo "full hashing of the backup ($((bytes / 1048576)) MiB): repoman verify --full ${t_vf}s ($(python3 -c "print(f'{$bytes/$t_vf/1048576:.0f}')") MiB/s), b3sum ${t_b3}s ($(python3 -c "print(f'{$bytes/$t_b3/1048576:.0f}')") MiB/s), repoman/b3sum throughput $(python3 -c "print(f'{$t_b3/$t_vf:.2f}')")"

# One change in a 100,000-file project: manifest update vs full hash.
python3 - "$W/local/huge" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(100_000):
    d = os.path.join(root, f"d{i % 100:02d}", f"s{i % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "wb") as f:
        f.write(os.urandom(2048))
PY
printf '[[project]]\nname = "huge"\nrepo = "huge"\ncontainer = false\n' >> "$W/home/.config/repoman/repoman.toml"
ms() { python3 -c "import json;d=json.load(open('$W/last.json'));print([p for p in d['projects'] if p['project']=='huge'][0]['$1'])"; }
"$BIN" --no-progress --json sync huge > "$W/last.json"; full_ms=$(ms manifest_ms); full_total=$(ms duration_ms)
echo changed >> "$W/local/huge/d07/s7/f7.txt"
"$BIN" --no-progress --json sync huge > "$W/last.json"; one_ms=$(ms manifest_ms); one_total=$(ms duration_ms)
echo "100,000 files: full manifest ${full_ms} ms, after one change ${one_ms} ms ($(python3 -c "print(f'{100*$one_ms/$full_ms:.1f}')")% of full); whole sync ${full_total} ms vs ${one_total} ms"
