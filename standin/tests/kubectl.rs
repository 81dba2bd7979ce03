//! kubectl against the stand-in API server: discovery (legacy documents, also when kubectl asks for the
//! aggregated format), `get ... -o json|yaml`, `get --raw`, `auth whoami`, `auth can-i`, `create`, and kubectl's
//! own error rendering of a 403. Uses `$KUBECTL` or Debian 13's kubectl 1.32 (`tests/tools/kubectl.sh`); outside CI
//! without either the test says so and passes, since kubectl is not a build dependency.

mod support;

use serde_json::Value;
use std::process::{Command, Output};
use support::*;

/// `$KUBECTL`, else the real Debian 13 kubectl that `tests/tools/kubectl.sh` fetches (once) and prints. CI must have
/// one.
fn kubectl() -> Option<String> {
    let program = std::env::var("KUBECTL").ok().or_else(|| {
        Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/tools/kubectl.sh"
        ))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });
    let found = program.filter(|p| {
        Command::new(p)
            .args(["version", "--client"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "CI must have a kubectl (tests/tools/kubectl.sh)"
    );
    found
}

struct Kubectl<'a> {
    program: String,
    pki: &'a Pki,
    kubeconfig: std::path::PathBuf,
}

impl Kubectl<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.program)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                self.pki.path("kube-cache").display()
            ))
            .args(["--request-timeout=10s"])
            .args(args)
            .env("HOME", self.pki.dir.path())
            .env_remove("KUBECONFIG")
            .output()
            .expect("run kubectl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: not JSON ({e}): {text}"))
    }
}

#[test]
fn kubectl_reads_what_the_agent_creates() {
    let Some(program) = kubectl() else {
        eprintln!("kubectl not found: skipping the kubectl test (set $KUBECTL to run it)");
        return;
    };
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    api.bind_cluster_admins();
    api.create(
        "/api/v1/namespaces/kube-system/secrets",
        &bootstrap_token("abcdef", "0123456789abcdef", &[]),
    );
    for b in kubeadm_bindings() {
        api.create(CRB, &b);
    }
    pki.client("n1", "system:node:n1", &["system:nodes"]);
    api.must(
        Cred::Cert("n1"),
        "POST",
        "/api/v1/nodes",
        Some(&serde_json::json!({"metadata": {"name": "n1"}})),
        201,
    );
    let (csr, _) = kubelet_csr("node-csr-1", "system:node:n1", "system:nodes");
    api.must(
        Cred::Token("abcdef.0123456789abcdef"),
        "POST",
        CSRS,
        Some(&csr),
        201,
    );

    let k = Kubectl {
        program,
        pki: &pki,
        kubeconfig: pki.cert_kubeconfig("admin", &api.server(), "admin"),
    };
    let nodes = k.json(&["get", "nodes", "-o", "json"]);
    assert_eq!(nodes["items"][0]["metadata"]["name"], "n1", "{nodes}");
    let secrets = k.json(&["get", "secrets", "-n", "kube-system", "-o", "json"]);
    assert!(
        secrets["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["metadata"]["name"] == "bootstrap-token-abcdef")
    );
    let yaml = k.ok(&["get", "configmaps", "-n", "kube-public", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: List") || yaml.contains("items:"),
        "{yaml}"
    );
    let csrs = k.json(&["get", "csr", "-o", "json"]);
    assert_eq!(
        csrs["items"][0]["spec"]["username"],
        "system:bootstrap:abcdef"
    );
    let bindings = k.json(&["get", "clusterrolebindings", "-o", "json"]);
    let names: Vec<&str> = bindings["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["metadata"]["name"].as_str())
        .collect();
    for n in [
        "kubeadm:cluster-admins",
        "kubeadm:kubelet-bootstrap",
        "system:node-proxier",
        "cluster-admin",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    k.json(&["get", "roles", "-A", "-o", "json"]);
    let rolebindings = k.json(&["get", "rolebindings", "-n", "kube-public", "-o", "json"]);
    assert_eq!(
        rolebindings["items"][0]["metadata"]["name"],
        "system:controller:bootstrap-signer"
    );
    let version: Value = serde_json::from_str(&k.ok(&["get", "--raw", "/version"])).unwrap();
    assert_eq!(version["gitVersion"], "v1.33.0-standin+k8s-image-demo");
    k.ok(&["get", "nodes"]);
    let whoami = k.json(&["auth", "whoami", "-o", "json"]);
    assert_eq!(whoami["status"]["userInfo"]["username"], "kubernetes-admin");
    assert_eq!(
        k.ok(&["auth", "can-i", "list", "secrets", "-n", "kube-system"])
            .trim(),
        "yes"
    );
    // `kubectl create -f` sends JSON (typed generators such as `kubectl create configmap` send protobuf,
    // which the stand-in reads only for reviews).
    let manifest = pki.write(
        "cm.json",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "made-by-kubectl", "namespace": "default"}, "data": {"a": "b"}}"#,
    );
    k.ok(&[
        "create",
        "-f",
        &manifest.display().to_string(),
        "--validate=false",
    ]);
    api.must(
        Cred::Cert("admin"),
        "GET",
        "/api/v1/namespaces/default/configmaps/made-by-kubectl",
        None,
        200,
    );

    // A user without rights sees the API server's message, as kubectl prints it.
    let node = Kubectl {
        program: k.program.clone(),
        pki: &pki,
        kubeconfig: pki.cert_kubeconfig("n1", &api.server(), "n1"),
    };
    let out = node.run(&["get", "secrets", "-n", "kube-system"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Error from server (Forbidden): secrets is forbidden: User \"system:node:n1\" cannot list resource \"secrets\""),
        "{stderr}"
    );
}
