#!/usr/bin/env python3
"""bench/layer-artifacts.py: the download artifact set bench/layer.sh measures, made from the real demo layer.

manifests/demo.toml builds Kubernetes, etcd, containerd, runc, crictl and the CNI plugins from their Go modules;
bench/layer.sh measures packaging (fetch, verify, stage, check, pack), not compiling. So this takes the programs
imagebuilder built (out of the demo layer, DEMO_OUT/layer.tar.gz, each checked against the sha256 the lock records
for it) and lays them out the way the upstream releases publish them (see manifests/default.toml):

  kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubelet, kubectl, kubeadm, crictl
                                           single binaries, named like the program
  runc.amd64                               a single binary
  etcd-v<V>-linux-amd64.tar.gz             etcd-v<V>-linux-amd64/{etcd,etcdctl}
  containerd-<V>-linux-amd64.tar.gz        bin/{containerd,ctr,containerd-shim-runc-v2}
  cni-plugins-linux-amd64-v<V>.tgz         ./{bridge,host-local,loopback,portmap}

(<V> is the artifact's version in manifests/demo.toml), plus the demo's downloaded artifacts (the two OCI image
archives and containerd-config.toml) copied from demo/artifacts/ (each checked against the lock too), and a
SHA256SUMS over all of them. Tarballs are deterministic: GNU tar --sort=name, 0:0, mtime = source_date_epoch,
gzip -6 -n.

It also writes a manifest equivalent to manifests/demo.toml for that set: the same name, versions, [host], install
paths, modes (the lock's), image pins and replace_content, every artifact a `url` + `checksum_url = "SHA256SUMS"`
download from BASE_URL; no [go] or [[go_module]]. Versions and paths come from manifests/demo.toml and the lock; the
only thing written here is how upstream packs each component (BUNDLES, SINGLE_NAMES).

  bench/layer-artifacts.py --manifest manifests/demo.toml --demo-out out/demo --demo-artifacts demo/artifacts \
      --out DIR --bench-manifest FILE --base-url file:///DIR/

Exits 3 when the demo layer is missing or does not match manifests/demo.toml (rerun ./demo/build.sh).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib

# How upstream publishes programs demo.toml builds as separate artifacts: (download artifact name, the demo.toml
# artifacts it holds, archive name, directory its programs are under inside the archive). {version} is the demo
# artifacts' version (they must agree).
BUNDLES = [
    ("etcd", ["etcd", "etcdctl"], "etcd-v{version}-linux-amd64.tar.gz", "etcd-v{version}-linux-amd64/"),
    ("containerd", ["containerd", "containerd-shim-runc-v2"], "containerd-{version}-linux-amd64.tar.gz", "bin/"),
    ("cni-plugins", ["cni-plugins"], "cni-plugins-linux-amd64-v{version}.tgz", "./"),
]
# Single-binary downloads not named like the program.
SINGLE_NAMES = {"runc": "runc.amd64"}


def die(msg, code=1):
    print(f"bench/layer-artifacts.py: {msg}", file=sys.stderr)
    sys.exit(code)


def stale(msg):
    die(f"{msg}: the demo layer is missing or stale; run ./demo/build.sh first", 3)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for what manifests hold (no control characters)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    die(f"cannot write {v!r} as TOML")


def table(lines, header, d):
    lines.append(header)
    for k, v in d.items():
        if isinstance(v, dict):
            die(f"nested table {k} under {header} is not supported")
        lines.append(f"{k} = {toml_value(v)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--demo-out", required=True, help="where ./demo/build.sh wrote layer.tar.gz and lock.json")
    ap.add_argument("--demo-artifacts", required=True)
    ap.add_argument("--out", required=True, help="the artifact directory to make (must not exist)")
    ap.add_argument("--bench-manifest", required=True)
    ap.add_argument("--base-url", required=True)
    args = ap.parse_args()

    layer = os.path.join(args.demo_out, "layer.tar.gz")
    lock_path = os.path.join(args.demo_out, "lock.json")
    for p in (layer, lock_path):
        if not os.path.isfile(p):
            stale(f"no {p}")
    with open(args.manifest, "rb") as f:
        manifest = tomllib.load(f)
    with open(lock_path) as f:
        lock = json.load(f)
    locked = {a["name"]: a for a in lock["artifacts"]}
    epoch = manifest.get("source_date_epoch", 0)

    artifacts = manifest["artifact"]
    for a in artifacts:
        la = locked.get(a["name"])
        if la is None or la["version"] != a["version"] or not la["files"]:
            stale(f"{lock_path} has no artifact {a['name']} {a['version']} with files")
        if ("go" in a) != ("go" in la):
            stale(f"{lock_path}: artifact {a['name']} is {'not ' if 'go' not in la else ''}a Go build there")

    bundle_of = {n: b for b in BUNDLES for n in b[1]}
    os.makedirs(args.out)
    stage = args.out.rstrip("/") + ".stage"
    os.makedirs(stage)

    # Where each built program goes: node path -> (destination file, lock record).
    dest = {}
    plans = []  # (demo artifact names, download name, kind, data) in manifest order, one per download
    seen_bundles = set()
    for a in artifacts:
        if "go" not in a:
            continue
        files = locked[a["name"]]["files"]
        b = bundle_of.get(a["name"])
        if b is None:
            if len(files) != 1 or "file" not in a["install"]:
                die(f"artifact {a['name']}: a Go build installing {len(files)} files is in no BUNDLES entry")
            f = files[0]
            name = SINGLE_NAMES.get(a["name"], os.path.basename(f["path"]))
            dest[f["path"]] = (os.path.join(args.out, name), f)
            plans.append(("single", a, name, f))
            continue
        bname, members, archive, prefix = b
        if bname in seen_bundles:
            continue
        seen_bundles.add(bname)
        parts = [x for x in artifacts if x["name"] in members]
        if sorted(x["name"] for x in parts) != sorted(members):
            die(f"bundle {bname}: manifests/demo.toml lacks some of {members}")
        versions = {x["version"] for x in parts}
        if len(versions) != 1:
            die(f"bundle {bname}: the artifacts {members} have different versions {sorted(versions)}")
        version = versions.pop()
        archive, prefix = archive.format(version=version), prefix.format(version=version)
        bfiles = [f for x in parts for f in locked[x["name"]]["files"]]
        dirs = {os.path.dirname(f["path"]) for f in bfiles}
        modes = {f["mode"] for f in bfiles}
        if len(dirs) != 1 or len(modes) != 1:
            die(f"bundle {bname}: its programs go to several directories {sorted(dirs)} or modes {sorted(modes)}")
        root = os.path.join(stage, bname)
        os.makedirs(os.path.join(root, prefix), exist_ok=True)
        for f in bfiles:
            dest[f["path"]] = (os.path.join(root, prefix, os.path.basename(f["path"])), f)
        member_names = [prefix + os.path.basename(f["path"]) for f in bfiles]
        plans.append(("bundle", parts, archive, dict(name=bname, version=version, root=root, prefix=prefix,
                                                      dir=dirs.pop(), mode=modes.pop(), members=member_names)))

    # The programs, out of the demo layer, each checked against the lock.
    got = set()
    with tarfile.open(layer, "r|gz") as t:
        for m in t:
            path = m.name
            while path.startswith("./"):
                path = path[2:]
            path = "/" + path.lstrip("/")
            if path not in dest or not m.isfile():
                continue
            out, rec = dest[path]
            h = hashlib.sha256()
            src = t.extractfile(m)
            with open(out, "wb") as w:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    w.write(chunk)
            if h.hexdigest() != rec["sha256"]:
                stale(f"{layer}: {path} does not have the sha256 {lock_path} records")
            os.chmod(out, rec["mode"])
            got.add(path)
    missing = sorted(set(dest) - got)
    if missing:
        stale(f"{layer} lacks {', '.join(missing)}")

    # The archives, deterministic.
    for kind, _, name, data in plans:
        if kind != "bundle":
            continue
        what = "." if data["prefix"] == "./" else data["prefix"].rstrip("/")
        with open(os.path.join(args.out, name), "wb") as w:
            tar = subprocess.Popen(["tar", "-C", data["root"], "--sort=name", "--owner=0", "--group=0",
                                    "--numeric-owner", f"--mtime=@{epoch}", "-cf", "-", what], stdout=subprocess.PIPE)
            gz = subprocess.run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=w)
            tar.stdout.close()
            if tar.wait() != 0 or gz.returncode != 0:
                die(f"tar | gzip of {name} failed")
    shutil.rmtree(stage)

    # The demo's own downloads (images, containerd config), copied and checked against the lock.
    for a in artifacts:
        if "go" in a:
            continue
        url = a.get("url")
        if not url or "://" in url or "/" in url:
            die(f"artifact {a['name']}: url {url!r} is not a file name in {args.demo_artifacts}")
        src = os.path.join(args.demo_artifacts, url)
        if not os.path.isfile(src):
            stale(f"no {src}")
        shutil.copyfile(src, os.path.join(args.out, url))
        sha = sha256_file(src)
        if [f["sha256"] for f in locked[a["name"]]["files"]] != [sha]:
            stale(f"{src} is not what {lock_path} records for artifact {a['name']}")

    names = sorted(os.listdir(args.out))
    with open(os.path.join(args.out, "SHA256SUMS"), "w") as f:
        for n in names:
            f.write(f"{sha256_file(os.path.join(args.out, n))}  {n}\n")

    # The manifest.
    plan_of = {id(x): p for p in plans for x in ([p[1]] if p[0] == "single" else p[1])}
    lines = [f"# Generated by bench/layer-artifacts.py from {args.manifest} and {lock_path}: the same image as",
             "# downloads of what the demo build made (see that script).", ""]
    for k in ("schema_version", "name", "kubernetes_version", "arch", "source_date_epoch"):
        if k in manifest:
            lines.append(f"{k} = {toml_value(manifest[k])}")
    lines.append(f"base_url = {toml_value(args.base_url)}")
    if "host" in manifest:
        lines.append("")
        table(lines, "[host]", manifest["host"])
    for a in artifacts:
        if "go" not in a:
            head = {k: v for k, v in a.items() if k not in ("install", "checksum", "checksum_url")}
            head["checksum_url"] = "SHA256SUMS"
            install = a["install"]
        else:
            plan = plan_of[id(a)]
            if plan[0] == "bundle" and plan[1][0] is not a:
                continue  # a bundle is written once, where its first artifact is
            kind, _, url, data = plan
            if kind == "single":
                head = {"name": a["name"], "version": a["version"], "url": url, "checksum_url": "SHA256SUMS"}
                install = {"file": data["path"], "mode": f"{data['mode']:04o}"}
                if a["install"].get("replace_content"):
                    install["replace_content"] = True
            else:
                head = {"name": data["name"], "version": data["version"], "url": url, "checksum_url": "SHA256SUMS"}
                install = {"dir": data["dir"], "members": data["members"], "mode": f"{data['mode']:04o}"}
            if any(x.get("standin") for x in ([a] if kind == "single" else plan[1])):
                head["standin"] = True
        lines.append("")
        table(lines, "[[artifact]]", head)
        table(lines, "[artifact.install]", install)
    with open(args.bench_manifest, "w") as f:
        f.write("\n".join(lines) + "\n")
    size = sum(os.path.getsize(os.path.join(args.out, n)) for n in names)
    print(f"{len(names)} {size}")


if __name__ == "__main__":
    main()
