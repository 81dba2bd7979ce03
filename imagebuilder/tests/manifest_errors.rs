//! The bad-manifest table: every way a manifest can be wrong gives one exact error, at the right line and column,
//! with a hint. Also checks that the shipped manifests parse.

use imagebuilder::checksum::ChecksumAlgo;
use imagebuilder::manifest::{
    ArchiveFormat, ChecksumPin, Install, Manifest, ManifestErrorKind as K,
};
use std::path::{Path, PathBuf};

const GOOD: &str = r#"schema_version = 1
name = "k8s-node"
kubernetes_version = "1.35.0"
arch = "amd64"
source_date_epoch = 1767225600
base_url = "https://example.invalid/rel/"

[host]
packages = ["conntrack", "socat"]

[[artifact]]
name = "kubelet"
version = "1.35.0"
url = "https://dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet"
sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
[artifact.install]
file = "/usr/bin/kubelet"
mode = "0755"

[[artifact]]
name = "cni-plugins"
version = "1.8.0"
url = "cni-plugins-linux-amd64-v1.8.0.tgz"
checksum_url = "cni-plugins-linux-amd64-v1.8.0.tgz.sha256"
[artifact.install]
dir = "/opt/cni/bin"
members = ["./loopback", "./bridge"]
"#;

/// GOOD with a baked container image, pulled from its registry (no url: pinned by manifest_digest alone).
fn good_with_image() -> String {
    format!(
        "{GOOD}
[[artifact]]
name = \"pause\"
version = \"3.10.1\"
[artifact.install]
image = \"registry.k8s.io/pause:3.10.1\"
manifest_digest = \"sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c\"
"
    )
}

fn parse(text: &str) -> Result<Manifest, imagebuilder::manifest::ManifestError> {
    Manifest::parse(Path::new("/etc/image.toml"), text)
}

#[test]
fn the_good_manifest_parses_to_the_expected_values() {
    let m = parse(GOOD).expect("good manifest");
    assert_eq!(m.name, "k8s-node");
    assert_eq!(m.kubernetes_version, "1.35.0");
    assert_eq!(m.source_date_epoch, Some(1_767_225_600));
    assert_eq!(m.host_packages, vec!["conntrack", "socat"]);
    assert_eq!(m.artifacts.len(), 2);
    let kubelet = &m.artifacts[0];
    assert!(matches!(&kubelet.pin, ChecksumPin::Fixed(c) if c.algo == ChecksumAlgo::Sha256));
    assert_eq!(
        kubelet.install,
        Install::File {
            path: "/usr/bin/kubelet".into(),
            mode: 0o755,
            replace_content: false
        }
    );
    let cni = &m.artifacts[1];
    assert_eq!(
        cni.url.as_str(),
        "https://example.invalid/rel/cni-plugins-linux-amd64-v1.8.0.tgz"
    );
    assert!(
        matches!(&cni.pin, ChecksumPin::Published(u) if u.as_str() == "https://example.invalid/rel/cni-plugins-linux-amd64-v1.8.0.tgz.sha256")
    );
    assert_eq!(
        cni.install,
        Install::Archive {
            format: ArchiveFormat::TarGz,
            dir: "/opt/cni/bin".into(),
            members: vec!["./loopback".into(), "./bridge".into()],
            mode: 0o755
        }
    );
    assert_eq!(
        cni.install.target_paths(),
        vec!["/opt/cni/bin/loopback", "/opt/cni/bin/bridge"]
    );
}

/// (case, edit of GOOD, expected line, expected column, expected kind).
fn table() -> Vec<(&'static str, String, usize, usize, K)> {
    let r = |from: &str, to: &str| {
        assert!(GOOD.contains(from), "table edit {from:?} does not apply");
        GOOD.replacen(from, to, 1)
    };
    vec![
        (
            "unknown top-level key",
            r("arch = \"amd64\"\n", "arch = \"amd64\"\narchitecture = \"x\"\n"),
            5,
            1,
            K::Toml(
                "unknown field `architecture`, expected one of `schema_version`, `name`, `kubernetes_version`, `arch`, `source_date_epoch`, `base_url`, `host`, `go`, `go_module`, `artifact`"
                    .into(),
            ),
        ),
        (
            "unknown artifact key (typo)",
            r("version = \"1.35.0\"\nurl", "version = \"1.35.0\"\nsha265 = \"x\"\nurl"),
            14,
            1,
            K::Toml(
                "unknown field `sha265`, expected one of `name`, `version`, `url`, `sha256`, `sha512`, `checksum_url`, `standin`, `go`, `install`"
                    .into(),
            ),
        ),
        (
            "unknown install key",
            r("mode = \"0755\"", "mode = \"0755\"\nowner = \"root\""),
            19,
            1,
            K::Toml(
                "unknown field `owner`, expected one of `file`, `dir`, `members`, `mode`, `replace_content`, `image`, `manifest_digest`".into(),
            ),
        ),
        ("missing name", r("name = \"k8s-node\"\n", ""), 1, 1, K::Toml("missing field `name`".into())),
        (
            "wrong type",
            r("schema_version = 1", "schema_version = \"1\""),
            1,
            18,
            K::Toml("invalid type: string \"1\", expected i64".into()),
        ),
        (
            "toml syntax",
            r("arch = \"amd64\"", "arch = \"amd64"),
            4,
            14,
            K::Toml("invalid basic string, expected `\"`".into()),
        ),
        ("schema 2", r("schema_version = 1", "schema_version = 2"), 1, 18, K::UnsupportedSchema(2)),
        ("bad image name", r("name = \"k8s-node\"", "name = \"K8s Node\""), 2, 8, K::BadName("K8s Node".into())),
        (
            "v-prefixed version",
            r("kubernetes_version = \"1.35.0\"", "kubernetes_version = \"v1.35.0\""),
            3,
            22,
            K::BadKubernetesVersion("v1.35.0".into()),
        ),
        (
            "too old kubernetes",
            r("kubernetes_version = \"1.35.0\"", "kubernetes_version = \"1.20.2\""),
            3,
            22,
            K::KubernetesTooOld("1.20.2".into()),
        ),
        ("arch", r("arch = \"amd64\"", "arch = \"x86_64\""), 4, 8, K::UnsupportedArch("x86_64".into())),
        (
            "negative epoch",
            r("source_date_epoch = 1767225600", "source_date_epoch = -1"),
            5,
            21,
            K::BadSourceDateEpoch(-1),
        ),
        (
            "bad host package",
            r("\"socat\"]", "\"Socat!\"]"),
            9,
            26,
            K::BadHostPackage("Socat!".into()),
        ),
        (
            "ftp url",
            r("url = \"https://dl.k8s.io", "url = \"ftp://dl.k8s.io"),
            14,
            7,
            K::BadUrl {
                url: "ftp://dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet".into(),
                reason: "scheme \"ftp\" is not http, https or file".into(),
            },
        ),
        (
            "relative url without base_url",
            r("base_url = \"https://example.invalid/rel/\"\n", ""),
            22,
            7,
            K::BadUrl {
                url: "cni-plugins-linux-amd64-v1.8.0.tgz".into(),
                reason: "it is relative and the manifest has no base_url".into(),
            },
        ),
        (
            "two pins",
            r(
                "checksum_url = \"cni-plugins-linux-amd64-v1.8.0.tgz.sha256\"",
                "checksum_url = \"x.sha256\"\nsha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"",
            ),
            20,
            1,
            K::ChecksumCount {
                artifact: "cni-plugins".into(),
                found: 2,
            },
        ),
        (
            "no pin",
            r("checksum_url = \"cni-plugins-linux-amd64-v1.8.0.tgz.sha256\"\n", ""),
            20,
            1,
            K::ChecksumCount {
                artifact: "cni-plugins".into(),
                found: 0,
            },
        ),
        (
            "short sha256",
            r("sha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"", "sha256 = \"e3b0c442\""),
            15,
            10,
            K::BadChecksum {
                artifact: "kubelet".into(),
                reason: "sha256 digest has 8 characters, expected 64".into(),
            },
        ),
        (
            "non-hex sha512",
            r(
                "sha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"",
                &format!("sha512 = \"{}\"", "z".repeat(128)),
            ),
            15,
            10,
            K::BadChecksum {
                artifact: "kubelet".into(),
                reason: format!("sha512 digest {:?} is not hexadecimal", "z".repeat(128)),
            },
        ),
        (
            "duplicate artifact",
            r("name = \"cni-plugins\"", "name = \"kubelet\""),
            21,
            8,
            K::DuplicateArtifact("kubelet".into()),
        ),
        (
            "file and dir",
            r("file = \"/usr/bin/kubelet\"", "file = \"/usr/bin/kubelet\"\ndir = \"/usr/bin\""),
            16,
            1,
            K::InstallKind {
                artifact: "kubelet".into(),
            },
        ),
        (
            "relative install path",
            r("file = \"/usr/bin/kubelet\"", "file = \"usr/bin/kubelet\""),
            17,
            8,
            K::BadInstallPath {
                path: "usr/bin/kubelet".into(),
                reason: "is not absolute".into(),
            },
        ),
        (
            "dot-dot install path",
            r("file = \"/usr/bin/kubelet\"", "file = \"/usr/bin/../sbin/kubelet\""),
            17,
            8,
            K::BadInstallPath {
                path: "/usr/bin/../sbin/kubelet".into(),
                reason: "is not normalised (empty, '.' or '..' components, or a trailing '/')".into(),
            },
        ),
        ("decimal mode", r("mode = \"0755\"", "mode = \"755a\""), 18, 8, K::BadMode("755a".into())),
        (
            "members with file",
            r("mode = \"0755\"", "mode = \"0755\"\nmembers = [\"x\"]"),
            19,
            11,
            K::MembersWithoutDir {
                artifact: "kubelet".into(),
            },
        ),
        (
            "empty members",
            r("members = [\"./loopback\", \"./bridge\"]", "members = []"),
            27,
            11,
            K::NoMembers {
                artifact: "cni-plugins".into(),
            },
        ),
        (
            "member escaping",
            r("\"./bridge\"", "\"../bridge\""),
            27,
            26,
            K::BadMember {
                member: "../bridge".into(),
                reason: "contains '..'".into(),
            },
        ),
        (
            "members with the same basename",
            r("\"./bridge\"", "\"bin/loopback\""),
            27,
            26,
            K::BadMember {
                member: "bin/loopback".into(),
                reason: "has the same file name as another member of this artifact".into(),
            },
        ),
        (
            "archive install of a non-archive",
            r("cni-plugins-linux-amd64-v1.8.0.tgz\"\n", "cni-plugins-linux-amd64-v1.8.0.zip\"\n"),
            23,
            7,
            K::UnknownArchiveFormat {
                artifact: "cni-plugins".into(),
                url: "https://example.invalid/rel/cni-plugins-linux-amd64-v1.8.0.zip".into(),
            },
        ),
        (
            "two artifacts install one path",
            r("dir = \"/opt/cni/bin\"\nmembers = [\"./loopback\", \"./bridge\"]", "dir = \"/usr/bin\"\nmembers = [\"./kubelet\"]"),
            25,
            1,
            K::PathCollision {
                path: "/usr/bin/kubelet".into(),
                first: "kubelet".into(),
            },
        ),
        (
            "replace_content on an archive",
            r("dir = \"/opt/cni/bin\"", "dir = \"/opt/cni/bin\"\nreplace_content = true"),
            27,
            19,
            K::ReplaceWithoutFile {
                artifact: "cni-plugins".into(),
            },
        ),
        (
            "reserved path",
            r("file = \"/usr/bin/kubelet\"", "file = \"/usr/bin/k8s-agent\""),
            16,
            1,
            K::ReservedPath("/usr/bin/k8s-agent".into()),
        ),
    ]
}

#[test]
fn every_bad_manifest_gives_its_exact_error() {
    assert_table(table());
}

#[test]
fn every_bad_image_artifact_gives_its_exact_error() {
    assert_table(image_table());
}

fn assert_table(table: Vec<(&'static str, String, usize, usize, K)>) {
    let mut failures = Vec::new();
    for (case, text, line, column, kind) in table {
        match parse(&text) {
            Ok(_) => failures.push(format!("{case}: parsed, expected {kind:?}")),
            Err(e) => {
                if (e.line, e.column, &e.kind) != (line, column, &kind) {
                    failures.push(format!(
                        "{case}: got {}:{} {:?}\n      expected {line}:{column} {kind:?}",
                        e.line, e.column, e.kind
                    ));
                }
                let shown = e.to_string();
                if !shown.starts_with(&format!("/etc/image.toml:{}:{}: ", e.line, e.column))
                    || !shown.contains("\n  hint: ")
                {
                    failures.push(format!(
                        "{case}: rendered without file:line:column or hint: {shown}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn an_image_artifact_parses_to_a_registry_pull_or_a_downloaded_archive() {
    let m = parse(&good_with_image()).expect("good manifest with an image");
    let pause = &m.artifacts[2];
    assert_eq!(
        pause.install,
        Install::Image {
            reference: "registry.k8s.io/pause:3.10.1".into(),
            manifest_digest:
                "sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c".into(),
            path: "/usr/share/k8s-image/images/pause.tar".into(),
        }
    );
    assert!(matches!(pause.pin, ChecksumPin::Registry));
    assert_eq!(
        pause.install.target_paths(),
        vec!["/usr/share/k8s-image/images/pause.tar"]
    );

    let archived = good_with_image().replace(
        "version = \"3.10.1\"\n",
        "version = \"3.10.1\"\nurl = \"pause-3.10.1.oci.tar\"\nsha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
    );
    let m = parse(&archived).expect("an image from a downloaded OCI archive");
    assert!(matches!(&m.artifacts[2].pin, ChecksumPin::Fixed(_)));
    assert_eq!(
        m.artifacts[2].url.as_str(),
        "https://example.invalid/rel/pause-3.10.1.oci.tar"
    );
}

/// The image cases: edits of [`good_with_image`].
fn image_table() -> Vec<(&'static str, String, usize, usize, K)> {
    let good = good_with_image();
    let r = |from: &str, to: &str| {
        assert!(good.contains(from), "table edit {from:?} does not apply");
        good.replacen(from, to, 1)
    };
    let digest = "sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c";
    vec![
        (
            "image without manifest_digest",
            r(&format!("manifest_digest = \"{digest}\"\n"), ""),
            32,
            1,
            K::ImageInstall {
                artifact: "pause".into(),
                reason: "an image needs its manifest_digest".into(),
            },
        ),
        (
            "manifest_digest without image",
            r("image = \"registry.k8s.io/pause:3.10.1\"\n", "file = \"/usr/bin/pause\"\n"),
            34,
            19,
            K::ImageInstall {
                artifact: "pause".into(),
                reason: "manifest_digest only goes with image".into(),
            },
        ),
        (
            "image with a mode",
            r("image = ", "mode = \"0644\"\nimage = "),
            33,
            8,
            K::ImageInstall {
                artifact: "pause".into(),
                reason: "`mode` does not go with `image`".into(),
            },
        ),
        (
            "image without a tag",
            r("registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause"),
            33,
            9,
            K::BadImageReference {
                reference: "registry.k8s.io/pause".into(),
                reason: "it has no tag (':3.10.1') or digest".into(),
            },
        ),
        (
            "image without a registry host",
            r("registry.k8s.io/pause:3.10.1", "pause:3.10.1"),
            33,
            9,
            K::BadImageReference {
                reference: "pause:3.10.1".into(),
                reason: "it has no registry host (e.g. registry.k8s.io/)".into(),
            },
        ),
        (
            "short manifest digest",
            r(digest, "sha256:278fb9db"),
            34,
            19,
            K::BadManifestDigest("sha256:278fb9db".into()),
        ),
        (
            "a registry image with a file checksum",
            r(
                "version = \"3.10.1\"\n",
                "version = \"3.10.1\"\nsha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
            ),
            32,
            10,
            K::ImageInstall {
                artifact: "pause".into(),
                reason: "an image pulled from its registry is pinned by manifest_digest alone (sha256, sha512 and \
                         checksum_url pin a downloaded archive: give its url too)"
                    .into(),
            },
        ),
        (
            "a file artifact without url",
            r(
                "url = \"https://dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet\"\n",
                "",
            ),
            11,
            1,
            K::Toml(
                "artifact \"kubelet\": missing field `url` (only a container image with install.image and \
                 install.manifest_digest may leave it out, to be pulled from its registry)"
                    .into(),
            ),
        ),
    ]
}

#[test]
fn an_unreadable_manifest_names_the_file() {
    let err = Manifest::load(Path::new("/nonexistent/image.toml")).expect_err("missing file");
    assert!(matches!(err.kind, K::Unreadable(_)));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/image.toml:0:0: cannot read the manifest"),
        "{err}"
    );
}

#[test]
fn relative_base_url_resolves_against_the_manifest_directory() {
    let text = GOOD.replace("https://example.invalid/rel/", "../artifacts/");
    let m = Manifest::parse(Path::new("/srv/images/manifests/image.toml"), &text).expect("parses");
    assert_eq!(
        m.artifacts[1].url.as_str(),
        "file:///srv/images/artifacts/cni-plugins-linux-amd64-v1.8.0.tgz"
    );
    assert_eq!(
        m.artifacts[1].source_label,
        "../artifacts/cni-plugins-linux-amd64-v1.8.0.tgz"
    );
    assert_eq!(
        m.artifacts[1].checksum_label,
        "../artifacts/cni-plugins-linux-amd64-v1.8.0.tgz.sha256"
    );
}

#[test]
fn shipped_manifests_parse() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).expect("manifests dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let m = Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !m.artifacts.is_empty(),
                "{} has no artifacts",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected manifests/default.toml and manifests/demo.toml"
    );
}

/// A manifest that builds from Go modules: one program (install.file) and several (install.dir).
const GO_GOOD: &str = r#"schema_version = 1
name = "k8s-node"
kubernetes_version = "1.37.2"
arch = "amd64"
source_date_epoch = 1767225600

[go]
toolchain = "go1.26.8"

[[go_module]]
name = "kubernetes"
path = "k8s.io/kubernetes"
version = "v1.37.2"
sum = "h1:A2VDEiObzkYqFTKhSsn0ZEb0RlLEXpHWj93gi2HqEwE="
replace_local = "v0.37.2"
tags = ["selinux"]
ldflags = ["-s", "-w"]
[go_module.x]
"k8s.io/component-base/version.gitVersion" = "v1.37.2"

[[go_module]]
name = "cni"
path = "github.com/containernetworking/plugins"
version = "v1.10.0"
sum = "h1:4lwzpgsn5NdIneXrag/EEfKzhNSriJc1zTxZxfdfPLQ="

[[artifact]]
name = "kubelet"
version = "1.37.2"
go = { module = "kubernetes", package = "cmd/kubelet", cgo = true }
[artifact.install]
file = "/usr/bin/kubelet"

[[artifact]]
name = "cni-plugins"
version = "1.10.0"
go = { module = "cni", packages = ["plugins/main/loopback", "plugins/ipam/host-local"] }
[artifact.install]
dir = "/opt/cni/bin"
"#;

#[test]
fn go_artifacts_parse_to_builds() {
    let m = parse(GO_GOOD).expect("good Go manifest");
    let kubelet = &m.artifacts[0];
    assert_eq!(kubelet.pin, ChecksumPin::GoModule);
    assert_eq!(
        kubelet.source_label,
        "go:k8s.io/kubernetes@v1.37.2/cmd/kubelet"
    );
    let build = kubelet.go.as_ref().expect("a Go build");
    assert!(build.cgo, "the artifact's cgo wins over the module's");
    assert_eq!(build.toolchain, "go1.26.8");
    assert_eq!(build.import_paths(), vec!["k8s.io/kubernetes/cmd/kubelet"]);
    let cni = &m.artifacts[1];
    assert_eq!(
        cni.install,
        Install::Programs {
            dir: "/opt/cni/bin".into(),
            names: vec!["loopback".into(), "host-local".into()],
            mode: 0o755
        }
    );
    assert_eq!(
        cni.install.target_paths(),
        vec!["/opt/cni/bin/loopback", "/opt/cni/bin/host-local"]
    );
}

#[test]
fn bad_go_manifests_give_the_exact_error() {
    let r = |from: &str, to: &str| {
        assert!(GO_GOOD.contains(from), "edit {from:?} does not apply");
        GO_GOOD.replacen(from, to, 1)
    };
    let cases: Vec<(&str, String, usize, K)> = vec![
        (
            "no toolchain",
            r("[go]\ntoolchain = \"go1.26.8\"\n", ""),
            28,
            K::NoGoToolchain { artifact: "kubelet".into() },
        ),
        (
            "a toolchain that is not a Go release",
            r("toolchain = \"go1.26.8\"", "toolchain = \"1.26.8\""),
            8,
            K::BadGoToolchain {
                toolchain: "1.26.8".into(),
                reason: "it does not start with \"go1.\"".into(),
            },
        ),
        (
            "a module that is not a module path",
            r("path = \"k8s.io/kubernetes\"", "path = \"kubernetes\""),
            12,
            K::BadGoModule {
                module: "kubernetes".into(),
                reason: "path \"kubernetes\": its first element \"kubernetes\" is not a host name (e.g. k8s.io, github.com)".into(),
            },
        ),
        (
            "a sum that is not h1:",
            r("sum = \"h1:4lwz", "sum = \"sha256:4lwz"),
            25,
            K::BadGoModule {
                module: "cni".into(),
                reason: "sum \"sha256:4lwzpgsn5NdIneXrag/EEfKzhNSriJc1zTxZxfdfPLQ=\": it does not start with \"h1:\"".into(),
            },
        ),
        (
            "-X among the linker flags",
            r("ldflags = [\"-s\", \"-w\"]", "ldflags = [\"-s\", \"-X\"]"),
            17,
            K::BadGoModule {
                module: "kubernetes".into(),
                reason: "ldflags word \"-X\": write -X stamps in the module's x table (name = value)".into(),
            },
        ),
        (
            "an unknown module",
            r("module = \"kubernetes\", package", "module = \"kube\", package"),
            30,
            K::UnknownGoModule { artifact: "kubelet".into(), module: "kube".into() },
        ),
        (
            "a url beside go",
            r("version = \"1.37.2\"\ngo =", "version = \"1.37.2\"\nurl = \"https://x.invalid/kubelet\"\ngo ="),
            30,
            K::GoArtifact {
                artifact: "kubelet".into(),
                reason: "it is built from a Go module, so it has no url, sha256, sha512 or checksum_url (the module's sum pins it)".into(),
            },
        ),
        (
            "one package installed into a directory",
            r("file = \"/usr/bin/kubelet\"", "dir = \"/usr/bin\""),
            31,
            K::GoArtifact {
                artifact: "kubelet".into(),
                reason: "package (one program) is installed with install.file and nothing else".into(),
            },
        ),
        (
            "a module root under a directory has no name",
            r("\"plugins/ipam/host-local\"", "\".\""),
            37,
            K::GoArtifact {
                artifact: "cni-plugins".into(),
                reason: "package \".\" has no name of its own to install under a directory; install it with install.file".into(),
            },
        ),
        ("two modules of one name", r("name = \"cni\"", "name = \"kubernetes\""), 22, K::DuplicateGoModule("kubernetes".into())),
    ];
    let mut wrong = Vec::new();
    for (case, text, line, kind) in cases {
        match parse(&text) {
            Ok(_) => wrong.push(format!("{case}: parsed")),
            Err(e) => {
                if (e.line, &e.kind) != (line, &kind) || !e.to_string().contains("hint: ") {
                    wrong.push(format!("{case}: got line {} {:?}", e.line, e.kind));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_demo_and_default_manifests_name_the_same_kubernetes() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests"));
    let demo = Manifest::load(&root.join("demo.toml")).unwrap_or_else(|e| panic!("{e}"));
    let default = Manifest::load(&root.join("default.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(demo.kubernetes_version, default.kubernetes_version);
    // Every Kubernetes program of the demo is built from k8s.io/kubernetes at that version, none is a stand-in.
    for name in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "kubectl",
        "kubeadm",
    ] {
        let a = demo
            .artifacts
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        let go =
            a.go.as_ref()
                .unwrap_or_else(|| panic!("{name} is not built from its module"));
        assert_eq!(go.module.path, "k8s.io/kubernetes", "{name}");
        assert_eq!(
            go.module.version,
            format!("v{}", demo.kubernetes_version),
            "{name}"
        );
        assert!(!a.standin, "{name}");
    }
    let standins: Vec<&str> = demo
        .artifacts
        .iter()
        .filter(|a| a.standin)
        .map(|a| a.name.as_str())
        .collect();
    assert!(
        standins.is_empty(),
        "no stand-ins left in the demo image: {standins:?}"
    );
}
