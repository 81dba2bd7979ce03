//! The stand-in kube-apiserver end to end, against the built binary (run through a symlink named
//! `kube-apiserver`) on loopback, with kubeadm's flags and a kubeadm-layout PKI (see `support`): start-up
//! checks, TLS, authentication, authorization, the REST subset and persistence. `curl` is the client.

mod support;

use serde_json::{Value, json};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const CM: &str = "/api/v1/namespaces/kube-public/configmaps";

// ---- health, TLS, process ----

#[test]
fn health_paths_answer_ok_over_verified_tls_to_anonymous_clients() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    for path in ["/readyz", "/healthz", "/livez"] {
        let a = api.curl(Cred::Anonymous, "GET", path, None, &[]);
        assert_eq!((a.status, a.body.as_str()), (200, "ok"), "{path}: {a:?}");
        assert!(
            a.header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "{a:?}"
        );
        assert_eq!(
            a.header("x-stand-in").as_deref(),
            Some("k8s-image demo"),
            "{a:?}"
        );
        assert_eq!(a.header("connection").as_deref(), Some("close"), "{a:?}");
    }
    let verbose = api.curl(Cred::Anonymous, "GET", "/readyz?verbose", None, &[]);
    assert_eq!(verbose.status, 200, "{verbose:?}");
    assert!(
        verbose.body.contains("[+]etcd ok") && verbose.body.contains("readyz check passed"),
        "{verbose:?}"
    );
    api.proc
        .lines
        .wait_for("STAND-IN kube-apiserver: GET /readyz 200 user=\"system:anonymous\"");
    let first = api.proc.lines.all()[0].clone();
    assert!(
        first.starts_with("STAND-IN kube-apiserver: not a real Kubernetes binary; args: ["),
        "{first}"
    );
}

#[test]
fn health_fails_when_etcd_goes_away() {
    let pki = Pki::new();
    // An etcd that is up at start and then gone: a listener bound by the test itself.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let etcd = format!("http://{}", listener.local_addr().unwrap());
    let port = free_port();
    let args = apiserver_flags(&pki, port, &etcd, &pki.path("data"));
    let proc = Proc::spawn(pki.dir.path(), "kube-apiserver", &args);
    proc.lines.wait_for("serving HTTPS on");
    drop(listener);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
        ])
        .arg(pki.path("ca.crt"))
        .arg(format!("https://127.0.0.1:{port}/readyz"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "500");
}

#[test]
fn head_is_its_own_verb_for_paths() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    // Non-resource verbs are the lower-cased method: system:public-info-viewer grants "get", not "head".
    let a = api.curl(Cred::Anonymous, "HEAD", "/readyz", None, &["-I"]);
    assert_eq!(a.status, 403, "{a:?}");
    let a = api.curl(Cred::Cert("super-admin"), "HEAD", "/readyz", None, &["-I"]);
    assert_eq!((a.status, a.body.as_str()), (200, ""), "{a:?}");
    assert_eq!(a.header("content-length").as_deref(), Some("2"), "{a:?}");
}

#[test]
fn unknown_paths_are_forbidden_to_anonymous_and_not_found_for_admins() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let (status, body) = api.call(Cred::Anonymous, "GET", "/", None);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/\""
    );
    let (status, _) = api.call(Cred::Anonymous, "POST", "/readyz", None);
    assert_eq!(status, 403);
    let a = api.curl(Cred::Cert("super-admin"), "GET", "/nope", None, &[]);
    assert_eq!(a.status, 404, "{a:?}");
    assert!(a.body.contains("STAND-IN"), "{a:?}");
    let (status, body) = api.call(
        Cred::Cert("super-admin"),
        "GET",
        "/apis/apps/v1/deployments",
        None,
    );
    assert_eq!(
        (status, body["reason"].as_str()),
        (404, Some("NotFound")),
        "{body}"
    );
}

#[test]
fn ready_delay_fails_readyz_then_passes() {
    let pki = Pki::new();
    let api = ApiServer::start_with(&pki, &["--stand-in-ready-delay=3"], None);
    let started = Instant::now();
    let a = api.curl(Cred::Anonymous, "GET", "/readyz", None, &[]);
    assert_eq!(a.status, 500, "{a:?}");
    assert!(
        a.body.contains("not ready yet") && a.body.contains("readyz check failed"),
        "{a:?}"
    );
    assert_eq!(
        api.curl(Cred::Anonymous, "GET", "/healthz", None, &[])
            .status,
        200
    );
    assert_eq!(
        api.curl(Cred::Anonymous, "GET", "/livez", None, &[]).status,
        200
    );
    assert!(eventually(PATIENCE, || api
        .curl(Cred::Anonymous, "GET", "/readyz", None, &[])
        .status
        == 200));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "ready before the delay ran out"
    );
}

#[test]
fn serves_the_whole_chain_so_the_ca_can_be_pinned() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let output = Command::new("openssl")
        .args(["s_client", "-showcerts", "-connect"])
        .arg(format!("127.0.0.1:{}", api.port))
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        shown.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{shown}"
    );
    let ca_body: String = pki
        .ca
        .cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let shown_bodies: String = shown.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        shown_bodies.contains(&ca_body),
        "the CA is not in the presented chain: {shown}"
    );
}

#[test]
fn tls_1_2_and_1_3_both_work() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    for versions in [
        ["--tlsv1.2", "--tls-max", "1.2"],
        ["--tlsv1.3", "--tls-max", "1.3"],
    ] {
        let a = api.curl(Cred::Cert("admin"), "GET", "/readyz", None, &versions);
        assert_eq!(
            (a.status, a.body.as_str()),
            (200, "ok"),
            "{versions:?}: {a:?}"
        );
    }
}

#[test]
fn a_client_trusting_another_ca_refuses_the_server() {
    let pki = Pki::new();
    let other = Pki::new();
    let api = ApiServer::start(&pki);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(other.path("ca.crt"))
        .arg(format!("{}/readyz", api.server()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    api.proc.lines.wait_for("TLS handshake with 127.0.0.1:");
    assert_eq!(
        api.curl(Cred::Anonymous, "GET", "/readyz", None, &[])
            .status,
        200
    );
}

#[test]
fn plain_http_on_the_tls_port_gets_a_400() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{}/readyz", api.port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.0 400"), "{text}");
    assert!(text.contains("HTTP request to an HTTPS server"), "{text}");
}

#[test]
fn ready_is_sent_to_the_notify_socket() {
    let pki = Pki::new();
    let socket = pki.path("notify");
    let receiver = UnixDatagram::bind(&socket).unwrap();
    receiver.set_read_timeout(Some(PATIENCE)).unwrap();
    let etcd = Etcd::start();
    let args = apiserver_flags(&pki, free_port(), &etcd.url(), &pki.path("data"));
    let mut command = stand_in(pki.dir.path(), "kube-apiserver");
    command.args(&args).env("NOTIFY_SOCKET", &socket);
    let _proc = Proc::spawn_command(&mut command, "kube-apiserver");
    let mut buffer = [0u8; 512];
    let n = receiver.recv(&mut buffer).unwrap();
    let message = String::from_utf8_lossy(&buffer[..n]);
    assert!(message.lines().any(|l| l == "READY=1"), "{message}");
}

#[test]
fn version_still_prints_the_stand_in_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = stand_in(dir.path(), "kube-apiserver")
        .arg("--version")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "kube-apiserver STAND-IN (k8s-image demo, not the real kube-apiserver)\n"
    );
}

#[test]
fn weaver_crictl_and_kubeadm_still_only_sleep() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["weaver", "crictl", "kubeadm"] {
        let mut p = Proc::spawn(dir.path(), name, &["--secure-port".into(), "1".into()]);
        let line = p.lines.wait_for("STAND-IN");
        assert!(
            line.starts_with(&format!(
                "STAND-IN {name}: not a real Kubernetes binary; args: ["
            )),
            "{line}"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(p.running(), "{name} exited");
    }
}

// ---- start-up checks ----

/// Runs the API server with `args` changed by `change`; it must exit 1 with a line containing every `needle`.
fn refuses(pki: &Pki, change: impl FnOnce(&mut Vec<String>), needles: &[&str]) {
    let etcd = Etcd::start();
    let mut args = apiserver_flags(pki, free_port(), &etcd.url(), &pki.path("data"));
    change(&mut args);
    let mut p = Proc::spawn(pki.dir.path(), "kube-apiserver", &args);
    let (status, stderr) = p.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("STAND-IN kube-apiserver: error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    for n in needles {
        assert!(line.contains(n), "{n:?} not in {line:?}");
    }
    assert!(!stderr.contains("serving HTTPS"), "{stderr}");
}

#[test]
fn refuses_to_start_with_a_missing_serving_key() {
    let pki = Pki::new();
    let missing = pki.path("missing.key").display().to_string();
    refuses(
        &pki,
        |a| set_flag(a, "tls-private-key-file", Some(&missing)),
        &["--tls-private-key-file", &missing, "cannot read"],
    );
}

#[test]
fn refuses_to_start_with_a_missing_serving_certificate() {
    let pki = Pki::new();
    let missing = pki.path("missing.crt").display().to_string();
    refuses(
        &pki,
        |a| set_flag(a, "tls-cert-file", Some(&missing)),
        &["--tls-cert-file", &missing],
    );
}

#[test]
fn refuses_a_serving_key_that_does_not_match() {
    let pki = Pki::new();
    let key = pki.path("ca.key").display().to_string();
    refuses(
        &pki,
        |a| set_flag(a, "tls-private-key-file", Some(&key)),
        &["--tls-cert-file", "--tls-private-key-file", "do not match"],
    );
}

#[test]
fn refuses_a_serving_certificate_from_another_ca() {
    let pki = Pki::new();
    let other = Pki::new();
    let (c, k) = (
        other.path("apiserver.crt").display().to_string(),
        other.path("apiserver.key").display().to_string(),
    );
    refuses(
        &pki,
        |a| {
            set_flag(a, "tls-cert-file", Some(&c));
            set_flag(a, "tls-private-key-file", Some(&k));
        },
        &[
            "--tls-cert-file",
            &c,
            "not signed by the CA in --client-ca-file",
        ],
    );
}

#[test]
fn refuses_a_client_ca_that_is_not_a_ca() {
    let pki = Pki::new();
    let admin = pki.path("admin.crt").display().to_string();
    refuses(
        &pki,
        |a| set_flag(a, "client-ca-file", Some(&admin)),
        &["--client-ca-file", "is not a CA certificate"],
    );
}

#[test]
fn refuses_a_kubelet_client_key_that_does_not_match() {
    let pki = Pki::new();
    let key = pki.path("admin.key").display().to_string();
    refuses(
        &pki,
        |a| set_flag(a, "kubelet-client-key", Some(&key)),
        &[
            "--kubelet-client-certificate",
            "--kubelet-client-key",
            "do not match",
        ],
    );
}

#[test]
fn refuses_a_kubelet_client_certificate_not_signed_by_the_ca() {
    let pki = Pki::new();
    let (c, k) = (
        pki.path("front-proxy-client.crt").display().to_string(),
        pki.path("front-proxy-client.key").display().to_string(),
    );
    refuses(
        &pki,
        |a| {
            set_flag(a, "kubelet-client-certificate", Some(&c));
            set_flag(a, "kubelet-client-key", Some(&k));
        },
        &[
            "--kubelet-client-certificate",
            "not signed by the CA in --client-ca-file",
        ],
    );
}

#[test]
fn refuses_a_proxy_client_certificate_not_signed_by_the_front_proxy_ca() {
    let pki = Pki::new();
    let (c, k) = (
        pki.path("admin.crt").display().to_string(),
        pki.path("admin.key").display().to_string(),
    );
    refuses(
        &pki,
        |a| {
            set_flag(a, "proxy-client-cert-file", Some(&c));
            set_flag(a, "proxy-client-key-file", Some(&k));
        },
        &[
            "--proxy-client-cert-file",
            "not signed by the CA in --requestheader-client-ca-file",
        ],
    );
}

#[test]
fn refuses_a_missing_requestheader_ca() {
    let pki = Pki::new();
    let missing = pki.path("nope.crt").display().to_string();
    refuses(
        &pki,
        |a| set_flag(a, "requestheader-client-ca-file", Some(&missing)),
        &["--requestheader-client-ca-file", &missing],
    );
}

#[test]
fn refuses_a_malformed_service_account_key_file() {
    let pki = Pki::new();
    let bad = pki.write("bad.pub", "not a key\n").display().to_string();
    refuses(
        &pki,
        |a| set_flag(a, "service-account-key-file", Some(&bad)),
        &["--service-account-key-file", &bad, "no PEM public key"],
    );
}

#[test]
fn refuses_a_signing_key_whose_public_half_is_not_in_the_key_file() {
    let pki = Pki::new();
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key = pki
        .write("other-sa.key", &other.serialize_pem())
        .display()
        .to_string();
    refuses(
        &pki,
        |a| set_flag(a, "service-account-signing-key-file", Some(&key)),
        &[
            "--service-account-signing-key-file",
            "not in --service-account-key-file",
        ],
    );
}

#[test]
fn refuses_to_start_without_a_service_account_issuer() {
    let pki = Pki::new();
    refuses(
        &pki,
        |a| set_flag(a, "service-account-issuer", None),
        &["--service-account-issuer"],
    );
}

#[test]
fn refuses_to_start_without_etcd() {
    let pki = Pki::new();
    let closed = format!("http://127.0.0.1:{}", free_port());
    refuses(
        &pki,
        |a| set_flag(a, "etcd-servers", Some(&closed)),
        &[
            "--etcd-servers",
            &closed,
            "no etcd server accepts connections",
        ],
    );
}

#[test]
fn refuses_a_port_in_use_and_positional_arguments() {
    let pki = Pki::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    refuses(
        &pki,
        |a| set_flag(a, "secure-port", Some(&port.to_string())),
        &[&format!("cannot listen on 127.0.0.1:{port}")],
    );
    refuses(
        &pki,
        |a| a.push("serve".into()),
        &["does not take any arguments"],
    );
}

// ---- authentication ----

fn whoami(api: &ApiServer, cred: Cred<'_>) -> (u16, Value) {
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    api.call(cred, "POST", SSR, Some(&review))
}

#[test]
fn client_certificates_authenticate_as_their_cn_and_o() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let (status, body) = whoami(&api, Cred::Cert("admin"));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["kind"], "SelfSubjectReview");
    assert_eq!(body["status"]["userInfo"]["username"], "kubernetes-admin");
    assert_eq!(
        body["status"]["userInfo"]["groups"],
        json!(["kubeadm:cluster-admins", "system:authenticated"])
    );
    let (_, body) = whoami(&api, Cred::Cert("super-admin"));
    assert_eq!(
        body["status"]["userInfo"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    // Anonymous users may not even ask who they are.
    let (status, _) = whoami(&api, Cred::Anonymous);
    assert_eq!(status, 403);
}

#[test]
fn a_client_certificate_from_another_ca_is_unauthorized_not_anonymous() {
    let pki = Pki::new();
    let other = Pki::new();
    let api = ApiServer::start(&pki);
    let (c, k) = (other.path("super-admin.crt"), other.path("super-admin.key"));
    let (status, body) = api.call(Cred::CertFiles(&c, &k), "GET", "/readyz", None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["reason"], "Unauthorized");
    api.proc
        .lines
        .wait_for("GET /readyz 401 user=\"-\" (client certificate:");
}

#[test]
fn admin_conf_has_rights_only_once_kubeadm_cluster_admins_exists() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let secrets = "/api/v1/namespaces/kube-system/secrets";
    let (status, body) = api.call(Cred::Cert("admin"), "GET", secrets, None);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        "secrets is forbidden: User \"kubernetes-admin\" cannot list resource \"secrets\" in API group \"\" in the namespace \"kube-system\""
    );
    // What kubeadm does on that 403: create the binding with super-admin.conf.
    let binding = cluster_role_binding(
        "kubeadm:cluster-admins",
        "cluster-admin",
        &[("Group", "kubeadm:cluster-admins")],
    );
    let (status, _) = api.call(Cred::Cert("admin"), "POST", CRB, Some(&binding));
    assert_eq!(status, 403, "admin may not bind itself");
    api.bind_cluster_admins();
    api.must(Cred::Cert("admin"), "GET", secrets, None, 200);
}

#[test]
fn anonymous_may_read_cluster_info_only_after_the_role_binding_and_nothing_else() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let cluster_info = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": "apiVersion: v1\nkind: Config\n"},
    });
    api.create(CM, &cluster_info);
    api.create(
        CM,
        &json!({"metadata": {"name": "other", "namespace": "kube-public"}, "data": {}}),
    );
    let (status, body) = api.call(Cred::Anonymous, "GET", &format!("{CM}/cluster-info"), None);
    assert_eq!(status, 403);
    assert_eq!(
        body["message"],
        "configmaps \"cluster-info\" is forbidden: User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-public\""
    );
    assert_eq!(
        body["details"],
        json!({"name": "cluster-info", "kind": "configmaps"})
    );
    api.create(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/roles",
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"]}],
        }),
    );
    let (status, _) = api.call(Cred::Anonymous, "GET", &format!("{CM}/cluster-info"), None);
    assert_eq!(status, 403, "a Role alone grants nothing");
    api.create(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/rolebindings",
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:bootstrap-signer-clusterinfo"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "system:anonymous"}],
        }),
    );
    let body = api.must(
        Cred::Anonymous,
        "GET",
        &format!("{CM}/cluster-info"),
        None,
        200,
    );
    assert_eq!(body["data"]["kubeconfig"], "apiVersion: v1\nkind: Config\n");
    for (method, path) in [
        ("GET", format!("{CM}/other")),
        ("GET", CM.to_string()),
        ("PUT", format!("{CM}/cluster-info")),
        ("GET", "/api/v1/namespaces/kube-system/secrets".to_string()),
        ("GET", "/api/v1/nodes".to_string()),
        ("GET", "/api".to_string()),
    ] {
        let body = (method == "PUT").then(|| cluster_info.clone());
        let (status, _) = api.call(Cred::Anonymous, method, &path, body.as_ref());
        assert_eq!(status, 403, "{method} {path}");
    }
}

/// A token id, extra Secret data, and the SelfSubjectReview status it gets.
type Case = (&'static str, &'static [(&'static str, &'static str)], u16);

#[test]
fn bootstrap_tokens_authenticate_only_as_their_secret_says() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let token = "abcdef.0123456789abcdef";
    let (status, _) = whoami(&api, Cred::Token(token));
    assert_eq!(status, 401, "no Secret yet");
    let secrets = "/api/v1/namespaces/kube-system/secrets";
    api.create(secrets, &bootstrap_token("abcdef", "0123456789abcdef", &[]));
    let (status, body) = whoami(&api, Cred::Token(token));
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["status"]["userInfo"]["username"],
        "system:bootstrap:abcdef"
    );
    assert_eq!(
        body["status"]["userInfo"]["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:kubeadm:default-node-token",
            "system:authenticated"
        ])
    );
    let (status, body) = whoami(&api, Cred::Token("abcdef.0123456789abcdee"));
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("Unauthorized")),
        "a wrong secret is 401, not anonymous"
    );
    let (status, _) = api.call(
        Cred::Token("abcdef.0123456789abcdee"),
        "GET",
        "/readyz",
        None,
    );
    assert_eq!(status, 401);
    let cases: [Case; 5] = [
        (
            "aaaaaa",
            &[("usage-bootstrap-authentication", "false")],
            401,
        ),
        ("bbbbbb", &[("expiration", "2000-01-01T00:00:00Z")], 401),
        ("cccccc", &[("expiration", "soon")], 401),
        ("dddddd", &[("expiration", "2999-01-01T00:00:00Z")], 201),
        ("eeeeee", &[("auth-extra-groups", "system:masters")], 401),
    ];
    for (id, extra, expected) in cases {
        api.create(secrets, &bootstrap_token(id, "0123456789abcdef", extra));
        let (status, body) = whoami(&api, Cred::Token(&format!("{id}.0123456789abcdef")));
        assert_eq!(status, expected, "{id} {extra:?}: {body}");
    }
    // The Secret must be of the bootstrap type.
    let mut opaque = bootstrap_token("ffffff", "0123456789abcdef", &[]);
    opaque["type"] = json!("Opaque");
    api.create(secrets, &opaque);
    assert_eq!(whoami(&api, Cred::Token("ffffff.0123456789abcdef")).0, 401);
    // Tokens never reach the log.
    assert!(
        !api.proc.lines.text().contains("0123456789abcde"),
        "{}",
        api.proc.lines.text()
    );
}

// ---- REST ----

#[test]
fn objects_persist_across_a_restart() {
    let pki = Pki::new();
    let data = pki.path("kept");
    let api = ApiServer::start_with(&pki, &[], Some(&data));
    let created = api.create(CM, &json!({"metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": {"kubeconfig": "x"}}));
    api.bind_cluster_admins();
    drop(api);
    let api = ApiServer::start_with(&pki, &[], Some(&data));
    let got = api.must(
        Cred::Cert("admin"),
        "GET",
        &format!("{CM}/cluster-info"),
        None,
        200,
    );
    assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        got["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(got["data"]["kubeconfig"], "x");
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(data.join("objects.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o600);
}

#[test]
fn rest_semantics_follow_kubernetes() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let admin = Cred::Cert("super-admin");
    let path = "/api/v1/namespaces/default/configmaps";
    let made = api.must(admin, "POST", path, Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}})), 201);
    let meta = &made["metadata"];
    assert_eq!(
        (meta["name"].as_str(), meta["namespace"].as_str()),
        (Some("a"), Some("default"))
    );
    assert!(
        meta["uid"].as_str().is_some_and(|u| u.len() == 36),
        "{made}"
    );
    assert!(
        meta["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{made}"
    );
    let rv = meta["resourceVersion"].as_str().unwrap().to_string();
    let (status, dup) = api.call(admin, "POST", path, Some(&made));
    assert_eq!(
        (status, dup["reason"].as_str()),
        (409, Some("AlreadyExists")),
        "{dup}"
    );
    assert_eq!(dup["message"], "configmaps \"a\" already exists");
    let (status, missing) = api.call(admin, "GET", &format!("{path}/nope"), None);
    assert_eq!(
        (status, missing["message"].as_str()),
        (404, Some("configmaps \"nope\" not found"))
    );
    let mut update = made.clone();
    update["data"]["k"] = json!("w");
    let updated = api.must(admin, "PUT", &format!("{path}/a"), Some(&update), 200);
    assert_ne!(
        updated["metadata"]["resourceVersion"].as_str(),
        Some(rv.as_str())
    );
    assert_eq!(updated["metadata"]["uid"], made["metadata"]["uid"]);
    let (status, conflict) = api.call(admin, "PUT", &format!("{path}/a"), Some(&update));
    assert_eq!(
        (status, conflict["reason"].as_str()),
        (409, Some("Conflict")),
        "stale resourceVersion: {conflict}"
    );
    let patched = api.must(
        admin,
        "PATCH",
        &format!("{path}/a"),
        Some(&json!({"data": {"p": "q"}})),
        200,
    );
    assert_eq!(patched["data"], json!({"k": "w", "p": "q"}));
    let list = api.must(admin, "GET", path, None, 200);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let generated = api.must(
        admin,
        "POST",
        path,
        Some(&json!({"metadata": {"generateName": "gen-"}})),
        201,
    );
    assert!(
        generated["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("gen-")
    );
    let (status, invalid) = api.call(
        admin,
        "POST",
        path,
        Some(&json!({"metadata": {"name": "Bad_Name"}})),
    );
    assert_eq!(
        (status, invalid["reason"].as_str()),
        (422, Some("Invalid")),
        "{invalid}"
    );
    let (status, invalid) = api.call(
        admin,
        "POST",
        path,
        Some(&json!({"metadata": {"name": "k"}, "data": {"a b": "c"}})),
    );
    assert_eq!(status, 422, "{invalid}");
    let (status, ns) = api.call(
        admin,
        "POST",
        "/api/v1/namespaces/nowhere/configmaps",
        Some(&json!({"metadata": {"name": "x"}})),
    );
    assert_eq!(
        (status, ns["message"].as_str()),
        (404, Some("namespaces \"nowhere\" not found"))
    );
    let (status, bad) = api.call(
        admin,
        "POST",
        path,
        Some(&json!({"kind": "Secret", "metadata": {"name": "x"}})),
    );
    assert_eq!(status, 400, "{bad}");
    let deleted = api.must(admin, "DELETE", &format!("{path}/a"), None, 200);
    assert_eq!(deleted["status"], "Success");
    assert_eq!(api.call(admin, "GET", &format!("{path}/a"), None).0, 404);
    for ns in ["kube-system", "kube-public", "default", "kube-node-lease"] {
        api.must(admin, "GET", &format!("/api/v1/namespaces/{ns}"), None, 200);
    }
    let s = api.must(
        admin,
        "POST",
        "/api/v1/namespaces/kube-system/secrets",
        Some(&json!({"metadata": {"name": "s"}, "stringData": {"token-id": "abcdef"}})),
        201,
    );
    assert_eq!(
        (s["type"].as_str(), s["data"]["token-id"].as_str()),
        (Some("Opaque"), Some("YWJjZGVm"))
    );
    assert!(s.get("stringData").is_none());
    let selected = api.must(
        admin,
        "GET",
        "/api/v1/namespaces/kube-system/secrets?fieldSelector=type%3DOpaque",
        None,
        200,
    );
    assert_eq!(selected["items"].as_array().unwrap().len(), 1);
    let selected = api.must(admin, "GET", "/api/v1/namespaces/kube-system/secrets?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken", None, 200);
    assert_eq!(selected["items"].as_array().unwrap().len(), 0);
    let big = "x".repeat(4 * 1024 * 1024);
    let (status, _) = api.call(
        admin,
        "POST",
        path,
        Some(&json!({"metadata": {"name": "big"}, "data": {"k": big}})),
    );
    assert_eq!(status, 413, "bodies are bounded");
}

#[test]
fn csr_creation_takes_the_requester_and_validates_the_request() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    api.create(
        "/api/v1/namespaces/kube-system/secrets",
        &bootstrap_token("abcdef", "0123456789abcdef", &[]),
    );
    for b in kubeadm_bindings() {
        api.create(CRB, &b);
    }
    let token = Cred::Token("abcdef.0123456789abcdef");
    let (mut csr, _) = kubelet_csr("node-csr-1", "system:node:n1", "system:nodes");
    csr["spec"]["username"] = json!("system:masters-wannabe");
    csr["spec"]["groups"] = json!(["system:masters"]);
    csr["status"] = json!({"certificate": b64("forged")});
    let made = api.must(token, "POST", CSRS, Some(&csr), 201);
    assert_eq!(made["spec"]["username"], "system:bootstrap:abcdef");
    assert_eq!(
        made["spec"]["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:kubeadm:default-node-token",
            "system:authenticated"
        ])
    );
    assert!(made["spec"].get("uid").is_none());
    assert_eq!(made["status"], json!({}));
    let (mut bad, _) = kubelet_csr("node-csr-2", "system:node:n1", "system:nodes");
    bad["spec"]["request"] = json!(b64(
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    ));
    let (status, body) = api.call(token, "POST", CSRS, Some(&bad));
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("spec.request"),
        "{body}"
    );
    let (mut no_signer, _) = kubelet_csr("node-csr-3", "system:node:n1", "system:nodes");
    no_signer["spec"]
        .as_object_mut()
        .unwrap()
        .remove("signerName");
    let (status, body) = api.call(token, "POST", CSRS, Some(&no_signer));
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("spec.signerName: Required value"),
        "{body}"
    );
    // The bootstrap identity may not approve its own request.
    let mut approval = made.clone();
    approval["status"]["conditions"] =
        json!([{"type": "Approved", "status": "True", "reason": "Mine"}]);
    let (status, body) = api.call(
        token,
        "PUT",
        &format!("{CSRS}/node-csr-1/approval"),
        Some(&approval),
    );
    assert_eq!(status, 403, "{body}");
    // A cluster admin may (CertificateApproval: approve on signers).
    api.bind_cluster_admins();
    let approved = api.must(
        Cred::Cert("admin"),
        "PUT",
        &format!("{CSRS}/node-csr-1/approval"),
        Some(&approval),
        200,
    );
    assert!(
        approved["status"]["conditions"][0]["lastUpdateTime"].is_string(),
        "{approved}"
    );
}

#[test]
fn nodes_may_register_only_themselves_and_read_no_secrets() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    pki.client("n1", "system:node:n1", &["system:nodes"]);
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    api.must(
        Cred::Cert("n1"),
        "POST",
        "/api/v1/nodes",
        Some(&node("n1")),
        201,
    );
    let (status, body) = api.call(Cred::Cert("n1"), "POST", "/api/v1/nodes", Some(&node("n2")));
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
    );
    let patched = api.must(
        Cred::Cert("n1"),
        "PATCH",
        "/api/v1/nodes/n1/status",
        Some(&json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}, "spec": {"unschedulable": true}})),
        200,
    );
    assert_eq!(patched["status"]["conditions"][0]["type"], "Ready");
    assert!(
        patched["spec"].get("unschedulable").is_none(),
        "/status changes only the status: {patched}"
    );
    api.must(Cred::Cert("n1"), "GET", "/api/v1/nodes", None, 200);
    let (status, body) = api.call(
        Cred::Cert("n1"),
        "GET",
        "/api/v1/namespaces/kube-system/secrets/x",
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("no relationship found between node 'n1' and this object"),
        "{body}"
    );
    let (status, _) = api.call(
        Cred::Cert("n1"),
        "GET",
        "/apis/discovery.k8s.io/v1/endpointslices",
        None,
    );
    assert_eq!(
        status, 403,
        "nodes need system:node-proxier for endpointslices"
    );
}

#[test]
fn discovery_documents_are_served_to_authenticated_users() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let who = Cred::Cert("controller-manager");
    let api_doc = api.must(who, "GET", "/api", None, 200);
    assert_eq!(api_doc["kind"], "APIVersions");
    let v1 = api.must(who, "GET", "/api/v1", None, 200);
    assert_eq!(v1["kind"], "APIResourceList");
    let names: Vec<&str> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "namespaces",
        "secrets",
        "configmaps",
        "nodes",
        "nodes/status",
        "serviceaccounts/token",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let groups = api.curl(
        who,
        "GET",
        "/apis",
        None,
        &["-H", "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"],
    );
    assert_eq!(
        groups.header("content-type").as_deref(),
        Some("application/json"),
        "legacy discovery only"
    );
    assert_eq!(groups.json()["kind"], "APIGroupList");
    for g in [
        "rbac.authorization.k8s.io",
        "certificates.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
    ] {
        let doc = api.must(who, "GET", &format!("/apis/{g}/v1"), None, 200);
        assert_eq!(doc["groupVersion"], format!("{g}/v1"));
    }
    let version = api.must(Cred::Anonymous, "GET", "/version", None, 200);
    assert_eq!(version["gitVersion"], "v1.33.0-standin+k8s-image-demo");
    let (status, _) = api.call(Cred::Anonymous, "GET", "/api", None);
    assert_eq!(
        status, 403,
        "discovery is for authenticated users (system:discovery)"
    );
}

#[test]
fn subject_access_reviews_answer_for_others_and_for_oneself() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let sar = |user: &str, groups: &[&str], sub: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": user, "groups": groups,
            "resourceAttributes": {"group": "certificates.k8s.io", "resource": "certificatesigningrequests", "verb": "create", "subresource": sub}}})
    };
    let path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let r = api.must(
        Cred::Cert("controller-manager"),
        "POST",
        path,
        Some(&sar(
            "system:bootstrap:abcdef",
            &["system:bootstrappers:kubeadm:default-node-token"],
            "nodeclient",
        )),
        201,
    );
    assert_eq!(r["status"]["allowed"], false);
    for b in kubeadm_bindings() {
        api.create(CRB, &b);
    }
    let r = api.must(
        Cred::Cert("controller-manager"),
        "POST",
        path,
        Some(&sar(
            "system:bootstrap:abcdef",
            &["system:bootstrappers:kubeadm:default-node-token"],
            "nodeclient",
        )),
        201,
    );
    assert_eq!(r["status"]["allowed"], true);
    let (status, _) = api.call(
        Cred::Cert("admin"),
        "POST",
        path,
        Some(&sar("x", &[], "nodeclient")),
    );
    assert_eq!(status, 403, "admin.conf without the binding may not ask");
    let self_review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {
        "resourceAttributes": {"resource": "secrets", "verb": "list", "namespace": "kube-system"}}});
    let r = api.must(
        Cred::Cert("admin"),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(&self_review),
        201,
    );
    assert_eq!(r["status"]["allowed"], false);
    let r = api.must(
        Cred::Cert("super-admin"),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(&self_review),
        201,
    );
    assert_eq!(r["status"]["allowed"], true);
}

#[test]
fn rbac_bindings_get_upstream_defaults_and_keep_their_role_ref() {
    let pki = Pki::new();
    let api = ApiServer::start(&pki);
    let made = api.create(
        CRB,
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "kubeadm:node-proxier"},
            "roleRef": {"kind": "ClusterRole", "name": "system:node-proxier"},
            "subjects": [{"kind": "Group", "name": "system:nodes"}],
        }),
    );
    assert_eq!(made["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(made["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    let mut changed = made.clone();
    changed["roleRef"]["name"] = json!("cluster-admin");
    let (status, body) = api.call(
        Cred::Cert("super-admin"),
        "PUT",
        &format!("{CRB}/kubeadm:node-proxier"),
        Some(&changed),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot change roleRef"),
        "{body}"
    );
    let (status, body) = api.call(
        Cred::Cert("super-admin"),
        "POST",
        CRB,
        Some(&json!({"metadata": {"name": "x"}, "roleRef": {"kind": "Role", "name": "r"}, "subjects": []})),
    );
    assert_eq!(
        status, 422,
        "a ClusterRoleBinding may only reference a ClusterRole: {body}"
    );
}
