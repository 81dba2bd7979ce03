#!/usr/bin/env bash
# bench/layer.sh: how long `imagebuilder build` takes to package the demo layer from downloads (fetch, verify, stage,
# check, pack; not compiling: manifests/demo.toml builds its programs from Go modules, and that is measured elsewhere),
# side by side in one run with
#   - the seeds' way: bench/seeds-provisioner.sh (cp or curl, sha256sum -c, install/tar -x, node content, tar | gzip -6);
#   - the floor: tar c | gzip -6 of the already staged bytes (imagebuilder's own layer, extracted once), and for
#     reference tar c | pigz -6 (all cores) and tar c | zstd -T0 (level 3), plus tar c alone.
# The bytes are the real demo image's: bench/layer-artifacts.py takes the programs out of the demo layer
# (DEMO_OUT/layer.tar.gz, made by ./demo/build.sh; each checked against DEMO_OUT/lock.json) and lays them out in a
# scratch directory the way the upstream releases publish them (kube-*, kubectl, kubeadm, kubelet, crictl and
# runc.amd64 as single binaries; etcd-v<V>-linux-amd64.tar.gz, containerd-<V>-linux-amd64.tar.gz and
# cni-plugins-linux-amd64-v<V>.tgz as deterministic tarballs), next to demo/artifacts/'s two OCI image archives and
# containerd-config.toml and a SHA256SUMS; it also writes the manifest imagebuilder builds here: manifests/demo.toml
# with every artifact a `url` + `checksum_url = "SHA256SUMS"` download from that directory (same names, versions,
# install paths and modes, [host], image pins, replace_content).
# Warm (imagebuilder's cache filled first, the seeds copy from the scratch artifact directory) and cold (empty cache;
# both download from python3's http.server on 127.0.0.1 serving that directory). Warm, imagebuilder also builds the
# manifest without its two container image artifacts (pause, weave-kube), interleaved: the cost of baking (and
# verifying) the images, beside the build without them.
#
#   bench/layer.sh [REPS] [COLD_REPS]      (defaults: 5 warm repetitions, 2 cold; `bench/layer.sh 2 1` took about
#                                           4 minutes on a 2-core box, the defaults take about twice that)
#
# Warm, each repetition runs imagebuilder, the seeds' provisioner and the gzip floor; the references (pigz, zstd,
# tar alone) run in the first min(REPS, 3) repetitions only. Cold, each repetition runs imagebuilder and the seeds.
#
# Environment: IMAGEBUILDER, AGENT (binaries; default target/release/{imagebuilder,k8s-agent}, built with cargo unless
# NO_BUILD=1), IMAGEBUILDER_B (a second imagebuilder, e.g. a candidate change built in a scratch copy: measured in
# the same interleaved runs, warm and cold, with its own cache, and reported beside the first), RESULTS=FILE (also
# write the report there), KEEP=1 (keep the scratch directory and print it), DEMO_OUT (where ./demo/build.sh put the
# demo layer and its lock; default out/demo: run ./demo/build.sh first, the bench does not build Go), TMPDIR (where
# the scratch directory goes: the artifact set, the caches, the staged trees and the layers; all timings use it).
#
# Bars (issue "Benchmarks", item 1), warm: imagebuilder <= 1.5x the floor (tar c | gzip -6), and >= 3x faster than
# the seeds' provisioner. Every variant of a repetition runs back to back (interleaved), so load from elsewhere hits
# them alike; the load average is printed. The page cache is not dropped (that would disturb the whole machine):
# "cold" means an empty download cache and a loopback HTTP fetch, not cold disks.
# Needs: bash, python3 (3.11+: tomllib), curl, tar, gzip; optional: /usr/bin/time (peak RSS, CPU), pigz, zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
REPS=${1:-5}
COLD_REPS=${2:-2}
[[ $REPS =~ ^[1-9][0-9]*$ && $COLD_REPS =~ ^[0-9]+$ ]] || {
    echo "usage: $0 [REPS>=1] [COLD_REPS>=0]" >&2
    exit 2
}
IB=${IMAGEBUILDER:-target/release/imagebuilder}
IB_B=${IMAGEBUILDER_B:-}
AGENT=${AGENT:-target/release/k8s-agent}
DEMO_MANIFEST=manifests/demo.toml
DEMO_OUT=${DEMO_OUT:-out/demo}
for t in python3 curl tar gzip sha256sum; do command -v "$t" >/dev/null || {
    echo "bench/layer.sh: missing $t" >&2
    exit 2
}; done
have() { command -v "$1" >/dev/null; }
TIME=/usr/bin/time
[ -x "$TIME" ] || TIME=

note() { printf 'bench/layer.sh: %s\n' "$*" >&2; }

if [ "${NO_BUILD:-}" != 1 ]; then
    note "cargo build --release --locked -p imagebuilder -p k8s-agent (a no-op when current)"
    cargo build --release --locked --quiet -p imagebuilder -p k8s-agent
fi
if [ ! -x "$IB" ] || [ ! -x "$AGENT" ] || { [ -n "$IB_B" ] && [ ! -x "$IB_B" ]; }; then
    echo "bench/layer.sh: no $IB, $AGENT or $IB_B" >&2
    exit 2
fi
# The demo layer the artifact set is made from (building it compiles every Go component: not done here).
if [ ! -f "$DEMO_OUT/layer.tar.gz" ] || [ ! -f "$DEMO_OUT/lock.json" ]; then
    echo "bench/layer.sh: no $DEMO_OUT/layer.tar.gz or $DEMO_OUT/lock.json: run ./demo/build.sh first" >&2
    exit 2
fi
if [ "$DEMO_MANIFEST" -nt "$DEMO_OUT/lock.json" ]; then
    note "warning: $DEMO_MANIFEST is newer than $DEMO_OUT/lock.json (a lock that does not match it is refused)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-layer.XXXXXX")
started=$SECONDS
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ "${KEEP:-}" = 1 ]; then note "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
rows=$work/rows.tsv
: >"$rows"

# --- the download artifact set and its manifest (not timed) -------------------------------------------------------
note "making the download artifact set from $DEMO_OUT/layer.tar.gz in $work/artifacts"
ARTIFACTS=$work/artifacts
MANIFEST=$work/demo-dl.toml
dl_set=$(python3 bench/layer-artifacts.py --manifest "$DEMO_MANIFEST" --demo-out "$DEMO_OUT" \
    --demo-artifacts demo/artifacts --out "$ARTIFACTS" --bench-manifest "$MANIFEST" --base-url "file://$ARTIFACTS/")
read -r BENCH_DL_FILES BENCH_DL_BYTES <<<"$dl_set"
# The seeds' hard-coded list must name exactly the generated set (else the manifest moved on: update the script).
if ! diff <(bench/seeds-provisioner.sh --list | sort) \
    <(sed -n 's/^url = "\([^"]*\)"$/\1/p' "$MANIFEST" | sort) >&2; then
    echo "bench/layer.sh: bench/seeds-provisioner.sh's ARTIFACTS do not name the generated set (<: seeds)" >&2
    exit 1
fi
epoch=$(sed -n 's/^source_date_epoch = \([0-9]*\).*/\1/p' "$MANIFEST")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# measure SCENARIO LABEL CMD...: runs CMD once (stdout to $work/last.out), appends a row:
# scenario, label, wall s, user s, sys s, peak RSS KiB, the command's phase line (if any).
measure() {
    local scenario=$1 label=$2
    shift 2
    local t0 t1 u=- s=- m=-
    t0=$EPOCHREALTIME
    if [ -n "$TIME" ]; then
        "$TIME" -f '%U %S %M' -o "$work/time.out" "$@" >"$work/last.out"
    else
        "$@" >"$work/last.out"
    fi
    t1=$EPOCHREALTIME
    [ -n "$TIME" ] && read -r u s m <"$work/time.out"
    local phases
    phases=$(grep -E '^(phases |fetch [0-9.]+s)' "$work/last.out" | head -1 || true)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$label" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
        "$u" "$s" "$m" "$phases" >>"$rows"
}

ib_build() { # MANIFEST CACHE OUT [BINARY]: the command line (measure runs it under /usr/bin/time: no function)
    IB_CMD=("${4:-$IB}" build --manifest "$1" --cache "$2" --out "$3" --content "$root" --agent-bin "$AGENT" --quiet)
}
tar_tree() { tar -C "$work/tree" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -cf - .; }
floor_gzip() { tar_tree | gzip -6 -n >"$work/floor.tar.gz"; }
floor_pigz() { tar_tree | pigz -6 -n >"$work/floor-pigz.tar.gz"; }
floor_zstd() { tar_tree | zstd -q -T0 -3 >"$work/floor.tar.zst"; }
floor_tar() { tar_tree | cat >/dev/null; }
export -f tar_tree floor_gzip floor_pigz floor_zstd floor_tar
export work epoch

# --- preparation: fill the cache, extract imagebuilder's own layer for the floor ----------------------------------
note "warm-up: filling the cache ($work/cache), extracting the layer for the floor"
ib_build "$MANIFEST" "$work/cache" "$work/ib"
"${IB_CMD[@]}" >/dev/null
if [ -n "$IB_B" ]; then
    ib_build "$MANIFEST" "$work/cache-b" "$work/ib-b" "$IB_B"
    "${IB_CMD[@]}" >/dev/null
fi
mkdir "$work/tree"
tar -xzf "$work/ib/layer.tar.gz" -C "$work/tree"
# The manifest without its image artifacts (the [[artifact]] blocks with install.image).
python3 - "$MANIFEST" "$work/demo-noimg.toml" "file://$ARTIFACTS/" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
head, *blocks = re.split(r"(?m)^(?=\[\[artifact\]\])", text)
kept = [b for b in blocks if not re.search(r"(?m)^image = ", b)]
assert len(kept) == len(blocks) - 2, "expected two image artifacts in the demo manifest"
head = re.sub(r'(?m)^base_url = .*$', f'base_url = "{sys.argv[3]}"', head)
open(sys.argv[2], "w").write(head + "".join(kept))
PY
ib_build "$work/demo-noimg.toml" "$work/cache" "$work/ib-noimg"
"${IB_CMD[@]}" >/dev/null

# --- warm: interleaved repetitions --------------------------------------------------------------------------------
# The three numbers the bars compare run REPS times; the references (pigz, zstd, tar alone) min(REPS, 3) times.
refs=(floor_tar)
have pigz && refs+=(floor_pigz)
have zstd && refs+=(floor_zstd)
REF_REPS=$((REPS < 3 ? REPS : 3))
for ((i = 1; i <= REPS; i++)); do
    note "warm repetition $i/$REPS"
    ib_build "$MANIFEST" "$work/cache" "$work/ib"
    measure warm imagebuilder "${IB_CMD[@]}"
    sha256sum "$work/ib/layer.tar.gz" | cut -d' ' -f1 >>"$work/ib.sha256s"
    if [ -n "$IB_B" ]; then
        ib_build "$MANIFEST" "$work/cache-b" "$work/ib-b" "$IB_B"
        measure warm imagebuilder_b "${IB_CMD[@]}"
        sha256sum "$work/ib-b/layer.tar.gz" | cut -d' ' -f1 >>"$work/ib-b.sha256s"
    fi
    ib_build "$work/demo-noimg.toml" "$work/cache" "$work/ib-noimg"
    measure warm imagebuilder_noimg "${IB_CMD[@]}"
    measure warm seeds bench/seeds-provisioner.sh "$ARTIFACTS" "$work/seeds.tar.gz" "$AGENT"
    measure warm floor_gzip bash -o pipefail -c floor_gzip
    if ((i <= REF_REPS)); then
        for f in "${refs[@]}"; do measure warm "$f" bash -o pipefail -c "$f"; done
    fi
done

# --- cold: empty cache, artifacts over loopback HTTP --------------------------------------------------------------
if ((COLD_REPS > 0)); then
    python3 -u -m http.server --bind 127.0.0.1 --directory "$ARTIFACTS" 0 >"$work/http.log" 2>&1 &
    server_pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$work/http.log" | head -1)
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || {
        echo "bench/layer.sh: the HTTP server did not start: $(cat "$work/http.log")" >&2
        exit 1
    }
    base="http://127.0.0.1:$port"
    sed "s|^base_url = .*|base_url = \"$base/\"|" "$MANIFEST" >"$work/demo-http.toml"
    grep -q "^base_url = \"$base/\"" "$work/demo-http.toml"
    curl -fsS -o /dev/null "$base/SHA256SUMS"
    for ((i = 1; i <= COLD_REPS; i++)); do
        note "cold repetition $i/$COLD_REPS ($base)"
        rm -rf "$work/cold-cache" "$work/ib-cold"
        ib_build "$work/demo-http.toml" "$work/cold-cache" "$work/ib-cold"
        measure cold imagebuilder "${IB_CMD[@]}"
        measure cold seeds bench/seeds-provisioner.sh "$base" "$work/seeds-cold.tar.gz" "$AGENT"
        if [ -n "$IB_B" ]; then
            rm -rf "$work/cold-cache" "$work/ib-cold"
            ib_build "$work/demo-http.toml" "$work/cold-cache" "$work/ib-cold" "$IB_B"
            measure cold imagebuilder_b "${IB_CMD[@]}"
        fi
    done
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
BENCH_ELAPSED=$((SECONDS - started))

# --- report -------------------------------------------------------------------------------------------------------
sizes() { # KEY=FILE...: "KEY=bytes " for each FILE that exists
    local kv
    for kv in "$@"; do
        if [ -f "${kv#*=}" ]; then printf '%s=%s ' "${kv%%=*}" "$(stat -c %s "${kv#*=}")"; fi
    done
}
BENCH_ROWS=$rows BENCH_REPS=$REPS BENCH_COLD=$COLD_REPS BENCH_LOAD="$load_start -> $load_end" BENCH_TIME=${TIME:-}
BENCH_NPROC=$(nproc)
BENCH_CPU=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
BENCH_SIZES=$(sizes imagebuilder="$work/ib/layer.tar.gz" imagebuilder_b="$work/ib-b/layer.tar.gz" \
    imagebuilder_noimg="$work/ib-noimg/layer.tar.gz" \
    seeds="$work/seeds.tar.gz" floor_gzip="$work/floor.tar.gz" floor_pigz="$work/floor-pigz.tar.gz" \
    floor_zstd="$work/floor.tar.zst")
BENCH_STAGED=$(du -sb "$work/tree" | cut -f1)
BENCH_IB_SHAS=$(sort -u "$work/ib.sha256s" | wc -l)
BENCH_IB_LAYER=$work/ib/layer.tar.gz BENCH_SEEDS_LAYER=$work/seeds.tar.gz
BENCH_TOOLS="$(gzip --version | head -1)"
have pigz && BENCH_TOOLS+="; $(pigz --version 2>&1 | head -1)"
have zstd && BENCH_TOOLS+="; $(zstd --version | sed 's/^\*\*\* //; s/, by .*//')"
BENCH_IB_B=$IB_B BENCH_IB_B_SHAS=0 BENCH_IB_B_LAYER=$work/ib-b/layer.tar.gz
[ -n "$IB_B" ] && BENCH_IB_B_SHAS=$(sort -u "$work/ib-b.sha256s" | wc -l)
export BENCH_DL_FILES BENCH_DL_BYTES BENCH_ELAPSED BENCH_IB_B BENCH_IB_B_SHAS BENCH_IB_B_LAYER BENCH_ROWS BENCH_REPS \
    BENCH_COLD BENCH_LOAD BENCH_TIME BENCH_NPROC BENCH_CPU BENCH_SIZES BENCH_STAGED BENCH_IB_SHAS BENCH_IB_LAYER \
    BENCH_SEEDS_LAYER BENCH_TOOLS
report() {
    python3 - <<'EOF'
import gzip, hashlib, os, statistics as st, tarfile

rows = [l.rstrip("\n").split("\t") for l in open(os.environ["BENCH_ROWS"])]
def runs(scen, label): return [r for r in rows if r[0] == scen and r[1] == label]
def walls(scen, label): return [float(r[2]) for r in runs(scen, label)]
def med(xs): return st.median(xs) if xs else float("nan")
def num(x):
    try: return float(x)
    except ValueError: return None

names = {
    "imagebuilder": "imagebuilder build",
    "imagebuilder_b": f"imagebuilder build, IMAGEBUILDER_B={os.environ['BENCH_IB_B']}",
    "imagebuilder_noimg": "imagebuilder build, the demo manifest without its 2 image artifacts",
    "seeds": "seeds-provisioner.sh (cp/curl, sha256sum -c, install, tar|gzip -6)",
    "floor_gzip": "floor: tar c | gzip -6",
    "floor_pigz": f"floor: tar c | pigz -6 ({os.environ['BENCH_NPROC']} threads)",
    "floor_zstd": "reference: tar c | zstd -T0 -3",
    "floor_tar": "reference: tar c only (no compression)",
}
size_of = dict(kv.split("=") for kv in os.environ["BENCH_SIZES"].split())
lines = []
p = lines.append
p(f"## bench/layer.sh: demo layer, {os.environ['BENCH_REPS']} warm / {os.environ['BENCH_COLD']} cold repetitions "
  f"({int(os.environ['BENCH_ELAPSED']) // 60}m{int(os.environ['BENCH_ELAPSED']) % 60:02d}s of measuring)")
p("")
p(f"machine: {os.environ['BENCH_NPROC']} cores ({os.environ['BENCH_CPU']}); load average {os.environ['BENCH_LOAD']}; "
  f"downloads {os.environ['BENCH_DL_FILES']} files, {int(os.environ['BENCH_DL_BYTES'])/1e6:.1f} MB (the demo layer's); "
  f"staged tree {int(os.environ['BENCH_STAGED'])/1e6:.1f} MB; {os.environ['BENCH_TOOLS']}")
p("")
p("| scenario | what | n | median s | min s | max s | spread | CPU s (user+sys) | peak RSS | output |")
p("|---|---|---|---|---|---|---|---|---|---|")
order = [("warm", k) for k in ["imagebuilder", "imagebuilder_noimg", "imagebuilder_b", "seeds", "floor_gzip", "floor_pigz", "floor_zstd", "floor_tar"]] + \
        [("cold", "imagebuilder"), ("cold", "imagebuilder_b"), ("cold", "seeds")]
for scen, label in order:
    rs = runs(scen, label)
    if not rs: continue
    w = [float(r[2]) for r in rs]
    cpu = [num(r[3]) + num(r[4]) for r in rs if num(r[3]) is not None]
    rss = [int(r[5]) for r in rs if r[5].isdigit()]
    m = med(w)
    out = size_of.get(label, "") if scen == "warm" else ""
    p(f"| {scen} | {names[label].replace('|', chr(92) + '|')} | {len(w)} | {m:.2f} | {min(w):.2f} | {max(w):.2f} | "
      f"±{(max(w)-min(w))/2/m*100:.0f}% | {med(cpu):.2f} | "
      f"{(f'{max(rss)/1024:.1f} MiB' if rss else 'n/a')} | {(f'{int(out)/1e6:.1f} MB' if out else '')} |")
p("")

def phases(r):
    """The phase line of a run as {phase: seconds}: imagebuilder's "fetch 0.17s (0 from network), stage+check 1.35s,
    pack 4.23s, total 5.79s" or the seeds' "phases fetch=0.480 verify=0.663 install=1.917 pack=13.608"."""
    s, d = r[6], {}
    if s.startswith("phases "):
        for kv in s.split()[1:]:
            k, v = kv.split("=")
            d[k] = float(v)
    else:
        for part in s.split(","):
            w = part.split()
            if len(w) >= 2 and w[1].endswith("s"):
                d[w[0]] = float(w[1][:-1])
    return d

def phase_table(label, title):
    for scen in ("warm", "cold"):
        ph = [d for d in map(phases, runs(scen, label)) if d]
        if not ph: continue
        keys = list(ph[0])
        p(f"| {title}, {scen}: median s | " + " | ".join(keys) + " |")
        p("|---|" + "---|" * len(keys))
        p("| | " + " | ".join(f"{med([d[k] for d in ph]):.2f}" for k in keys) + " |")
        p("")
phase_table("imagebuilder", "imagebuilder phases")
phase_table("imagebuilder_noimg", "imagebuilder phases without the images")
phase_table("imagebuilder_b", "IMAGEBUILDER_B phases")
phase_table("seeds", "seeds phases")

ib, seeds, floor = med(walls("warm", "imagebuilder")), med(walls("warm", "seeds")), med(walls("warm", "floor_gzip"))
def ratio_line(what, value, bar, ok):
    p(f"| {what} | {value:.2f}x | {bar} | {'MET' if ok else 'MISSED'} |")
p("| ratio (medians) | value | bar | |")
p("|---|---|---|---|")
ratio_line("warm: imagebuilder / floor (tar c \\| gzip -6)", ib / floor, "<= 1.5x", ib / floor <= 1.5)
ratio_line("warm: seeds / imagebuilder", seeds / ib, ">= 3x", seeds / ib >= 3)
if walls("warm", "imagebuilder_noimg"):
    p(f"| warm: imagebuilder with the images / without them (reference) | {ib / med(walls('warm', 'imagebuilder_noimg')):.2f}x | | |")
for label, what in (("floor_pigz", "imagebuilder / tar c | pigz -6"), ("floor_zstd", "imagebuilder / tar c | zstd -T0")):
    if walls("warm", label):
        p(f"| warm: {what.replace('|', chr(92) + '|')} (reference) | {ib / med(walls('warm', label)):.2f}x | | |")
ibpack = [phases(r).get("pack") for r in runs("warm", "imagebuilder")]
if walls("warm", "imagebuilder_b"):
    b = med(walls("warm", "imagebuilder_b"))
    ratio_line("warm: IMAGEBUILDER_B / floor (tar c \\| gzip -6)", b / floor, "<= 1.5x", b / floor <= 1.5)
    ratio_line("warm: seeds / IMAGEBUILDER_B", seeds / b, ">= 3x", seeds / b >= 3)
if all(ibpack):
    p(f"| warm: imagebuilder's pack phase alone / floor (reference) | {med(ibpack) / floor:.2f}x | | |")
if walls("cold", "imagebuilder"):
    p(f"| cold: seeds / imagebuilder (reference) | {med(walls('cold', 'seeds')) / med(walls('cold', 'imagebuilder')):.2f}x | | |")
if walls("cold", "imagebuilder_b"):
    p(f"| cold: seeds / IMAGEBUILDER_B (reference) | {med(walls('cold', 'seeds')) / med(walls('cold', 'imagebuilder_b')):.2f}x | | |")
p("")

# Same content? The seeds' tree against imagebuilder's (minus what only imagebuilder writes).
def index(path):
    d = {}
    with tarfile.open(path) as t:
        for m in t:
            n = m.name
            while n.startswith("./"): n = n[2:]
            n = n.rstrip("/")
            if n in ("", ".", "usr/share") or n.startswith("usr/share/k8s-image"): continue
            h = hashlib.sha256(t.extractfile(m).read()).hexdigest() if m.isfile() else m.linkname
            d[n] = (m.type, m.mode, h, m.uid, m.gid, m.mtime)
    return d
a, b = index(os.environ["BENCH_IB_LAYER"]), index(os.environ["BENCH_SEEDS_LAYER"])
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
p(f"same content: {'yes' if not diff else 'NO: ' + ', '.join(diff[:8])} ({len(a)} entries compared: path, type, mode, "
  f"owner, mtime, sha256/link target; imagebuilder also writes /usr/share/k8s-image/{{lock,SBOM,manifest}}); "
  f"imagebuilder layer identical across warm runs: {'yes' if os.environ['BENCH_IB_SHAS'] == '1' else 'NO'}")
if os.environ["BENCH_IB_B"]:
    def tar_sha(path):
        h = hashlib.sha256()
        with gzip.open(path) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    same = tar_sha(os.environ["BENCH_IB_LAYER"]) == tar_sha(os.environ["BENCH_IB_B_LAYER"])
    p(f"IMAGEBUILDER_B: layer identical across warm runs: {'yes' if os.environ['BENCH_IB_B_SHAS'] == '1' else 'NO'}; "
      f"unpacks to the same tar bytes as imagebuilder's: {'yes' if same else 'NO'}")
nproc, load = int(os.environ["BENCH_NPROC"]), os.environ["BENCH_LOAD"].split()
if float(load[0]) >= nproc / 2:
    p(f"warning: the machine was busy when the run started (1-minute load {load[0]}, {nproc} cores; the load at the end "
      "includes this benchmark's own): the numbers are inflated and noisy, multi-threaded ones (pigz, zstd -T0) most")
if not os.environ["BENCH_TIME"]:
    p("(no /usr/bin/time: CPU and peak RSS not measured; apt-get install -y time)")
print("\n".join(lines))
EOF
}
if [ -n "${RESULTS:-}" ]; then report | tee "$RESULTS"; else report; fi
