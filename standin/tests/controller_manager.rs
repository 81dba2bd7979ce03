//! The stand-in kube-controller-manager against the stand-in API server: start-up checks, the bootstrap signer
//! (the JWS checked here with an independent HMAC), the token cleaner, CSR approval through SubjectAccessReviews
//! (only with kubeadm's bindings) and signing with the cluster CA.

mod support;

use base64::Engine as _;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";
const KUBECONFIG: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAAA\n    server: https://masters.test.k8s:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n";

fn cluster_info(api: &ApiServer) -> Value {
    api.must(Cred::Cert("super-admin"), "GET", CLUSTER_INFO, None, 200)
}

fn make_cluster_info(api: &ApiServer) {
    api.create(
        "/api/v1/namespaces/kube-public/configmaps",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": {"kubeconfig": KUBECONFIG}}),
    );
}

/// Checks a detached JWS the way kubeadm's client does, with ring's HMAC directly.
fn jws_valid(signature: &str, content: &str, id: &str, secret: &str) -> bool {
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some((header, tag)) = signature.split_once("..") else {
        return false;
    };
    let Ok(header_json) = url.decode(header) else {
        return false;
    };
    let header_value: Value = serde_json::from_slice(&header_json).expect("header JSON");
    if header_value != json!({"alg": "HS256", "kid": id}) {
        return false;
    }
    let input = format!("{header}.{}", url.encode(content));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let Ok(tag) = url.decode(tag) else {
        return false;
    };
    ring::hmac::verify(&key, input.as_bytes(), &tag).is_ok()
}

#[test]
fn signs_cluster_info_only_with_bootstrapsigner_enabled() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    api.create(SECRETS, &bootstrap_token("abcdef", "0123456789abcdef", &[]));
    api.create(
        SECRETS,
        &bootstrap_token(
            "nosign",
            "0123456789abcdef",
            &[("usage-bootstrap-signing", "false")],
        ),
    );
    make_cluster_info(&api);

    // The default set (bootstrapsigner is off by default): nothing signs.
    let cm = start_controller_manager(&pki, &api, "*,tokencleaner");
    cm.lines.wait_for("bootstrapsigner is not enabled");
    std::thread::sleep(Duration::from_secs(2));
    let data = cluster_info(&api)["data"].clone();
    assert!(
        data.get("jws-kubeconfig-abcdef").is_none(),
        "signed without bootstrapsigner: {data}"
    );
    drop(cm);

    let cm = start_controller_manager(&pki, &api, "*,bootstrapsigner,tokencleaner");
    assert!(
        eventually(PATIENCE, || cluster_info(&api)["data"]
            .get("jws-kubeconfig-abcdef")
            .is_some()),
        "not signed; controller manager log:\n{}",
        cm.lines.text()
    );
    let data = cluster_info(&api)["data"].clone();
    let sig = data["jws-kubeconfig-abcdef"].as_str().unwrap();
    assert!(
        jws_valid(sig, KUBECONFIG, "abcdef", "0123456789abcdef"),
        "{sig}"
    );
    assert!(!jws_valid(sig, KUBECONFIG, "abcdef", "0123456789abcdeg"));
    assert!(!jws_valid(
        sig,
        &format!("{KUBECONFIG} "),
        "abcdef",
        "0123456789abcdef"
    ));
    assert!(
        data.get("jws-kubeconfig-nosign").is_none(),
        "a token without usage-bootstrap-signing was used: {data}"
    );
    assert_eq!(data["kubeconfig"], KUBECONFIG, "the content is untouched");
    cm.lines
        .wait_for("bootstrapsigner: kube-public/cluster-info: signed for token abcdef");

    // An expired token is deleted by the token cleaner and never signs.
    api.create(
        SECRETS,
        &bootstrap_token(
            "expird",
            "0123456789abcdef",
            &[("expiration", "2001-01-01T00:00:00Z")],
        ),
    );
    assert!(eventually(PATIENCE, || api
        .call(
            Cred::Cert("super-admin"),
            "GET",
            &format!("{SECRETS}/bootstrap-token-expird"),
            None
        )
        .0
        == 404));
    assert!(
        cluster_info(&api)["data"]
            .get("jws-kubeconfig-expird")
            .is_none()
    );
    cm.lines.wait_for(
        "tokencleaner: deleted expired bootstrap token Secret kube-system/bootstrap-token-expird",
    );

    // A token that goes away takes its signature with it.
    api.must(
        Cred::Cert("super-admin"),
        "DELETE",
        &format!("{SECRETS}/bootstrap-token-abcdef"),
        None,
        200,
    );
    assert!(eventually(PATIENCE, || cluster_info(&api)["data"]
        .get("jws-kubeconfig-abcdef")
        .is_none()));
    // Each controller acted as its own service account.
    api.proc.lines.wait_for("PUT /api/v1/namespaces/kube-public/configmaps/cluster-info 200 user=\"system:serviceaccount:kube-system:bootstrap-signer\"");
    api.proc
        .lines
        .wait_for("user=\"system:serviceaccount:kube-system:token-cleaner\"");
}

#[test]
fn without_service_account_credentials_the_default_roles_do_not_let_it_sign() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    api.create(SECRETS, &bootstrap_token("abcdef", "0123456789abcdef", &[]));
    make_cluster_info(&api);
    pki.cert_kubeconfig("controller-manager", &api.server(), "controller-manager");
    let mut args = controller_manager_flags(&pki, "*,bootstrapsigner,tokencleaner");
    set_flag(&mut args, "use-service-account-credentials", Some("false"));
    let cm = Proc::spawn(pki.dir.path(), "kube-controller-manager", &args);
    // system:kube-controller-manager may list everything but not update cluster-info (upstream's rules).
    cm.lines
        .wait_for("bootstrapsigner: update kube-public/cluster-info: 403");
    assert!(
        cluster_info(&api)["data"]
            .get("jws-kubeconfig-abcdef")
            .is_none()
    );
}

fn submit(api: &ApiServer, cred: Cred<'_>, name: &str, cn: &str, o: &str) -> (u16, Value, String) {
    let (csr, key) = kubelet_csr(name, cn, o);
    let (status, body) = api.call(cred, "POST", CSRS, Some(&csr));
    (status, body, key)
}

fn csr(api: &ApiServer, name: &str) -> Value {
    api.must(
        Cred::Cert("super-admin"),
        "GET",
        &format!("{CSRS}/{name}"),
        None,
        200,
    )
}

fn approved(c: &Value) -> bool {
    c.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|l| {
            l.iter()
                .any(|x| x["type"] == "Approved" && x["status"] == "True")
        })
}

#[test]
fn approves_and_signs_kubelet_csrs_only_with_the_kubeadm_bindings() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    api.create(SECRETS, &bootstrap_token("abcdef", "0123456789abcdef", &[]));
    for b in kubeadm_bindings() {
        api.create(CRB, &b);
    }
    let cm = start_controller_manager(&pki, &api, "*,bootstrapsigner,tokencleaner");
    let token = Cred::Token("abcdef.0123456789abcdef");

    // TLS bootstrap: the bootstrap token asks for system:node:n1.
    let (status, body, key) = submit(&api, token, "node-csr-n1", "system:node:n1", "system:nodes");
    assert_eq!(status, 201, "{body}");
    assert!(
        eventually(PATIENCE, || issued(&csr(&api, "node-csr-n1")).is_some()),
        "not issued:\n{}",
        cm.lines.text()
    );
    let c = csr(&api, "node-csr-n1");
    let condition = &c["status"]["conditions"][0];
    assert_eq!(
        (condition["type"].as_str(), condition["reason"].as_str()),
        (Some("Approved"), Some("AutoApproved")),
        "{c}"
    );
    assert_eq!(
        condition["message"],
        "Auto approving kubelet client certificate after SubjectAccessReview."
    );
    let cert = issued(&c).unwrap();
    let (cn, o, _) = subject(&cert);
    assert_eq!(
        (cn.as_str(), o),
        ("system:node:n1", vec!["system:nodes".to_string()])
    );
    assert!(
        openssl_verifies(&pki, &cert, "sslclient"),
        "not a client certificate from the CA:\n{cert}"
    );
    cm.lines
        .wait_for("csrsigning: issued a certificate for node-csr-n1 (system:bootstrap:abcdef)");

    // Renewal with the node's own certificate: selfnodeclient.
    let cert_file = pki.write("n1.crt", &cert);
    let key_file = pki.write("n1.key", &key);
    let node = Cred::CertFiles(&cert_file, &key_file);
    let (status, body, _) = submit(&api, node, "renew-n1", "system:node:n1", "system:nodes");
    assert_eq!(status, 201, "{body}");
    assert!(eventually(PATIENCE, || issued(&csr(&api, "renew-n1")).is_some()));
    assert_eq!(
        csr(&api, "renew-n1")["status"]["conditions"][0]["message"],
        "Auto approving self kubelet client certificate after SubjectAccessReview."
    );

    // Take away each binding: the request it allowed is no longer approved (or not even accepted).
    api.must(
        Cred::Cert("super-admin"),
        "DELETE",
        &format!("{CRB}/kubeadm:node-autoapprove-certificate-rotation"),
        None,
        200,
    );
    let (status, _, _) = submit(
        &api,
        node,
        "renew-n1-again",
        "system:node:n1",
        "system:nodes",
    );
    assert_eq!(status, 201);
    cm.lines.wait_for("recognized csr \"renew-n1-again\" as [\"selfnodeclient\", \"nodeclient\"] but subject access review was not approved");

    api.must(
        Cred::Cert("super-admin"),
        "DELETE",
        &format!("{CRB}/kubeadm:node-autoapprove-bootstrap"),
        None,
        200,
    );
    let (status, _, _) = submit(&api, token, "node-csr-n2", "system:node:n2", "system:nodes");
    assert_eq!(status, 201);
    cm.lines.wait_for("recognized csr \"node-csr-n2\" as [\"nodeclient\"] but subject access review was not approved");

    api.must(
        Cred::Cert("super-admin"),
        "DELETE",
        &format!("{CRB}/kubeadm:kubelet-bootstrap"),
        None,
        200,
    );
    let (status, body, _) = submit(&api, token, "node-csr-n3", "system:node:n3", "system:nodes");
    assert_eq!(
        status, 403,
        "without kubeadm:kubelet-bootstrap the token may not even ask: {body}"
    );

    std::thread::sleep(Duration::from_secs(1));
    for name in ["renew-n1-again", "node-csr-n2"] {
        let c = csr(&api, name);
        assert!(
            !approved(&c) && issued(&c).is_none(),
            "{name} was approved: {c}"
        );
    }
}

#[test]
fn an_approved_csr_that_is_not_a_kubelet_client_csr_fails_signing() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    api.bind_cluster_admins();
    let _cm = start_controller_manager(&pki, &api, "*,bootstrapsigner,tokencleaner");
    let (status, body, _) = submit(
        &api,
        Cred::Cert("admin"),
        "masters",
        "system:node:evil",
        "system:masters",
    );
    assert_eq!(status, 201, "{body}");
    let mut c = csr(&api, "masters");
    c["status"]["conditions"] =
        json!([{"type": "Approved", "status": "True", "reason": "ByHand", "message": "admin"}]);
    api.must(
        Cred::Cert("admin"),
        "PUT",
        &format!("{CSRS}/masters/approval"),
        Some(&c),
        200,
    );
    assert!(eventually(PATIENCE, || {
        csr(&api, "masters")["status"]["conditions"]
            .as_array()
            .is_some_and(|l| {
                l.iter()
                    .any(|x| x["type"] == "Failed" && x["reason"] == "SignerValidationFailure")
            })
    }));
    assert!(issued(&csr(&api, "masters")).is_none());
}

/// Runs the controller manager with `args`; it must exit 1 with an error line containing every needle.
fn refuses(pki: &Pki, args: &[String], needles: &[&str]) {
    let mut p = Proc::spawn(pki.dir.path(), "kube-controller-manager", args);
    let (status, stderr) = p.wait_exit_within(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("STAND-IN kube-controller-manager: error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    for n in needles {
        assert!(line.contains(n), "{n:?} not in {line:?}");
    }
}

#[test]
fn refuses_to_start_with_bad_files_identities_or_controllers() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let base = || {
        pki.cert_kubeconfig("controller-manager", &api.server(), "controller-manager");
        controller_manager_flags(&pki, "*,bootstrapsigner,tokencleaner")
    };
    let p = |n: &str| pki.path(n).display().to_string();

    let mut a = base();
    set_flag(&mut a, "kubeconfig", Some(&p("missing.conf")));
    refuses(&pki, &a, &["--kubeconfig", "missing.conf", "cannot read"]);

    pki.cert_kubeconfig("admin", &api.server(), "admin");
    let mut a = base();
    set_flag(&mut a, "kubeconfig", Some(&p("admin.conf")));
    refuses(
        &pki,
        &a,
        &[
            "--kubeconfig",
            "CN \"kubernetes-admin\", not system:kube-controller-manager",
        ],
    );

    pki.write("broken.conf", "clusters: [\n");
    let mut a = base();
    set_flag(&mut a, "authorization-kubeconfig", Some(&p("broken.conf")));
    refuses(&pki, &a, &["--authorization-kubeconfig", "broken.conf"]);

    let mut a = base();
    set_flag(&mut a, "cluster-signing-key-file", Some(&p("sa.key")));
    refuses(
        &pki,
        &a,
        &[
            "--cluster-signing-cert-file",
            "--cluster-signing-key-file",
            "the key does not belong to the certificate",
        ],
    );

    let mut a = base();
    set_flag(&mut a, "controllers", Some("*,bootstrapsigner,magic"));
    refuses(
        &pki,
        &a,
        &["\"magic\" is not in the list of known controllers"],
    );

    let mut a = base();
    set_flag(&mut a, "root-ca-file", Some(&p("sa.pub")));
    refuses(&pki, &a, &["--root-ca-file", "no PEM certificate"]);

    let mut a = base();
    set_flag(
        &mut a,
        "service-account-private-key-file",
        Some(&p("sa.pub")),
    );
    refuses(
        &pki,
        &a,
        &["--service-account-private-key-file", "no PEM private key"],
    );

    // A certificate for the right CN from another CA: the API server says 401.
    let other = Pki::new();
    std::fs::copy(
        other.path("controller-manager.crt"),
        pki.path("foreign.crt"),
    )
    .unwrap();
    std::fs::copy(
        other.path("controller-manager.key"),
        pki.path("foreign.key"),
    )
    .unwrap();
    pki.cert_kubeconfig("foreign", &api.server(), "foreign");
    let mut a = base();
    set_flag(&mut a, "kubeconfig", Some(&p("foreign.conf")));
    set_flag(&mut a, "authentication-kubeconfig", None);
    set_flag(&mut a, "authorization-kubeconfig", None);
    refuses(&pki, &a, &["the API server rejects --kubeconfig", "401"]);
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_rsa_pki_with_pkcs1_keys_as_kubeadm_writes_them_works_end_to_end() {
    // kubeadm's default: RSA 2048 keys in PKCS#1 ("RSA PRIVATE KEY"). rcgen (ring) cannot make RSA keys, so
    // openssl does; rcgen signs with the PKCS#8 form, the stand-ins read the PKCS#1 files.
    let keys = tempfile::tempdir().unwrap();
    openssl(
        keys.path(),
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "ca8.key",
        ],
    );
    let pkcs8 = std::fs::read_to_string(keys.path().join("ca8.key")).unwrap();
    let pki = Pki::with_ca(Ca::with_key(
        "kubernetes",
        rcgen::KeyPair::from_pem(&pkcs8).unwrap(),
    ));
    let ca_key = pki.path("ca.key").display().to_string();
    let ca8 = keys.path().join("ca8.key").display().to_string();
    openssl(
        pki.dir.path(),
        &["rsa", "-in", &ca8, "-traditional", "-out", &ca_key],
    );
    openssl(
        pki.dir.path(),
        &["genrsa", "-traditional", "-out", "sa.key", "2048"],
    );
    openssl(
        pki.dir.path(),
        &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
    );
    assert!(
        pki.read("ca.key")
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    assert!(
        pki.read("sa.key")
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );

    let api = ApiServer::start(&pki);
    api.create(SECRETS, &bootstrap_token("abcdef", "0123456789abcdef", &[]));
    for b in kubeadm_bindings() {
        api.create(CRB, &b);
    }
    let cm = start_controller_manager(&pki, &api, "*,bootstrapsigner,tokencleaner");
    let (status, body, _) = submit(
        &api,
        Cred::Token("abcdef.0123456789abcdef"),
        "node-csr-rsa",
        "system:node:r1",
        "system:nodes",
    );
    assert_eq!(status, 201, "{body}");
    assert!(
        eventually(PATIENCE, || issued(&csr(&api, "node-csr-rsa")).is_some()),
        "{}",
        cm.lines.text()
    );
    let cert = issued(&csr(&api, "node-csr-rsa")).unwrap();
    assert!(openssl_verifies(&pki, &cert, "sslclient"), "{cert}");
    // The controllers' RS256 service-account tokens were accepted.
    api.proc
        .lines
        .wait_for("user=\"system:serviceaccount:kube-system:certificate-controller\"");
}
