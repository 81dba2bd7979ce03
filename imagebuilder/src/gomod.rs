//! Go module builds as the manifest describes them — pure: the recipe types, the checks of every value a user
//! writes, the wrapper module's `go.mod`, the `go build` command line, the cache key of a build, and the reading of
//! `go mod download -json` / `go mod edit -json` / `go version -m -json` output. Nothing here runs a process; the
//! edge that runs `go` is [`crate::gobuild`].
//!
//! How a component is built from its module (the same way for Kubernetes, etcd, containerd, runc, crictl and the
//! CNI plugins): a throw-away *wrapper* main module requires the component's module at its pinned version, so Go's
//! minimal version selection gives exactly the build list the component's own `go.mod` pins. A component's
//! `replace` directives only apply when it is the main module, so they are carried into the wrapper: one that
//! points at a directory inside the component's repository (Kubernetes' `./staging/src/k8s.io/*`, etcd's `../api`)
//! becomes the *published* module of the same path at `replace_local` (`v0.37.2` for Kubernetes 1.37.2's staging
//! modules), any other is copied as it is. Every module Go downloads is checked against go.sum / the checksum
//! database by Go itself; the component module's own hash (`h1:`) is also pinned in the manifest and compared here.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The module path of the wrapper main module the builder writes.
pub const WRAPPER_MODULE: &str = "k8s-image.build/wrapper";

/// The flags every build gets, before the recipe's own: reproducible paths, no VCS stamping (the module zip has no
/// VCS data), and no build ID derived from anything but the content.
pub const FIXED_BUILD_FLAGS: &[&str] = &["-trimpath", "-buildvcs=false"];

/// A Go module the manifest builds programs from (`[[go_module]]`), with the build settings its programs share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoModule {
    /// The manifest's handle for it (`[artifact.go] module = "<name>"`).
    pub name: String,
    /// Module path, e.g. `k8s.io/kubernetes`.
    pub path: String,
    /// Module version, e.g. `v1.37.2`.
    pub version: String,
    /// The module's go.sum hash (`h1:<base64>`), compared with what `go mod download` reports.
    pub sum: String,
    /// Version of the published modules that stand in for the module's in-repository `replace` targets.
    pub replace_local: Option<String>,
    /// `CGO_ENABLED` for its programs (an artifact may override it).
    pub cgo: bool,
    /// Build tags.
    pub tags: Vec<String>,
    /// Linker flags other than `-X` (e.g. `-s`, `-w`, `-extldflags`, `-static-pie`).
    pub ldflags: Vec<String>,
    /// `-X importpath.name=value` settings (version stamps), sorted by name.
    pub x: BTreeMap<String, String>,
    /// `-buildmode` (`pie`), when not the default.
    pub buildmode: Option<String>,
}

/// What one artifact builds: packages of a module, with the toolchain the manifest pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBuild {
    /// The Go toolchain, e.g. `go1.26.8` (`[go] toolchain`).
    pub toolchain: String,
    pub module: GoModule,
    /// Packages relative to the module root; `.` is the root itself.
    pub packages: Vec<String>,
    /// Effective `CGO_ENABLED`.
    pub cgo: bool,
}

impl GoBuild {
    /// The full import path of each package.
    pub fn import_paths(&self) -> Vec<String> {
        self.packages
            .iter()
            .map(|p| {
                if p == "." {
                    self.module.path.clone()
                } else {
                    format!("{}/{p}", self.module.path)
                }
            })
            .collect()
    }

    /// How the lock and the SBOM name the source: `go:<module>@<version>` plus the package when there is one.
    pub fn source_label(&self) -> String {
        match self.packages.as_slice() {
            [one] if one != "." => format!("go:{}@{}/{one}", self.module.path, self.module.version),
            _ => format!("go:{}@{}", self.module.path, self.module.version),
        }
    }

    /// The value of `-ldflags`: the recipe's flags, then one `-X 'name=value'` per stamp.
    pub fn ldflags_value(&self) -> String {
        let mut parts: Vec<String> = self.module.ldflags.clone();
        for (name, value) in &self.module.x {
            parts.push(format!("-X '{name}={value}'"));
        }
        parts.join(" ")
    }

    /// The `go build` flags after [`FIXED_BUILD_FLAGS`] (without `-o` and the packages), as the lock records them.
    pub fn build_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = FIXED_BUILD_FLAGS.iter().map(|f| f.to_string()).collect();
        if let Some(mode) = &self.module.buildmode {
            flags.push(format!("-buildmode={mode}"));
        }
        if !self.module.tags.is_empty() {
            flags.push(format!("-tags={}", self.module.tags.join(",")));
        }
        flags.push(format!("-ldflags={}", self.ldflags_value()));
        flags
    }

    /// The canonical text of everything that decides the bytes of the build; its sha256 keys the binary cache.
    /// `cc` is the C compiler's identity when cgo is on (its `--version` first line).
    pub fn recipe(&self, goarch: &str, cc: Option<&str>) -> String {
        let m = &self.module;
        let mut text = format!(
            "recipe 1\ntoolchain {}\ngoos linux\ngoarch {goarch}\nmodule {} {} {}\nreplace_local {}\ncgo {}\n",
            self.toolchain,
            m.path,
            m.version,
            m.sum,
            m.replace_local.as_deref().unwrap_or("-"),
            self.cgo,
        );
        for flag in self.build_flags() {
            text.push_str(&format!("flag {flag}\n"));
        }
        for p in &self.packages {
            text.push_str(&format!("package {p}\n"));
        }
        if self.cgo {
            text.push_str(&format!("cc {}\n", cc.unwrap_or("-")));
        }
        text
    }
}

/// A Go toolchain name as `GOTOOLCHAIN` takes it: `go1.26.8` (or `go1.27`, `go1.27rc1`).
pub fn check_toolchain(text: &str) -> Result<(), String> {
    let Some(rest) = text.strip_prefix("go1.") else {
        return Err("it does not start with \"go1.\"".to_string());
    };
    let (numbers, pre) = match rest.find(|c: char| c.is_ascii_lowercase()) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let numbers_ok = !numbers.is_empty()
        && numbers.split('.').count() <= 2
        && numbers
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let pre_ok = pre.is_empty()
        || ((pre.starts_with("rc") || pre.starts_with("beta"))
            && pre
                .trim_start_matches(char::is_alphabetic)
                .bytes()
                .all(|b| b.is_ascii_digit()));
    if numbers_ok && pre_ok {
        Ok(())
    } else {
        Err("it is not a Go release name like \"go1.26.8\"".to_string())
    }
}

/// A module path as `go mod` accepts it (the common subset): slash-separated elements of letters, digits and
/// `-._~`, the first one a host name with a dot.
pub fn check_module_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 200 {
        return Err("it is empty or too long".to_string());
    }
    let mut elements = path.split('/');
    let first = elements.next().unwrap_or_default();
    if !first.contains('.') || first.starts_with('.') || first.starts_with('-') {
        return Err(format!(
            "its first element {first:?} is not a host name (e.g. k8s.io, github.com)"
        ));
    }
    for e in path.split('/') {
        if e.is_empty() || e == "." || e == ".." {
            return Err("it has an empty, '.' or '..' element".to_string());
        }
        if !e
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(format!(
                "element {e:?} has a character other than letters, digits, '-', '.', '_', '~'"
            ));
        }
    }
    Ok(())
}

/// A module version: `v` + semantic version (`v1.37.2`, `v0.0.0-20260101000000-abcdef123456`, `v2.0.0+incompatible`).
pub fn check_module_version(v: &str) -> Result<(), String> {
    let Some(rest) = v.strip_prefix('v') else {
        return Err("it does not start with 'v'".to_string());
    };
    let (core, build) = rest.split_once('+').unwrap_or((rest, ""));
    if !build.is_empty() && build != "incompatible" {
        return Err("the only build suffix Go takes is +incompatible".to_string());
    }
    let (numbers, pre) = core.split_once('-').unwrap_or((core, ""));
    let parts: Vec<&str> = numbers.split('.').collect();
    let numeric = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    if parts.len() != 3 || !parts.iter().all(|p| numeric(p)) {
        return Err("it is not vMAJOR.MINOR.PATCH".to_string());
    }
    if core.contains('-')
        && (pre.is_empty()
            || !pre.split('.').all(|p| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
    {
        return Err(
            "its pre-release part is not dot-separated letters, digits and '-'".to_string(),
        );
    }
    Ok(())
}

/// A go.sum hash: `h1:` + base64 of 32 bytes (44 characters ending in `=`).
pub fn check_h1(sum: &str) -> Result<(), String> {
    let Some(b64) = sum.strip_prefix("h1:") else {
        return Err("it does not start with \"h1:\"".to_string());
    };
    let ok = b64.len() == 44
        && b64.ends_with('=')
        && !b64[..43].contains('=')
        && b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("it is not h1: followed by 44 characters of base64 (a sha256)".to_string())
    }
}

/// A package path relative to its module: `.` or slash-separated elements without `..`, not absolute.
pub fn check_package(p: &str) -> Result<(), String> {
    if p == "." {
        return Ok(());
    }
    if p.is_empty() || p.starts_with('/') || p.ends_with('/') {
        return Err("it is empty, absolute or ends with '/'".to_string());
    }
    if p.split('/').any(|e| e.is_empty() || e == "." || e == "..") {
        return Err("it has an empty, '.' or '..' element".to_string());
    }
    if !p
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
    {
        return Err(
            "it has a character other than letters, digits, '-', '.', '_', '~', '/'".to_string(),
        );
    }
    Ok(())
}

/// The binary name `go build -o DIR/` gives a package: its last element (never `.` or a `vN` major suffix here:
/// those need a single-file install, whose path names the binary).
pub fn binary_name(package: &str) -> Result<&str, String> {
    let last = package.rsplit('/').next().unwrap_or(package);
    let is_major =
        last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit());
    if last == "." || is_major {
        Err(format!(
            "package {package:?} has no name of its own to install under a directory; install it with install.file"
        ))
    } else {
        Ok(last)
    }
}

/// A build tag: letters, digits, `_` and `.`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    if !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.".contains(&b))
    {
        Ok(())
    } else {
        Err("a build tag is letters, digits, '_' and '.'".to_string())
    }
}

/// One linker flag word: no whitespace or quotes (they would change how `-ldflags` is split), and not `-X`
/// (version stamps go in the `x` table, where the lock can show them).
pub fn check_ldflag(flag: &str) -> Result<(), String> {
    if flag.is_empty()
        || flag
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"')
    {
        return Err("a linker flag is one word without spaces or quotes".to_string());
    }
    if flag == "-X" || flag.starts_with("-X=") {
        return Err("write -X stamps in the module's x table (name = value)".to_string());
    }
    Ok(())
}

/// An `-X` stamp: `importpath.name` and a value that fits in single quotes on one line.
pub fn check_stamp(name: &str, value: &str) -> Result<(), String> {
    let name_ok = name.contains('.')
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    if !name_ok {
        return Err(format!(
            "{name:?} is not importpath.name (e.g. k8s.io/component-base/version.gitVersion)"
        ));
    }
    if value.contains('\'') || value.contains('\n') || value.contains('\r') {
        return Err(format!("the value of {name} has a quote or a line break"));
    }
    Ok(())
}

/// `-buildmode` values a node binary may use.
pub fn check_buildmode(mode: &str) -> Result<(), String> {
    match mode {
        "exe" | "pie" => Ok(()),
        _ => Err("buildmode is \"exe\" or \"pie\"".to_string()),
    }
}

/// One `replace` directive of a `go.mod`, as `go mod edit -json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GoModReplace {
    pub old: GoModVersion,
    pub new: GoModVersion,
}

/// A module path with an optional version (a directory replacement has none).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GoModVersion {
    pub path: String,
    #[serde(default)]
    pub version: Option<String>,
}

/// What the builder reads of the component's own `go.mod` (`go mod edit -json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpstreamGoMod {
    /// The `go` directive, e.g. `1.26.0`.
    #[serde(default)]
    pub go: Option<String>,
    #[serde(default)]
    pub replace: Option<Vec<GoModReplace>>,
}

/// Reads `go mod edit -json` output.
pub fn parse_go_mod_json(text: &str) -> Result<UpstreamGoMod, String> {
    serde_json::from_str(text).map_err(|e| format!("cannot read `go mod edit -json` output: {e}"))
}

/// The wrapper main module's `go.mod` for building from `module` whose own go.mod is `upstream`.
pub fn wrapper_go_mod(module: &GoModule, upstream: &UpstreamGoMod) -> Result<String, String> {
    let mut text = format!("module {WRAPPER_MODULE}\n\n");
    if let Some(go) = &upstream.go {
        text.push_str(&format!("go {go}\n\n"));
    }
    text.push_str(&format!("require {} {}\n", module.path, module.version));
    let mut body = String::new();
    let mut local = Vec::new();
    for r in upstream.replace.iter().flatten() {
        let old = match &r.old.version {
            Some(v) => format!("{} {v}", r.old.path),
            None => r.old.path.clone(),
        };
        match (&r.new.version, &module.replace_local) {
            (Some(v), _) => body.push_str(&format!("\t{old} => {} {v}\n", r.new.path)),
            (None, Some(v)) => {
                local.push(r.old.path.clone());
                body.push_str(&format!("\t{old} => {} {v}\n", r.old.path));
            }
            (None, None) => {
                return Err(format!(
                    "{}@{} replaces {} with the directory {} inside its repository, which a build from the \
                     module cache cannot see; set replace_local = \"<version>\" in its [[go_module]] to use the \
                     published module {} at that version (for Kubernetes v1.X.Y: v0.X.Y)",
                    module.path, module.version, r.old.path, r.new.path, r.old.path
                ));
            }
        }
    }
    if local.is_empty() && module.replace_local.is_some() {
        return Err(format!(
            "replace_local is set but {}@{} replaces nothing with a directory; remove replace_local",
            module.path, module.version
        ));
    }
    if !body.is_empty() {
        text.push_str(&format!("\nreplace (\n{body})\n"));
    }
    Ok(text)
}

/// What `go mod download -json MODULE@VERSION` reports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModuleDownload {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub version: String,
    /// Go's own message when the download failed (e.g. the proxy's refusal).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub sum: Option<String>,
    /// The extracted module directory in the module cache.
    #[serde(default)]
    pub dir: Option<String>,
    /// The module's go.mod in the download cache.
    #[serde(default)]
    pub go_mod: Option<String>,
}

/// Reads `go mod download -json` output (one object).
pub fn parse_module_download(text: &str) -> Result<ModuleDownload, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("cannot read `go mod download -json` output: {e}"))
}

/// One module a binary was built from, as `go version -m -json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildInfoModule {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub sum: Option<String>,
    #[serde(default)]
    pub replace: Option<Box<BuildInfoModule>>,
}

/// One build setting (`-ldflags`, `CGO_ENABLED`, `GOARCH`, …).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildInfoSetting {
    pub key: String,
    pub value: String,
}

/// The build information Go embeds in a binary (`go version -m -json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildInfo {
    pub go_version: String,
    #[serde(default)]
    pub path: String,
    /// The module of the main package (the component's own module when it is built from a wrapper).
    #[serde(default)]
    pub main: Option<BuildInfoModule>,
    #[serde(default)]
    pub deps: Vec<BuildInfoModule>,
    #[serde(default)]
    pub settings: Vec<BuildInfoSetting>,
}

impl BuildInfo {
    /// A build setting's value.
    /// The main package's module and every dependency.
    pub fn modules(&self) -> impl Iterator<Item = &BuildInfoModule> {
        self.main
            .iter()
            .chain(self.deps.iter())
            .filter(|m| !m.path.is_empty())
    }

    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }
}

/// Reads `go version -m -json` output.
pub fn parse_build_info(text: &str) -> Result<BuildInfo, String> {
    serde_json::from_str(text).map_err(|e| format!("cannot read `go version -m -json` output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubernetes() -> GoModule {
        GoModule {
            name: "kubernetes".into(),
            path: "k8s.io/kubernetes".into(),
            version: "v1.37.2".into(),
            sum: "h1:A2VDEiObzkYqFTKhSsn0ZEb0RlLEXpHWj93gi2HqEwE=".into(),
            replace_local: Some("v0.37.2".into()),
            cgo: false,
            tags: vec!["selinux".into(), "notest".into()],
            ldflags: vec!["-s".into(), "-w".into()],
            x: BTreeMap::from([
                (
                    "k8s.io/component-base/version.gitVersion".into(),
                    "v1.37.2".into(),
                ),
                ("k8s.io/component-base/version.gitMajor".into(), "1".into()),
            ]),
            buildmode: None,
        }
    }

    fn apiserver() -> GoBuild {
        GoBuild {
            toolchain: "go1.26.8".into(),
            module: kubernetes(),
            packages: vec!["cmd/kube-apiserver".into()],
            cgo: false,
        }
    }

    #[test]
    fn the_build_flags_carry_the_stamps_in_name_order() {
        assert_eq!(
            apiserver().build_flags(),
            vec![
                "-trimpath".to_string(),
                "-buildvcs=false".into(),
                "-tags=selinux,notest".into(),
                "-ldflags=-s -w -X 'k8s.io/component-base/version.gitMajor=1' -X 'k8s.io/component-base/version.gitVersion=v1.37.2'"
                    .into(),
            ]
        );
        assert_eq!(
            apiserver().import_paths(),
            vec!["k8s.io/kubernetes/cmd/kube-apiserver"]
        );
        assert_eq!(
            apiserver().source_label(),
            "go:k8s.io/kubernetes@v1.37.2/cmd/kube-apiserver"
        );
    }

    #[test]
    fn every_input_of_the_bytes_changes_the_recipe() {
        let base = apiserver().recipe("amd64", None);
        let mut changed = Vec::new();
        let mut b = apiserver();
        b.toolchain = "go1.26.9".into();
        changed.push(b.recipe("amd64", None));
        changed.push(apiserver().recipe("arm64", None));
        let mut b = apiserver();
        b.module.sum = "h1:B2VDEiObzkYqFTKhSsn0ZEb0RlLEXpHWj93gi2HqEwE=".into();
        changed.push(b.recipe("amd64", None));
        let mut b = apiserver();
        b.module
            .x
            .insert("k8s.io/component-base/version.gitMinor".into(), "37".into());
        changed.push(b.recipe("amd64", None));
        let mut b = apiserver();
        b.cgo = true;
        changed.push(b.recipe("amd64", Some("gcc (Debian 12.2.0-14) 12.2.0")));
        let mut b = apiserver();
        b.packages = vec!["cmd/kubelet".into()];
        changed.push(b.recipe("amd64", None));
        let mut b = apiserver();
        b.module.replace_local = Some("v0.37.1".into());
        changed.push(b.recipe("amd64", None));
        for c in &changed {
            assert_ne!(c, &base);
        }
        assert_eq!(
            base,
            apiserver().recipe("amd64", Some("ignored without cgo"))
        );
    }

    #[test]
    fn names_and_versions_are_checked() {
        assert!(check_toolchain("go1.26.8").is_ok());
        assert!(check_toolchain("go1.27rc1").is_ok());
        for bad in [
            "1.26.8",
            "go1.",
            "go1.26.8.1",
            "go2.0",
            "go1.26 ",
            "go1.26.x",
        ] {
            assert!(check_toolchain(bad).is_err(), "{bad}");
        }
        assert!(check_module_path("github.com/containerd/containerd/v2").is_ok());
        for bad in [
            "",
            "kubernetes",
            "k8s.io//x",
            "k8s.io/../x",
            "k8s.io/a b",
            "/k8s.io",
        ] {
            assert!(check_module_path(bad).is_err(), "{bad}");
        }
        for good in [
            "v1.37.2",
            "v0.0.0-20260101000000-abcdef123456",
            "v2.0.0+incompatible",
            "v1.38.0-beta.0",
        ] {
            assert!(check_module_version(good).is_ok(), "{good}");
        }
        for bad in [
            "1.37.2",
            "v1.37",
            "v01.2.3",
            "v1.2.3+meta",
            "v1.2.3-",
            "latest",
        ] {
            assert!(check_module_version(bad).is_err(), "{bad}");
        }
        assert!(check_h1("h1:A2VDEiObzkYqFTKhSsn0ZEb0RlLEXpHWj93gi2HqEwE=").is_ok());
        for bad in [
            "A2VDEiObzkYqFTKhSsn0ZEb0RlLEXpHWj93gi2HqEwE=",
            "h1:short=",
            "sha256:abc",
        ] {
            assert!(check_h1(bad).is_err(), "{bad}");
        }
        assert!(check_package(".").is_ok());
        assert!(check_package("cmd/kubelet").is_ok());
        for bad in ["", "/cmd", "cmd/", "../x", "cmd/./x", "cmd x"] {
            assert!(check_package(bad).is_err(), "{bad}");
        }
        assert_eq!(binary_name("plugins/main/bridge"), Ok("bridge"));
        assert!(binary_name(".").is_err());
        assert!(binary_name("server/v3").is_err());
        assert!(check_ldflag("-extldflags").is_ok());
        assert!(check_ldflag("-X").is_err());
        assert!(check_ldflag("-s -w").is_err());
        assert!(check_stamp("main.version", "1.5.3").is_ok());
        assert!(check_stamp("version", "1").is_err());
        assert!(check_stamp("main.version", "it's").is_err());
        assert!(check_buildmode("pie").is_ok());
        assert!(check_buildmode("c-shared").is_err());
        assert!(check_tag("grpcnotrace").is_ok());
        assert!(check_tag("a,b").is_err());
    }

    #[test]
    fn directory_replaces_become_the_published_modules() -> Result<(), String> {
        let upstream = parse_go_mod_json(
            r#"{"Module":{"Path":"k8s.io/kubernetes"},"Go":"1.26.0","Replace":[
                {"Old":{"Path":"k8s.io/api"},"New":{"Path":"./staging/src/k8s.io/api"}},
                {"Old":{"Path":"example.com/fork","Version":"v1.0.0"},"New":{"Path":"example.com/fixed","Version":"v1.0.1"}}]}"#,
        )?;
        let text = wrapper_go_mod(&kubernetes(), &upstream)?;
        assert_eq!(
            text,
            "module k8s-image.build/wrapper\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v1.37.2\n\nreplace (\n\
             \tk8s.io/api => k8s.io/api v0.37.2\n\texample.com/fork v1.0.0 => example.com/fixed v1.0.1\n)\n"
        );
        let mut without = kubernetes();
        without.replace_local = None;
        let err = wrapper_go_mod(&without, &upstream)
            .err()
            .unwrap_or_default();
        assert!(err.contains("set replace_local"), "{err}");
        let plain = parse_go_mod_json(r#"{"Go":"1.25.0"}"#)?;
        let err = wrapper_go_mod(&kubernetes(), &plain)
            .err()
            .unwrap_or_default();
        assert!(err.contains("remove replace_local"), "{err}");
        without.path = "github.com/opencontainers/runc".into();
        assert_eq!(
            wrapper_go_mod(&without, &plain)?,
            "module k8s-image.build/wrapper\n\ngo 1.25.0\n\nrequire github.com/opencontainers/runc v1.37.2\n"
        );
        Ok(())
    }

    #[test]
    fn replace_local_without_directory_replaces_is_refused() {
        let plain = UpstreamGoMod {
            go: None,
            replace: Some(vec![GoModReplace {
                old: GoModVersion {
                    path: "a.example/x".into(),
                    version: None,
                },
                new: GoModVersion {
                    path: "b.example/x".into(),
                    version: Some("v1.0.0".into()),
                },
            }]),
        };
        let err = wrapper_go_mod(&kubernetes(), &plain)
            .err()
            .unwrap_or_default();
        assert!(err.contains("remove replace_local"), "{err}");
    }

    #[test]
    fn go_outputs_are_read() -> Result<(), String> {
        let d = parse_module_download(
            r#"{"Path":"k8s.io/kubernetes","Version":"v1.37.2","Sum":"h1:x","Dir":"/m/k","GoMod":"/m/k.mod"}"#,
        )?;
        assert_eq!(d.sum.as_deref(), Some("h1:x"));
        let refused = parse_module_download(
            r#"{"Path":"github.com/rajch/weave","Version":"v2.9.0","Error":"403 Forbidden"}"#,
        )?;
        assert_eq!(refused.error.as_deref(), Some("403 Forbidden"));
        let info = parse_build_info(
            r#"{"GoVersion":"go1.26.8","Path":"k8s.io/kubernetes/cmd/kubelet","Main":{"Path":"k8s-image.build/wrapper"},
               "Deps":[{"Path":"k8s.io/api","Version":"v0.37.2","Sum":"h1:a"},
                       {"Path":"k8s.io/kubernetes","Version":"v1.37.2","Sum":"h1:b"}],
               "Settings":[{"Key":"CGO_ENABLED","Value":"1"}]}"#,
        )?;
        assert_eq!(info.deps.len(), 2);
        assert_eq!(info.setting("CGO_ENABLED"), Some("1"));
        assert!(parse_build_info("not json").is_err());
        Ok(())
    }
}
