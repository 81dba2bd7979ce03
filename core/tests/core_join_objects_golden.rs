//! Golden files of every API object a master creates (`tests/golden/objects/*.json`, the exact JSON bodies POSTed),
//! for a fixed test token and the cluster-info kubeconfig of the test CA in `tests/golden/pki/rsa-ca.crt`.
//! `UPDATE_GOLDEN=1 cargo test -p k8s-core --test core_join_objects_golden` rewrites them (review the diff).
//! A second check parses every golden back with k8s-openapi's own types, so a body the API server could not
//! decode fails here too.

use k8s_core::join_objects::{JoinObjectsSpec, master_objects};
use k8s_core::kubeconfig::{self, Kubeconfig};
use k8s_core::role_file::BootstrapToken;
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/objects")
}

fn objects() -> Vec<(String, Vec<u8>)> {
    let ca = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pki/rsa-ca.crt"),
    )
    .expect("test CA");
    let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
    let spec = JoinObjectsSpec {
        token: &token,
        cluster_info_kubeconfig: kubeconfig::render(&Kubeconfig::cluster_info(
            "https://masters.prod.k8s:6443",
            &ca,
        )),
        token_expiration: None,
    };
    master_objects(&spec)
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let name = format!(
                "{:02}-{}.json",
                i + 1,
                o.describe()
                    .to_ascii_lowercase()
                    .replace([' ', '/', ':'], "-")
            );
            (name, o.to_json())
        })
        .collect()
}

#[test]
fn every_object_the_master_creates_matches_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names = Vec::new();
    for (name, json) in objects() {
        let path = golden_dir().join(&name);
        names.push(name);
        if update {
            std::fs::create_dir_all(golden_dir()).expect("dir");
            std::fs::write(&path, &json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            String::from_utf8_lossy(&json),
            String::from_utf8_lossy(&golden),
            "{} differs; UPDATE_GOLDEN=1 rewrites it",
            path.display()
        );
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk, names,
        "golden files without an object, or the reverse"
    );
}

#[test]
fn every_golden_body_is_a_valid_kubernetes_object() {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
    for (name, json) in objects() {
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let ok = match kind.as_str() {
            "Secret" => serde_json::from_slice::<Secret>(&json).map(|_| ()),
            "ConfigMap" => serde_json::from_slice::<ConfigMap>(&json).map(|_| ()),
            "ClusterRoleBinding" => serde_json::from_slice::<ClusterRoleBinding>(&json).map(|_| ()),
            "Role" => serde_json::from_slice::<Role>(&json).map(|_| ()),
            "RoleBinding" => serde_json::from_slice::<RoleBinding>(&json).map(|_| ()),
            other => panic!("{name}: unexpected kind {other:?}"),
        };
        ok.unwrap_or_else(|e| panic!("{name}: not a {kind}: {e}"));
        assert!(value["apiVersion"].is_string(), "{name}");
    }
}
