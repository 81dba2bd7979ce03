# shellcheck shell=bash
# tests/local/images.sh: sourced by tests/local/e2e.sh while the local cluster is up. The container images baked
# into the image, on Debian 13 nodes with the real containerd 1.7 and runc:
#   - every minion imported them into containerd's k8s.io namespace before kubelet, pinned (`ctr images ls` shows
#     io.cri-containerd.pinned=pinned and the digest the image's lock records), and status says so;
#   - containerd's live configuration (`containerd config dump`) names the baked pause image as the sandbox image;
#   - a restart of the agent imports nothing again (status says "present", the image's creation time is unchanged);
#   - a real container runs from the pause image (containerd + runc on the node): it is RUNNING, it is PID 1 of its
#     PID namespace, and SIGTERM ends it with exit status 0;
#   - a minion whose pause archive is corrupt (bind-mounted over the baked one) is refused at boot: the import fails
#     with containerd's digest error in status, and kubelet never starts.
# Uses ok/bad/check/inside/json/field/prop from e2e.sh and $TEST_JSON (tests/local/lib.sh) for the image's lock.

lock_images() { # node → "reference digest" lines from the node's lock
  inside "$1" cat /usr/share/k8s-image/lock.json | "$TEST_JSON" lock images
}
ctr_ls() { inside "$1" ctr -n k8s.io images ls 2>/dev/null; }

echo "--- images: baked, imported before kubelet, pinned, run by containerd and runc"
mapfile -t baked < <(lock_images minion1)
check "the image's lock lists the baked images (${#baked[@]}: ${baked[*]%% *})" [ "${#baked[@]}" -ge 2 ]
for n in minion1 minion2; do
  listing=$(ctr_ls "$n")
  for entry in "${baked[@]}"; do
    ref=${entry%% *} digest=${entry#* }
    line=$(awk -v r="$ref" '$1 == r' <<<"$listing")
    check "$n: ctr images ls shows $ref with the locked digest" grep -qF "$digest" <<<"$line"
    check "$n: $ref is labelled io.cri-containerd.pinned=pinned" grep -q 'io.cri-containerd.pinned=pinned' <<<"$line"
  done
  imported=$(json "$n" | field join.images.outcome)
  check "$n: status reports every image imported ($imported)" bash -c "[ -n '$imported' ] && ! grep -qv imported <<<'$(tr ' ' '\n' <<<"$imported")'"
  s=$(json "$n")
  import_at="$(field transition_at.import-images <<<"$s") $(field transition_at.start-units <<<"$s")"
  check "$n: the images were imported before weave and kubelet started ($import_at)" \
    bash -c "set -- $import_at; [ \"\$1\" -gt 0 ] && [ \"\$2\" -gt \"\$1\" ]"
done
# containerd 2.x dumps config version 3: [plugins.'io.containerd.cri.v1.images'.pinned_images] sandbox = "…"
# (1.x: sandbox_image = "…").
sandbox=$(inside minion1 containerd config dump 2>/dev/null |
  sed -nE "s/^ *(sandbox|sandbox_image) = [\"']([^\"']+)[\"']\$/\2/p" | head -n 1)
sandbox_is_baked() { [ -n "$sandbox" ] && grep -qF "$sandbox " <<<"$(printf '%s\n' "${baked[@]}")"; }
check "minion1: containerd's live config names the baked pause image as the sandbox image ($sandbox)" sandbox_is_baked

# A restart of the agent (as after a crash) re-imports nothing.
created_before=$(inside minion1 ctr -n k8s.io images ls 2>/dev/null | awk -v r="$sandbox" '$1 == r' | md5sum)
inside minion1 systemctl restart k8s-agent
restarted_ok() {
  local deadline=$(( $(date +%s) + 20 )) s
  while [ "$(date +%s)" -lt "$deadline" ]; do
    s=$(json minion1)
    if [ "$(field condition <<<"$s")" = ready ] && [ "$(field restarts <<<"$s")" -ge 2 ]; then return 0; fi
    sleep 0.3
  done
  return 1
}
check "minion1: the restarted agent is Ready again" restarted_ok
check "minion1: and imported nothing again (the pause image's entry is unchanged)" \
  [ "$(inside minion1 ctr -n k8s.io images ls 2>/dev/null | awk -v r="$sandbox" '$1 == r' | md5sum)" = "$created_before" ]

# A real container from the pause image: PID 1 of its namespace, ended by SIGTERM with status 0. `ctr run` in the
# foreground (in the background of the node) exits with the container's status (ctr 1.7 has no `task wait`).
# shellcheck disable=SC2016 # expanded by the node's shell
inside minion1 sh -c 'rm -f /run/e2e-pause.status
  nohup sh -c "ctr -n k8s.io run --rm --net-host \"\$0\" e2e-pause; echo \$? >/run/e2e-pause.status" "$0" \
    >/dev/null 2>&1 &' "$sandbox"
pause_running() {
  local deadline=$(( $(date +%s) + 10 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    inside minion1 ctr -n k8s.io task ls 2>/dev/null | awk '$1 == "e2e-pause" { print $3 }' | grep -qx RUNNING && return 0
    sleep 0.2
  done
  return 1
}
check "minion1: a container from $sandbox runs (containerd + runc)" pause_running
pause_pid=$(inside minion1 ctr -n k8s.io task ls 2>/dev/null | awk '$1 == "e2e-pause" { print $2 }')
pid1_of_its_namespace() { inside minion1 cat "/proc/$pause_pid/status" 2>/dev/null | grep -qE '^NSpid:.*[[:space:]]1$'; }
check "minion1: the pause process is PID 1 of its PID namespace" pid1_of_its_namespace
inside minion1 ctr -n k8s.io task kill -s SIGTERM e2e-pause >/dev/null 2>&1 || true
# shellcheck disable=SC2016 # expanded by the node's shell
pause_status=$(inside minion1 sh -c 'for _ in $(seq 50); do [ -s /run/e2e-pause.status ] && break; sleep 0.2; done
  cat /run/e2e-pause.status 2>/dev/null' | tr -d '[:space:]' || true)
check "minion1: SIGTERM ends the pause container with exit status 0 (got '$pause_status')" [ "$pause_status" = 0 ]
check "minion1: and \`ctr run --rm\` removed it" \
  [ -z "$(inside minion1 ctr -n k8s.io containers ls -q 2>/dev/null | grep -x e2e-pause)" ]


# A minion whose pause archive is corrupt (one byte flipped in a blob, bind-mounted over the baked archive): the import
# is refused at boot with containerd's digest error, and nothing that runs containers starts.
corrupt=$(mktemp /run/k8s-local/corrupt-pause.XXXXXX.tar)
cp "$(root_of minion1)/usr/share/k8s-image/images/pause.tar" "$corrupt"
python3 - "$corrupt" <<'PY'
import sys, tarfile
path = sys.argv[1]
with tarfile.open(path) as t:
    blobs = [m for m in t.getmembers() if m.name.startswith("blobs/") and m.size > 100000]
    member = max(blobs, key=lambda m: m.size)
with open(path, "r+b") as f:
    f.seek(member.offset_data + member.size // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0xFF]))
PY
bad_archive=$(MINION_NSPAWN_ARGS="--bind-ro=$corrupt:/usr/share/k8s-image/images/pause.tar" $LC add-minion --no-wait 2>>/tmp/k8s-local-add.err | tail -n 1)
waits_in_import() { # node text → within 40 s the node waits in import-images with text in its reason
  local deadline=$(( $(date +%s) + 40 )) s
  while [ "$(date +%s)" -lt "$deadline" ]; do
    s=$(json "$1")
    if [ "$(field phase <<<"$s")" = import-images ] && grep -qF "$2" <<<"$(field blocking <<<"$s")"; then
      echo "    $(field blocking <<<"$s" | cut -c1-240)"
      return 0
    fi
    sleep 0.5
  done
  echo "    $1: $(field phase <<<"$s"): $(field blocking <<<"$s")"
  return 1
}
check "$bad_archive (corrupt pause archive) is refused at boot: the import fails, the node waits in import-images" \
  waits_in_import "$bad_archive" 'importing the baked container images'
check "$bad_archive: kubelet never ran" [ "$(prop "$bad_archive" kubelet.service ActiveEnterTimestampMonotonic)" = 0 ]
check "$bad_archive: no half-imported pause record is left in containerd" \
  [ -z "$(inside "$bad_archive" ctr -n k8s.io images ls -q 2>/dev/null | grep -xF "$sandbox")" ]

# A minion whose pause archive was swapped for another, intact image under the same name (another digest than the
# lock's): imported, seen to be the wrong image, removed again; the node is blocked and says why.
swapped=$(mktemp /run/k8s-local/swapped-pause.XXXXXX.tar)
target/release/imagebuilder oci-image --ref "$sandbox" --created 1 --out "$swapped" \
  --file demo/artifacts/.build/busybox:/pause:0755 --entrypoint /pause >/dev/null
other_archive=$(MINION_NSPAWN_ARGS="--bind-ro=$swapped:/usr/share/k8s-image/images/pause.tar" $LC add-minion --no-wait 2>>/tmp/k8s-local-add.err | tail -n 1)
check "$other_archive (pause archive swapped for another image) is blocked in import-images: the lock's digest is not the archive's" \
  waits_in_import "$other_archive" "in its baked archive, the image's lock says $(field join.images.0.digest <<<"$(json minion1)")"
check "$other_archive: status shows the wrong digest" grep -q 'WRONG DIGEST' <<<"$(inside "$other_archive" k8s-agent status --no-units 2>/dev/null)"
check "$other_archive: the other image was removed from containerd again" \
  [ -z "$(inside "$other_archive" ctr -n k8s.io images ls -q 2>/dev/null | grep -xF "$sandbox")" ]
check "$other_archive: kubelet never ran" [ "$(prop "$other_archive" kubelet.service ActiveEnterTimestampMonotonic)" = 0 ]
