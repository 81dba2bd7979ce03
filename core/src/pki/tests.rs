//! The PKI plan against fixed CAs (openssl-made RSA and ECDSA fixtures under `tests/golden/pki`, and CAs made
//! here) at a fixed time: what is generated, that planning again generates nothing, and every error exactly.

use super::inspect::{self, Usage};
use super::issue::{Leaf, Signer};
use super::*;
use crate::kubeconfig;
use base64::Engine as _;
use std::net::Ipv4Addr;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

/// 2026-12-15 00:00:00 UTC: inside the fixtures' validity (2026-12-01 … 2036-11-28).
const NOW: i64 = 1_797_292_800;
const DAY: i64 = 86_400;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/pki/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn spec() -> ControlPlaneSpec {
    ControlPlaneSpec {
        node_name: "master-1".to_string(),
        endpoint_host: "masters.prod.k8s".to_string(),
        advertise_addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))],
        service_ip: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
        now_unix: NOW,
        control_plane_size: 1,
    }
}

fn files(pairs: &[(&str, &[u8])]) -> ExistingFiles {
    pairs
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect()
}

fn ec_ca() -> ExistingFiles {
    files(&[
        (CA_CRT, &fixture("ec-ca.crt")),
        (CA_KEY, &fixture("ec-ca.sec1.key")),
    ])
}

fn rsa_ca() -> ExistingFiles {
    files(&[
        (CA_CRT, &fixture("rsa-ca.crt")),
        (CA_KEY, &fixture("rsa-ca.key")),
    ])
}

/// A fresh ECDSA CA with CN `cn`: certificate and PKCS#8 key PEM.
fn new_ca(cn: &str) -> (String, String) {
    let (signer, key) = Signer::new_ca(CA_CRT, cn, NOW).unwrap();
    (signer.cert_pem(), key)
}

fn signer_of(cert_pem: &[u8], key_pem: &[u8]) -> Signer {
    let der = inspect::first_cert_der("ca", cert_pem).unwrap();
    Signer::existing(CA_CRT, der, inspect::private_key("ca", key_pem).unwrap()).unwrap()
}

/// A leaf signed by the given CA, e.g. a user-supplied apiserver.crt.
fn leaf(
    ca: (&[u8], &[u8]),
    cn: &str,
    usage: Usage,
    dns: &[&str],
    ips: &[IpAddr],
) -> (Vec<u8>, Vec<u8>) {
    let dns: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
    let issued = signer_of(ca.0, ca.1)
        .issue(
            "leaf",
            &Leaf {
                cn,
                org: None,
                usage,
                dns: &dns,
                ips,
            },
            NOW,
        )
        .unwrap();
    (issued.cert_pem.into_bytes(), issued.key_pem.into_bytes())
}

fn plan(existing: &ExistingFiles) -> Result<Vec<PlannedFile>, PkiError> {
    plan_control_plane(existing, &spec())
}

fn written(existing: &ExistingFiles, planned: &[PlannedFile]) -> ExistingFiles {
    let mut all = existing.clone();
    for file in planned {
        assert!(
            all.insert(file.path.clone(), file.contents.clone())
                .is_none(),
            "{} overwritten",
            file.path
        );
    }
    all
}

fn cert_of(all: &ExistingFiles, path: &str) -> Vec<u8> {
    inspect::first_cert_der(path, &all[path]).unwrap()
}

fn ext<'a>(cert: &'a X509Certificate<'_>) -> Vec<&'a ParsedExtension<'a>> {
    cert.extensions()
        .iter()
        .map(|e| e.parsed_extension())
        .collect()
}

fn ski(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    ext(cert).into_iter().find_map(|e| match e {
        ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
        _ => None,
    })
}

fn aki(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    ext(cert).into_iter().find_map(|e| match e {
        ParsedExtension::AuthorityKeyIdentifier(a) => {
            a.key_identifier.as_ref().map(|k| k.0.to_vec())
        }
        _ => None,
    })
}

/// Key usage bits as names, e.g. ["digitalSignature"].
fn key_usage(cert: &X509Certificate<'_>) -> Vec<&'static str> {
    let ku = cert.key_usage().unwrap().expect("keyUsage").value;
    let mut names = Vec::new();
    for (on, name) in [
        (ku.digital_signature(), "digitalSignature"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
    ] {
        if on {
            names.push(name);
        }
    }
    names
}

fn eku(cert: &X509Certificate<'_>) -> (bool, bool) {
    let eku = cert
        .extended_key_usage()
        .unwrap()
        .expect("extendedKeyUsage")
        .value;
    (eku.server_auth, eku.client_auth)
}

const ALL_GENERATED: [&str; 14] = [
    APISERVER_CRT,
    APISERVER_KEY,
    APISERVER_KUBELET_CLIENT_CRT,
    APISERVER_KUBELET_CLIENT_KEY,
    FRONT_PROXY_CA_CRT,
    FRONT_PROXY_CA_KEY,
    FRONT_PROXY_CLIENT_CRT,
    FRONT_PROXY_CLIENT_KEY,
    SA_KEY,
    SA_PUB,
    ADMIN_CONF,
    SUPER_ADMIN_CONF,
    CONTROLLER_MANAGER_CONF,
    SCHEDULER_CONF,
];

#[test]
fn plans_every_missing_file_in_table_order_with_modes() {
    let planned = plan(&ec_ca()).unwrap();
    let paths: Vec<&str> = planned.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ALL_GENERATED);
    for file in &planned {
        let secret = file.path.ends_with(".key") || file.path.ends_with(".conf");
        assert_eq!(file.secret, secret, "{}", file.path);
        assert_eq!(
            file.mode,
            if secret { 0o600 } else { 0o644 },
            "{}",
            file.path
        );
    }
}

#[test]
fn planned_certificates_follow_kubeadms_table() {
    let existing = rsa_ca();
    let all = written(&existing, &plan(&existing).unwrap());
    let ca_der = cert_of(&all, CA_CRT);
    let ca = inspect::parsed(&ca_der);
    let fp_ca_der = cert_of(&all, FRONT_PROXY_CA_CRT);
    let fp_ca = inspect::parsed(&fp_ca_der);

    struct Row<'a> {
        cert: &'static str,
        key: &'static str,
        cn: &'static str,
        orgs: &'static [&'static str],
        server: bool,
        issuer_der: &'a [u8],
        issuer: &'a X509Certificate<'a>,
    }
    let leaves = [
        Row {
            cert: APISERVER_CRT,
            key: APISERVER_KEY,
            cn: "kube-apiserver",
            orgs: &[],
            server: true,
            issuer_der: &ca_der,
            issuer: &ca,
        },
        Row {
            cert: APISERVER_KUBELET_CLIENT_CRT,
            key: APISERVER_KUBELET_CLIENT_KEY,
            cn: "kube-apiserver-kubelet-client",
            orgs: &["kubeadm:cluster-admins"],
            server: false,
            issuer_der: &ca_der,
            issuer: &ca,
        },
        Row {
            cert: FRONT_PROXY_CLIENT_CRT,
            key: FRONT_PROXY_CLIENT_KEY,
            cn: "front-proxy-client",
            orgs: &[],
            server: false,
            issuer_der: &fp_ca_der,
            issuer: &fp_ca,
        },
    ];
    for Row {
        cert: cert_path,
        key: key_path,
        cn,
        orgs,
        server,
        issuer_der,
        issuer,
    } in leaves
    {
        let der = cert_of(&all, cert_path);
        let cert = inspect::parsed(&der);
        let key = inspect::private_key(key_path, &all[key_path]).unwrap();
        assert!(!key.is_rsa, "{key_path}: new keys are ECDSA");
        assert!(inspect::key_matches_cert_der(&key, &der), "{key_path}");
        assert_eq!(
            inspect::identity_of(&der),
            (cn.to_string(), orgs.iter().map(|o| o.to_string()).collect())
        );
        assert_eq!(inspect::issued_by(&der, issuer_der), Ok(()), "{cert_path}");
        assert_eq!(
            inspect::validity_of(&der),
            (NOW - 300, NOW + 365 * DAY),
            "{cert_path}"
        );
        assert_eq!(key_usage(&cert), ["digitalSignature"], "{cert_path}");
        assert_eq!(eku(&cert), (server, !server), "{cert_path}");
        let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
        assert!(bc.critical && !bc.value.ca, "{cert_path}");
        assert!(ski(&cert).is_some(), "{cert_path}: SKI");
        assert_eq!(
            aki(&cert),
            ski(issuer),
            "{cert_path}: AKI is the issuer's SKI"
        );
    }

    let (dns, ips) = inspect::sans(&cert_of(&all, APISERVER_CRT));
    assert_eq!(
        dns,
        [
            "master-1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "masters.prod.k8s"
        ]
    );
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(ips, [ip("10.96.0.1"), ip("10.0.0.5"), ip("127.0.0.1")]);
    assert_eq!(
        inspect::sans(&cert_of(&all, APISERVER_KUBELET_CLIENT_CRT)),
        (vec![], vec![])
    );

    // The front-proxy CA.
    assert!(inspect::is_ca(&fp_ca_der));
    assert_eq!(
        inspect::identity_of(&fp_ca_der),
        ("front-proxy-ca".to_string(), vec![])
    );
    assert_eq!(
        inspect::issued_by(&fp_ca_der, &fp_ca_der),
        Ok(()),
        "self-signed"
    );
    assert_eq!(
        inspect::validity_of(&fp_ca_der),
        (NOW - 300, NOW + 3650 * DAY)
    );
    assert_eq!(
        key_usage(&fp_ca),
        ["digitalSignature", "keyCertSign", "cRLSign"]
    );
    let bc = fp_ca
        .basic_constraints()
        .unwrap()
        .expect("basicConstraints");
    assert!(bc.critical && bc.value.ca);
    let fp_key = inspect::private_key(FRONT_PROXY_CA_KEY, &all[FRONT_PROXY_CA_KEY]).unwrap();
    assert!(inspect::key_matches_cert_der(&fp_key, &fp_ca_der));

    // The service-account pair.
    let sa_key = inspect::private_key(SA_KEY, &all[SA_KEY]).unwrap();
    assert!(String::from_utf8_lossy(&all[SA_PUB]).starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert_eq!(
        inspect::public_key_bits(SA_PUB, &all[SA_PUB]).unwrap(),
        rcgen::PublicKeyData::der_bytes(&sa_key.pair)
    );
}

#[test]
fn planned_kubeconfigs_follow_kubeadms_table() {
    let existing = ec_ca();
    let all = written(&existing, &plan(&existing).unwrap());
    let ca_der = cert_of(&all, CA_CRT);
    let table = [
        (
            ADMIN_CONF,
            "kubernetes-admin",
            vec!["kubeadm:cluster-admins"],
            "https://masters.prod.k8s:6443",
        ),
        (
            SUPER_ADMIN_CONF,
            "kubernetes-super-admin",
            vec!["system:masters"],
            "https://masters.prod.k8s:6443",
        ),
        (
            CONTROLLER_MANAGER_CONF,
            "system:kube-controller-manager",
            vec![],
            "https://127.0.0.1:6443",
        ),
        (
            SCHEDULER_CONF,
            "system:kube-scheduler",
            vec![],
            "https://127.0.0.1:6443",
        ),
    ];
    for (path, cn, orgs, server) in table {
        let config = kubeconfig::parse(std::str::from_utf8(&all[path]).unwrap()).unwrap();
        assert_eq!(config.clusters.len(), 1);
        assert_eq!(config.clusters[0].name, "kubernetes");
        assert_eq!(config.users[0].name, cn);
        assert_eq!(config.current_context, format!("{cn}@kubernetes"));
        let cluster = config.current_cluster().unwrap();
        assert_eq!(cluster.server, server, "{path}");
        let ca_data = cluster.certificate_authority_data.as_deref().unwrap();
        assert_eq!(
            inspect::first_cert_der(path, ca_data).unwrap(),
            ca_der,
            "{path}: CA data"
        );
        let user = config.current_user().unwrap();
        let cert_pem = user.client_certificate_data.as_deref().unwrap();
        let der = inspect::first_cert_der(path, cert_pem).unwrap();
        let key = inspect::private_key(path, user.client_key_data.as_deref().unwrap()).unwrap();
        assert!(inspect::key_matches_cert_der(&key, &der), "{path}");
        assert_eq!(inspect::issued_by(&der, &ca_der), Ok(()), "{path}");
        assert_eq!(
            client_cert_identity(cert_pem).unwrap(),
            (cn.to_string(), orgs.iter().map(|o| o.to_string()).collect())
        );
        let cert = inspect::parsed(&der);
        assert_eq!(eku(&cert), (false, true), "{path}");
        assert_eq!(key_usage(&cert), ["digitalSignature"], "{path}");
        assert_eq!(
            inspect::validity_of(&der),
            (NOW - 300, NOW + 365 * DAY),
            "{path}"
        );
    }
}

#[test]
fn planning_again_writes_nothing_for_every_ca_key_form() {
    let (ec_pkcs8_crt, ec_pkcs8_key) = new_ca("kubernetes");
    let cas: [(&str, Vec<u8>, Vec<u8>); 4] = [
        ("RSA PKCS#8", fixture("rsa-ca.crt"), fixture("rsa-ca.key")),
        (
            "RSA PKCS#1",
            fixture("rsa-ca.crt"),
            fixture("rsa-ca.pkcs1.key"),
        ),
        (
            "ECDSA SEC1",
            fixture("ec-ca.crt"),
            fixture("ec-ca.sec1.key"),
        ),
        (
            "ECDSA PKCS#8",
            ec_pkcs8_crt.into_bytes(),
            ec_pkcs8_key.into_bytes(),
        ),
    ];
    for (form, crt, key) in cas {
        let existing = files(&[(CA_CRT, &crt), (CA_KEY, &key)]);
        let first = plan(&existing).unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(first.len(), ALL_GENERATED.len(), "{form}");
        let all = written(&existing, &first);
        assert_eq!(plan(&all), Ok(vec![]), "{form}");
        // Still fine a year minus a day later, with a different node address.
        let mut later = spec();
        later.now_unix = NOW + 364 * DAY;
        later.advertise_addrs = vec![];
        assert_eq!(plan_control_plane(&all, &later), Ok(vec![]), "{form}");
    }
}

#[test]
fn a_user_supplied_apiserver_certificate_is_kept() {
    let mut existing = rsa_ca();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let (crt, key) = leaf(
        (&fixture("rsa-ca.crt"), &fixture("rsa-ca.key")),
        "kube-apiserver",
        Usage::Server,
        &["*.prod.k8s"],
        &[ip("10.96.0.1"), ip("127.0.0.1")],
    );
    existing.insert(APISERVER_CRT.to_string(), crt);
    existing.insert(APISERVER_KEY.to_string(), key);
    let planned = plan(&existing).unwrap();
    let paths: Vec<&str> = planned.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ALL_GENERATED[2..]);
    assert_eq!(plan(&written(&existing, &planned)), Ok(vec![]));
}

#[test]
fn sa_pub_is_derived_from_an_existing_sa_key() {
    let mut existing = ec_ca();
    let (_, sa_key) = new_ca("irrelevant");
    existing.insert(SA_KEY.to_string(), sa_key.clone().into_bytes());
    let planned = plan(&existing).unwrap();
    assert!(!planned.iter().any(|f| f.path == SA_KEY));
    let sa_pub = planned
        .iter()
        .find(|f| f.path == SA_PUB)
        .expect("sa.pub planned");
    let key = inspect::private_key(SA_KEY, sa_key.as_bytes()).unwrap();
    assert_eq!(
        inspect::public_key_bits(SA_PUB, &sa_pub.contents).unwrap(),
        rcgen::PublicKeyData::der_bytes(&key.pair)
    );
    assert_eq!(plan(&written(&existing, &planned)), Ok(vec![]));
}

// ---- every error, exactly ----

#[test]
fn the_cluster_ca_is_required() {
    assert_eq!(
        plan(&ExistingFiles::new()),
        Err(PkiError::CaMissing {
            path: CA_CRT.to_string()
        })
    );
    let only_cert = files(&[(CA_CRT, &fixture("ec-ca.crt"))]);
    assert_eq!(
        plan(&only_cert),
        Err(PkiError::CaMissing {
            path: CA_KEY.to_string()
        })
    );
    let only_key = files(&[(CA_KEY, &fixture("ec-ca.sec1.key"))]);
    assert_eq!(
        plan(&only_key),
        Err(PkiError::CaMissing {
            path: CA_CRT.to_string()
        })
    );
}

#[test]
fn unparsable_files_are_named_with_what_was_expected() {
    let cases: [(&str, &[u8], Content); 5] = [
        (CA_CRT, b"not a certificate", Content::Certificate),
        (
            CA_CRT,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            Content::Certificate,
        ),
        (
            CA_KEY,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            Content::PrivateKey,
        ),
        (SA_PUB, b"garbage", Content::PublicKey),
        (APISERVER_KEY, b"", Content::PrivateKey),
    ];
    for (path, bytes, expected) in cases {
        let mut existing = ec_ca();
        if path == SA_PUB {
            existing.insert(SA_KEY.to_string(), fixture("ec-ca.sec1.key"));
        }
        if path == APISERVER_KEY {
            let (crt, _) = leaf(
                (&fixture("ec-ca.crt"), &fixture("ec-ca.sec1.key")),
                "x",
                Usage::Server,
                &[],
                &[],
            );
            existing.insert(APISERVER_CRT.to_string(), crt);
        }
        existing.insert(path.to_string(), bytes.to_vec());
        match plan(&existing) {
            Err(PkiError::Unparsable {
                path: p,
                expected: e,
                ..
            }) => assert_eq!((p.as_str(), e), (path, expected)),
            other => panic!("{path}: {other:?}"),
        }
    }
    // A CA certificate given where the key should be.
    let existing = files(&[
        (CA_CRT, &fixture("ec-ca.crt")),
        (CA_KEY, &fixture("ec-ca.crt")),
    ]);
    assert!(matches!(
        plan(&existing),
        Err(PkiError::Unparsable { path, expected: Content::PrivateKey, .. }) if path == CA_KEY
    ));
}

#[test]
fn a_ca_key_of_another_ca_is_a_mismatch() {
    let existing = files(&[
        (CA_CRT, &fixture("ec-ca.crt")),
        (CA_KEY, &fixture("rsa-ca.key")),
    ]);
    assert_eq!(
        plan(&existing),
        Err(PkiError::KeyMismatch {
            key: CA_KEY.to_string(),
            cert: CA_CRT.to_string()
        })
    );
}

#[test]
fn a_leaf_given_as_the_ca_is_not_a_ca() {
    let (crt, key) = leaf(
        (&fixture("ec-ca.crt"), &fixture("ec-ca.sec1.key")),
        "kubernetes",
        Usage::Client,
        &[],
        &[],
    );
    let existing = files(&[(CA_CRT, &crt), (CA_KEY, &key)]);
    assert_eq!(
        plan(&existing),
        Err(PkiError::NotACa {
            path: CA_CRT.to_string()
        })
    );
}

#[test]
fn an_expired_or_future_ca_is_rejected_with_the_times() {
    let (_, not_after) = cert_validity(&fixture("ec-ca.crt")).unwrap();
    let (not_before, _) = cert_validity(&fixture("ec-ca.crt")).unwrap();
    let mut late = spec();
    late.now_unix = not_after + 1;
    assert_eq!(
        plan_control_plane(&ec_ca(), &late),
        Err(PkiError::Expired {
            path: CA_CRT.to_string(),
            not_after,
            now: not_after + 1
        })
    );
    let mut early = spec();
    early.now_unix = not_before - 1;
    assert_eq!(
        plan_control_plane(&ec_ca(), &early),
        Err(PkiError::NotYetValid {
            path: CA_CRT.to_string(),
            not_before,
            now: not_before - 1
        })
    );
}

#[test]
fn half_pairs_are_errors() {
    let all = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    for (present, missing) in [
        (APISERVER_CRT, APISERVER_KEY),
        (APISERVER_KEY, APISERVER_CRT),
        (APISERVER_KUBELET_CLIENT_CRT, APISERVER_KUBELET_CLIENT_KEY),
        (FRONT_PROXY_CA_KEY, FRONT_PROXY_CA_CRT),
        (FRONT_PROXY_CLIENT_CRT, FRONT_PROXY_CLIENT_KEY),
        (SA_PUB, SA_KEY),
    ] {
        let mut existing = all.clone();
        existing.remove(missing);
        assert_eq!(
            plan(&existing),
            Err(PkiError::HalfPair {
                present: present.to_string(),
                missing: missing.to_string()
            }),
            "{present}"
        );
    }
}

#[test]
fn a_front_proxy_client_without_its_ca_is_an_error() {
    let mut existing = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    existing.remove(FRONT_PROXY_CA_CRT);
    existing.remove(FRONT_PROXY_CA_KEY);
    assert_eq!(
        plan(&existing),
        Err(PkiError::IssuerMissing {
            path: FRONT_PROXY_CLIENT_CRT.to_string(),
            issuer: FRONT_PROXY_CA_CRT.to_string()
        })
    );
}

#[test]
fn certificates_of_another_ca_are_not_signed_by_it() {
    let (other_crt, other_key) = new_ca("kubernetes");
    let (crt, key) = leaf(
        (other_crt.as_bytes(), other_key.as_bytes()),
        "kube-apiserver",
        Usage::Server,
        &["masters.prod.k8s"],
        &["10.96.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
    );
    let mut existing = ec_ca();
    existing.insert(APISERVER_CRT.to_string(), crt);
    existing.insert(APISERVER_KEY.to_string(), key);
    match plan(&existing) {
        Err(PkiError::NotSignedBy { path, ca, reason }) => {
            assert_eq!((path.as_str(), ca.as_str()), (APISERVER_CRT, CA_CRT));
            assert!(reason.contains("key identifier"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // front-proxy-client signed by the cluster CA instead of front-proxy-ca: the names differ.
    let mut existing = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    let (crt, key) = leaf(
        (&fixture("ec-ca.crt"), &fixture("ec-ca.sec1.key")),
        "front-proxy-client",
        Usage::Client,
        &[],
        &[],
    );
    existing.insert(FRONT_PROXY_CLIENT_CRT.to_string(), crt);
    existing.insert(FRONT_PROXY_CLIENT_KEY.to_string(), key);
    match plan(&existing) {
        Err(PkiError::NotSignedBy { path, ca, reason }) => {
            assert_eq!(
                (path.as_str(), ca.as_str()),
                (FRONT_PROXY_CLIENT_CRT, FRONT_PROXY_CA_CRT)
            );
            assert!(reason.contains("issuer"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_forged_signature_is_caught() {
    // Same name and key identifier as the CA (copied from a real leaf), but the signature bytes flipped.
    let mut existing = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    let mut der = cert_of(&existing, APISERVER_CRT);
    let last = der.len() - 1;
    der[last] ^= 0x01;
    existing.insert(
        APISERVER_CRT.to_string(),
        inspect::pem_encode("CERTIFICATE", &der).into_bytes(),
    );
    match plan(&existing) {
        Err(PkiError::NotSignedBy { path, reason, .. }) => {
            assert_eq!(path, APISERVER_CRT);
            assert!(reason.contains("signature"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_expired_leaf_is_named() {
    let all = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    let mut later = spec();
    later.now_unix = NOW + 366 * DAY;
    assert_eq!(
        plan_control_plane(&all, &later),
        Err(PkiError::Expired {
            path: APISERVER_CRT.to_string(),
            not_after: NOW + 365 * DAY,
            now: NOW + 366 * DAY
        })
    );
}

#[test]
fn an_apiserver_certificate_must_cover_the_endpoint_the_service_ip_and_loopback() {
    let (crt, key) = leaf(
        (&fixture("ec-ca.crt"), &fixture("ec-ca.sec1.key")),
        "kube-apiserver",
        Usage::Server,
        &["master-1", "masters.other.k8s"],
        &["10.0.0.5".parse().unwrap()],
    );
    let mut existing = ec_ca();
    existing.insert(APISERVER_CRT.to_string(), crt);
    existing.insert(APISERVER_KEY.to_string(), key);
    let err = plan(&existing).unwrap_err();
    assert_eq!(
        err,
        PkiError::MissingSans {
            path: APISERVER_CRT.to_string(),
            missing: vec![
                "masters.prod.k8s".to_string(),
                "10.96.0.1".to_string(),
                "127.0.0.1".to_string()
            ]
        }
    );
    assert!(
        err.to_string().starts_with(
            "etc/kubernetes/pki/apiserver.crt does not cover masters.prod.k8s, 10.96.0.1, 127.0.0.1 — hint: \
             reissue it"
        ),
        "{err}"
    );
}

#[test]
fn a_client_certificate_as_the_apiserver_certificate_has_the_wrong_usage() {
    let (crt, key) = leaf(
        (&fixture("ec-ca.crt"), &fixture("ec-ca.sec1.key")),
        "kube-apiserver",
        Usage::Client,
        &["masters.prod.k8s"],
        &["10.96.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
    );
    let mut existing = ec_ca();
    existing.insert(APISERVER_CRT.to_string(), crt);
    existing.insert(APISERVER_KEY.to_string(), key);
    assert_eq!(
        plan(&existing),
        Err(PkiError::WrongUsage {
            path: APISERVER_CRT.to_string(),
            needed: "serverAuth"
        })
    );
}

#[test]
fn swapped_keys_are_mismatches() {
    let mut existing = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    let other = existing[APISERVER_KUBELET_CLIENT_KEY].clone();
    existing.insert(APISERVER_KEY.to_string(), other);
    assert_eq!(
        plan(&existing),
        Err(PkiError::KeyMismatch {
            key: APISERVER_KEY.to_string(),
            cert: APISERVER_CRT.to_string()
        })
    );

    let mut existing = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    let (_, other_key) = new_ca("x");
    existing.insert(SA_KEY.to_string(), other_key.into_bytes());
    assert_eq!(
        plan(&existing),
        Err(PkiError::KeyMismatch {
            key: SA_KEY.to_string(),
            cert: SA_PUB.to_string()
        })
    );
}

/// The files after a full plan with `path` replaced by `contents`.
fn with_kubeconfig(path: &str, contents: Vec<u8>) -> ExistingFiles {
    let mut existing = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    existing.insert(path.to_string(), contents);
    existing
}

fn admin_with(edit: impl FnOnce(&mut kubeconfig::Kubeconfig)) -> Vec<u8> {
    let all = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    let mut config = kubeconfig::parse(std::str::from_utf8(&all[ADMIN_CONF]).unwrap()).unwrap();
    edit(&mut config);
    kubeconfig::render(&config).into_bytes()
}

#[test]
fn broken_kubeconfigs_are_errors_naming_the_file() {
    assert_eq!(
        plan(&with_kubeconfig(ADMIN_CONF, b"kind: Pod\n".to_vec())),
        Err(PkiError::Kubeconfig {
            path: ADMIN_CONF.to_string(),
            problem: KubeconfigError::Syntax {
                reason: "kind is not Config".to_string()
            }
        })
    );
    assert!(matches!(
        plan(&with_kubeconfig(ADMIN_CONF, vec![0xff, 0xfe])),
        Err(PkiError::Unparsable { path, expected: Content::Kubeconfig, .. }) if path == ADMIN_CONF
    ));
    let no_context = admin_with(|c| c.current_context = "elsewhere".to_string());
    assert_eq!(
        plan(&with_kubeconfig(ADMIN_CONF, no_context)),
        Err(PkiError::Kubeconfig {
            path: ADMIN_CONF.to_string(),
            problem: KubeconfigError::ContextNotFound {
                name: "elsewhere".to_string()
            }
        })
    );
}

#[test]
fn a_kubeconfig_with_a_token_has_no_client_certificate() {
    let token = admin_with(|c| {
        c.users[0].user.client_certificate_data = None;
        c.users[0].user.client_key_data = None;
        c.users[0].user.token = Some("abcdef.0123456789abcdef".to_string());
    });
    assert_eq!(
        plan(&with_kubeconfig(ADMIN_CONF, token)),
        Err(PkiError::NoClientCertificate {
            path: ADMIN_CONF.to_string()
        })
    );
}

#[test]
fn a_kubeconfig_for_another_ca_or_user_is_an_error() {
    let (other_crt, other_key) = new_ca("kubernetes");
    let other_ca = admin_with(|c| {
        c.clusters[0].cluster.certificate_authority_data = Some(other_crt.clone().into_bytes())
    });
    assert_eq!(
        plan(&with_kubeconfig(ADMIN_CONF, other_ca)),
        Err(PkiError::WrongCaData {
            path: ADMIN_CONF.to_string()
        })
    );
    let no_ca = admin_with(|c| c.clusters[0].cluster.certificate_authority_data = None);
    assert_eq!(
        plan(&with_kubeconfig(ADMIN_CONF, no_ca)),
        Err(PkiError::WrongCaData {
            path: ADMIN_CONF.to_string()
        })
    );

    // The client certificate issued by another CA.
    let (crt, key) = leaf(
        (other_crt.as_bytes(), other_key.as_bytes()),
        "kubernetes-admin",
        Usage::Client,
        &[],
        &[],
    );
    let foreign = admin_with(|c| {
        c.users[0].user.client_certificate_data = Some(crt);
        c.users[0].user.client_key_data = Some(key);
    });
    assert!(matches!(
        plan(&with_kubeconfig(ADMIN_CONF, foreign)),
        Err(PkiError::NotSignedBy { path, ca, .. })
            if path == "etc/kubernetes/admin.conf (client-certificate-data)" && ca == CA_CRT
    ));

    // The key of another kubeconfig.
    let all = written(&ec_ca(), &plan(&ec_ca()).unwrap());
    let scheduler = kubeconfig::parse(std::str::from_utf8(&all[SCHEDULER_CONF]).unwrap()).unwrap();
    let scheduler_user = scheduler.current_user().unwrap().clone();
    let wrong_key =
        admin_with(|c| c.users[0].user.client_key_data = scheduler_user.client_key_data.clone());
    assert_eq!(
        plan(&with_kubeconfig(ADMIN_CONF, wrong_key)),
        Err(PkiError::KeyMismatch {
            key: "etc/kubernetes/admin.conf (client-key-data)".to_string(),
            cert: "etc/kubernetes/admin.conf (client-certificate-data)".to_string()
        })
    );

    // The scheduler's kubeconfig as admin.conf.
    assert_eq!(
        plan(&with_kubeconfig(ADMIN_CONF, all[SCHEDULER_CONF].clone())),
        Err(PkiError::WrongIdentity {
            path: ADMIN_CONF.to_string(),
            expected: "kubernetes-admin".to_string(),
            found: "system:kube-scheduler".to_string()
        })
    );
}

#[test]
fn a_ca_whose_subject_cannot_be_copied_is_unsupported() {
    // O=one, O=two, CN=kubernetes: rcgen keeps one value per attribute type, so issued certificates would
    // name another issuer.
    let existing = files(&[
        (CA_CRT, &fixture("odd-subject-ca.crt")),
        (CA_KEY, &fixture("odd-subject-ca.key")),
    ]);
    match plan(&existing) {
        Err(PkiError::UnsupportedCa { path, reason }) => {
            assert_eq!(path, CA_CRT);
            assert!(reason.contains("issuer"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_node_name_that_is_not_ascii_fails_to_generate() {
    let mut bad = spec();
    bad.node_name = "nöde".to_string();
    assert!(matches!(
        plan_control_plane(&ec_ca(), &bad),
        Err(PkiError::Generate { path, .. }) if path == APISERVER_CRT
    ));
}

// ---- helpers for the minion side ----

#[test]
fn ca_cert_hash_is_kubeadms_pin() {
    // `openssl x509 -pubkey -noout -in X | openssl pkey -pubin -outform der | sha256sum`
    assert_eq!(
        ca_cert_hash(&fixture("rsa-ca.crt")).unwrap(),
        "sha256:7d286ab5aa6d128a6489d1f1c6cef8df69397fb9854a5482c0f6ef447f2b56ca"
    );
    assert_eq!(
        ca_cert_hash(&fixture("ec-ca.crt")).unwrap(),
        "sha256:7b3e67ef6ddab15690c17dc2bb99edc0a657af9085d36b3f5ce281d8ea621ba3"
    );
    let der = inspect::first_cert_der("x", &fixture("ec-ca.crt")).unwrap();
    assert_eq!(ca_cert_hash(&der), ca_cert_hash(&fixture("ec-ca.crt")));
    assert_eq!(
        ca_cert_hash(&der).unwrap(),
        format!(
            "sha256:{}",
            hex::encode(crate::discovery::spki_sha256(&der).unwrap())
        ),
        "the probe's pin agrees"
    );
    assert!(matches!(
        ca_cert_hash(b"nope"),
        Err(PkiError::Unparsable {
            expected: Content::Certificate,
            ..
        })
    ));
}

#[test]
fn helpers_check_a_kubelet_style_combined_pem() {
    let ca = (fixture("rsa-ca.crt"), fixture("rsa-ca.key"));
    let (crt, key) = leaf(
        (&ca.0, &ca.1),
        "system:node:minion-1",
        Usage::Client,
        &[],
        &[],
    );
    let combined = [crt.clone(), key.clone()].concat();
    assert_eq!(check_combined_pem(&combined), Ok(()));
    assert_eq!(check_key_matches_cert(&crt, &key), Ok(()));
    assert_eq!(
        client_cert_identity(&combined).unwrap().0,
        "system:node:minion-1"
    );
    assert_eq!(verify_signed_by(&combined, &ca.0), Ok(()));
    assert_eq!(cert_validity(&combined), Ok((NOW - 300, NOW + 365 * DAY)));
    assert_eq!(check_cert_valid_at(&combined, NOW), Ok(()));
    assert!(matches!(
        check_cert_valid_at(&combined, NOW + 366 * DAY),
        Err(PkiError::Expired { .. })
    ));

    let (_, other_key) = leaf((&ca.0, &ca.1), "other", Usage::Client, &[], &[]);
    let mismatched = [crt.clone(), other_key].concat();
    let path = "/var/lib/kubelet/pki/kubelet-client-current.pem";
    let err = check_combined_pem(&mismatched)
        .map_err(|e| e.at(path))
        .unwrap_err();
    assert_eq!(
        err,
        PkiError::KeyMismatch {
            key: path.to_string(),
            cert: path.to_string()
        }
    );
    assert!(err.to_string().starts_with(&format!(
        "the private key in {path} does not belong to its certificate"
    )));
    assert!(matches!(
        check_combined_pem(&crt),
        Err(PkiError::Unparsable {
            expected: Content::PrivateKey,
            ..
        })
    ));

    let err = verify_signed_by(&crt, &fixture("ec-ca.crt"))
        .map_err(|e| e.at("/etc/kubernetes/kubelet.conf"))
        .unwrap_err();
    assert!(
        matches!(&err, PkiError::NotSignedBy { path, ca, .. } if path == "/etc/kubernetes/kubelet.conf" && ca == "CA certificate"),
        "{err:?}"
    );
}

#[test]
fn utc_times_read_as_dates() {
    use crate::utc::human as utc;
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(NOW), "2026-12-15 00:00:00 UTC");
    assert_eq!(utc(951_827_696), "2000-02-29 12:34:56 UTC");
    assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
}

#[test]
fn every_error_names_its_file_and_has_a_hint() {
    let errors = [
        PkiError::CaMissing {
            path: CA_CRT.into(),
        },
        PkiError::SharedFileMissing {
            path: ETCD_CA_KEY.into(),
        },
        PkiError::HalfPair {
            present: APISERVER_CRT.into(),
            missing: APISERVER_KEY.into(),
        },
        PkiError::IssuerMissing {
            path: FRONT_PROXY_CLIENT_CRT.into(),
            issuer: FRONT_PROXY_CA_CRT.into(),
        },
        PkiError::Unparsable {
            path: CA_KEY.into(),
            expected: Content::PrivateKey,
            reason: "r".into(),
        },
        PkiError::KeyMismatch {
            key: APISERVER_KEY.into(),
            cert: APISERVER_CRT.into(),
        },
        PkiError::NotSignedBy {
            path: APISERVER_CRT.into(),
            ca: CA_CRT.into(),
            reason: "r".into(),
        },
        PkiError::NotACa {
            path: CA_CRT.into(),
        },
        PkiError::Expired {
            path: CA_CRT.into(),
            not_after: NOW,
            now: NOW + 1,
        },
        PkiError::Expired {
            path: APISERVER_CRT.into(),
            not_after: NOW,
            now: NOW + 1,
        },
        PkiError::NotYetValid {
            path: CA_CRT.into(),
            not_before: NOW,
            now: NOW - 1,
        },
        PkiError::MissingSans {
            path: APISERVER_CRT.into(),
            missing: vec!["127.0.0.1".into()],
        },
        PkiError::MissingSans {
            path: ETCD_SERVER_CRT.into(),
            missing: vec!["10.0.0.5".into()],
        },
        PkiError::WrongIdentity {
            path: APISERVER_ETCD_CLIENT_CRT.into(),
            expected: "a".into(),
            found: "b".into(),
        },
        PkiError::WrongUsage {
            path: APISERVER_CRT.into(),
            needed: "serverAuth",
        },
        PkiError::Kubeconfig {
            path: ADMIN_CONF.into(),
            problem: KubeconfigError::NoCurrentContext { contexts: 2 },
        },
        PkiError::NoClientCertificate {
            path: ADMIN_CONF.into(),
        },
        PkiError::WrongCaData {
            path: ADMIN_CONF.into(),
        },
        PkiError::WrongIdentity {
            path: ADMIN_CONF.into(),
            expected: "a".into(),
            found: "b".into(),
        },
        PkiError::UnsupportedCa {
            path: CA_CRT.into(),
            reason: "r".into(),
        },
        PkiError::Generate {
            path: APISERVER_CRT.into(),
            reason: "r".into(),
        },
    ];
    for err in errors {
        let text = err.to_string();
        assert!(text.contains(err.path()), "{text}");
        assert!(text.contains(" — hint: "), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(!err.hint().is_empty());
    }
    assert_eq!(
        PkiError::KeyMismatch {
            key: "etc/kubernetes/admin.conf (client-key-data)".into(),
            cert: "etc/kubernetes/admin.conf (client-certificate-data)".into()
        }
        .hint(),
        "supply the key that belongs to the certificate; or remove etc/kubernetes/admin.conf to have it written anew"
    );
    assert_eq!(
        PkiError::Expired {
            path: APISERVER_CRT.into(),
            not_after: NOW,
            now: NOW + DAY
        }
        .to_string(),
        "etc/kubernetes/pki/apiserver.crt expired at 2026-12-15 00:00:00 UTC (now 2026-12-16 00:00:00 UTC) — hint: \
         renew it (`kubeadm certs renew`), or remove etc/kubernetes/pki/apiserver.crt and \
         etc/kubernetes/pki/apiserver.key to have both generated"
    );
}

#[test]
fn debug_output_and_errors_never_show_key_material() {
    let existing = rsa_ca();
    let planned = plan(&existing).unwrap();
    let all = written(&existing, &planned);

    // Every secret: each key file's PEM body lines, and the client-key-data of every kubeconfig.
    let mut secrets: Vec<String> = Vec::new();
    let mut secret_pems: Vec<Vec<u8>> = vec![fixture("rsa-ca.key")];
    for file in planned.iter().filter(|f| f.secret) {
        if file.path.ends_with(".conf") {
            let config = kubeconfig::parse(std::str::from_utf8(&file.contents).unwrap()).unwrap();
            let key = config
                .current_user()
                .unwrap()
                .client_key_data
                .clone()
                .unwrap();
            secrets.push(base64::engine::general_purpose::STANDARD.encode(&key)[..40].to_string());
            secret_pems.push(key);
        } else {
            secret_pems.push(file.contents.clone());
        }
    }
    for pem in &secret_pems {
        let text = String::from_utf8_lossy(pem);
        secrets.extend(
            text.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(|l| l.to_string()),
        );
        let key = inspect::private_key("k", pem).unwrap();
        let der = key.pair.serialized_der();
        secrets.push(
            format!("{:?}", &der[der.len() - 8..])
                .trim_matches(['[', ']'])
                .to_string(),
        );
        secrets.push(hex::encode(&der[der.len() - 8..]));
    }

    let mut debug = format!("{planned:?} {planned:#?} {:?}", spec());
    for file in &planned {
        debug.push_str(&format!("{file:?}"));
    }
    for path in [CA_KEY, APISERVER_KEY, SA_KEY] {
        debug.push_str(&format!(
            "{:?}",
            inspect::private_key(path, &all[path]).unwrap()
        ));
    }
    let signer = signer_of(&fixture("rsa-ca.crt"), &fixture("rsa-ca.key"));
    debug.push_str(&format!("{signer:?}"));
    let issued = signer
        .issue(
            "x",
            &Leaf {
                cn: "x",
                org: None,
                usage: Usage::Client,
                dns: &[],
                ips: &[],
            },
            NOW,
        )
        .unwrap();
    debug.push_str(&format!("{issued:?}"));
    secrets.extend(
        issued
            .key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(|l| l.to_string()),
    );
    for path in [ADMIN_CONF, SCHEDULER_CONF] {
        let config = kubeconfig::parse(std::str::from_utf8(&all[path]).unwrap()).unwrap();
        debug.push_str(&format!("{config:?} {config:#?}"));
    }

    // Errors from key files: a mismatch, an unparsable key (a key's body, truncated), a key where a
    // certificate belongs.
    let mut broken = all.clone();
    broken.insert(
        APISERVER_KEY.to_string(),
        all[APISERVER_KUBELET_CLIENT_KEY].clone(),
    );
    let mut truncated = all.clone();
    let key = &all[APISERVER_KEY];
    truncated.insert(APISERVER_KEY.to_string(), key[..key.len() / 2].to_vec());
    let mut key_as_cert = all.clone();
    key_as_cert.insert(APISERVER_CRT.to_string(), all[APISERVER_KEY].clone());
    for existing in [broken, truncated, key_as_cert] {
        let err = plan(&existing).unwrap_err();
        debug.push_str(&format!("{err} {err:?}"));
    }

    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    for secret in &secrets {
        assert!(secret.len() >= 8, "{secret}");
        assert!(!debug.contains(secret.as_str()), "{secret} in {debug}");
    }
    assert!(debug.contains("redacted"), "{debug}");
}

// An HA control plane (`control_plane_size` 3): the shared files supplied, etcd's leaves made here.

fn ha_spec() -> ControlPlaneSpec {
    ControlPlaneSpec {
        advertise_addrs: vec![
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            "fd00::5".parse().unwrap(),
        ],
        control_plane_size: 3,
        ..spec()
    }
}

fn ha_plan(existing: &ExistingFiles) -> Result<Vec<PlannedFile>, PkiError> {
    plan_control_plane(existing, &ha_spec())
}

/// The cluster CA (fixture), the front-proxy CA, the service-account pair and the etcd CA: what every master's
/// user data carries.
fn ha_shared() -> ExistingFiles {
    let mut all = ec_ca();
    let (fp_crt, fp_key) = new_ca("front-proxy-ca");
    let (etcd_crt, etcd_key) = new_ca("etcd-ca");
    let (sa_key, sa_pub) = issue::key_pair_pems(SA_KEY).unwrap();
    for (path, contents) in [
        (FRONT_PROXY_CA_CRT, fp_crt),
        (FRONT_PROXY_CA_KEY, fp_key),
        (SA_KEY, sa_key),
        (SA_PUB, sa_pub),
        (ETCD_CA_CRT, etcd_crt),
        (ETCD_CA_KEY, etcd_key),
    ] {
        all.insert(path.to_string(), contents.into_bytes());
    }
    all
}

fn etcd_ca_of(all: &ExistingFiles) -> (Vec<u8>, Vec<u8>) {
    (all[ETCD_CA_CRT].clone(), all[ETCD_CA_KEY].clone())
}

fn with(mut all: ExistingFiles, pairs: &[(&str, &[u8])]) -> ExistingFiles {
    for (path, contents) in pairs {
        all.insert(path.to_string(), contents.to_vec());
    }
    all
}

/// etcd/server.crt's (and peer.crt's) SANs for [`ha_spec`].
fn etcd_member_ips() -> Vec<IpAddr> {
    ["10.0.0.5", "fd00::5", "127.0.0.1", "::1"]
        .iter()
        .map(|ip| ip.parse().unwrap())
        .collect()
}

#[test]
fn control_plane_files_add_etcds_only_above_one_master() {
    assert_eq!(control_plane_files(1), CONTROL_PLANE_FILES);
    assert_eq!(control_plane_files(0), CONTROL_PLANE_FILES);
    let ha = control_plane_files(3);
    assert_eq!(ha[..16], CONTROL_PLANE_FILES);
    assert_eq!(ha[16..], ETCD_FILES);
    for shared in SHARED_FILES {
        assert!(ha.contains(&shared), "{shared}");
    }
}

#[test]
fn ha_plans_the_etcd_leaves_and_the_usual_files_and_nothing_again() {
    let existing = ha_shared();
    let planned = ha_plan(&existing).unwrap();
    let paths: Vec<&str> = planned.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            APISERVER_CRT,
            APISERVER_KEY,
            APISERVER_KUBELET_CLIENT_CRT,
            APISERVER_KUBELET_CLIENT_KEY,
            FRONT_PROXY_CLIENT_CRT,
            FRONT_PROXY_CLIENT_KEY,
            ADMIN_CONF,
            SUPER_ADMIN_CONF,
            CONTROLLER_MANAGER_CONF,
            SCHEDULER_CONF,
            ETCD_SERVER_CRT,
            ETCD_SERVER_KEY,
            ETCD_PEER_CRT,
            ETCD_PEER_KEY,
            ETCD_HEALTHCHECK_CLIENT_CRT,
            ETCD_HEALTHCHECK_CLIENT_KEY,
            APISERVER_ETCD_CLIENT_CRT,
            APISERVER_ETCD_CLIENT_KEY,
        ]
    );
    for file in &planned {
        let secret = file.path.ends_with(".key") || file.path.ends_with(".conf");
        assert_eq!(file.secret, secret, "{}", file.path);
        assert_eq!(
            file.mode,
            if secret { 0o600 } else { 0o644 },
            "{}",
            file.path
        );
    }
    let all = written(&existing, &planned);
    assert_eq!(ha_plan(&all), Ok(vec![]));
    // The shared front-proxy CA signs front-proxy-client: no second front-proxy CA was made.
    assert_eq!(
        inspect::issued_by(
            &cert_of(&all, FRONT_PROXY_CLIENT_CRT),
            &cert_of(&all, FRONT_PROXY_CA_CRT)
        ),
        Ok(())
    );
}

#[test]
fn ha_needs_every_shared_file_and_generates_none() {
    for path in SHARED_FILES {
        let mut existing = ha_shared();
        existing.remove(path);
        let err = ha_plan(&existing).unwrap_err();
        if path == CA_CRT || path == CA_KEY {
            assert_eq!(
                err,
                PkiError::CaMissing {
                    path: path.to_string()
                }
            );
            continue;
        }
        assert_eq!(
            err,
            PkiError::SharedFileMissing {
                path: path.to_string()
            }
        );
        let text = err.to_string();
        assert!(text.contains(path), "{text}");
        assert!(text.contains("user data"), "{text}");
        assert!(text.contains("CONTROL_PLANE_SIZE"), "{text}");
        assert!(text.contains("render-user-data.sh new-cluster"), "{text}");
    }
    assert_eq!(
        PkiError::SharedFileMissing {
            path: ETCD_CA_KEY.into()
        }
        .to_string(),
        "etc/kubernetes/pki/etcd/ca.key is missing; a highly available control plane does not generate it — hint: \
         every master of an HA control plane (CONTROL_PLANE_SIZE above 1 in the role file) needs the same \
         etc/kubernetes/pki/etcd/ca.key in its user data, like ca.crt and ca.key; \
         `packer/render-user-data.sh new-cluster` makes the shared files once per cluster"
    );
    // A single master still generates the front-proxy CA and sa.key and needs no etcd CA.
    let mut single = ha_shared();
    for path in [
        FRONT_PROXY_CA_CRT,
        FRONT_PROXY_CA_KEY,
        SA_KEY,
        SA_PUB,
        ETCD_CA_CRT,
        ETCD_CA_KEY,
    ] {
        single.remove(path);
    }
    assert_eq!(
        plan(&single).unwrap().len(),
        ALL_GENERATED.len(),
        "size 1 is today's plan"
    );
}

#[test]
fn ha_checks_the_shared_service_account_pair() {
    let (_, other_pub) = issue::key_pair_pems(SA_KEY).unwrap();
    let existing = with(ha_shared(), &[(SA_PUB, other_pub.as_bytes())]);
    assert_eq!(
        ha_plan(&existing),
        Err(PkiError::KeyMismatch {
            key: SA_KEY.to_string(),
            cert: SA_PUB.to_string()
        })
    );
}

#[test]
fn etcd_leaves_follow_kubeadms_profiles() {
    let existing = ha_shared();
    let all = written(&existing, &ha_plan(&existing).unwrap());
    let etcd_ca_der = cert_of(&all, ETCD_CA_CRT);
    let etcd_ca = inspect::parsed(&etcd_ca_der);
    for (cert_path, key_path, cn, server) in [
        (ETCD_SERVER_CRT, ETCD_SERVER_KEY, "master-1", true),
        (ETCD_PEER_CRT, ETCD_PEER_KEY, "master-1", true),
        (
            ETCD_HEALTHCHECK_CLIENT_CRT,
            ETCD_HEALTHCHECK_CLIENT_KEY,
            "kube-etcd-healthcheck-client",
            false,
        ),
        (
            APISERVER_ETCD_CLIENT_CRT,
            APISERVER_ETCD_CLIENT_KEY,
            "kube-apiserver-etcd-client",
            false,
        ),
    ] {
        let der = cert_of(&all, cert_path);
        let cert = inspect::parsed(&der);
        let key = inspect::private_key(key_path, &all[key_path]).unwrap();
        assert!(inspect::key_matches_cert_der(&key, &der), "{key_path}");
        assert_eq!(
            inspect::identity_of(&der),
            (cn.to_string(), vec![]),
            "{cert_path}"
        );
        assert_eq!(
            inspect::issued_by(&der, &etcd_ca_der),
            Ok(()),
            "{cert_path}"
        );
        assert!(
            inspect::issued_by(&der, &cert_of(&all, CA_CRT)).is_err(),
            "{cert_path}: not the cluster CA's"
        );
        assert_eq!(
            inspect::validity_of(&der),
            (NOW - 300, NOW + 365 * DAY),
            "{cert_path}"
        );
        assert_eq!(key_usage(&cert), ["digitalSignature"], "{cert_path}");
        assert_eq!(eku(&cert), (server, true), "{cert_path}");
        let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
        assert!(bc.critical && !bc.value.ca, "{cert_path}");
        assert_eq!(
            aki(&cert),
            ski(&etcd_ca),
            "{cert_path}: AKI is etcd/ca's SKI"
        );
        let (dns, ips) = inspect::sans(&der);
        if server {
            assert_eq!(dns, ["master-1", "localhost"], "{cert_path}");
            assert_eq!(ips, etcd_member_ips(), "{cert_path}");
        } else {
            assert_eq!((dns, ips), (vec![], vec![]), "{cert_path}");
        }
    }
}

#[test]
fn an_etcd_member_certificate_made_for_another_address_is_an_error() {
    let shared = ha_shared();
    let ca = etcd_ca_of(&shared);
    let other_ips: Vec<IpAddr> = ["10.0.0.9", "127.0.0.1", "::1"]
        .iter()
        .map(|ip| ip.parse().unwrap())
        .collect();
    for (crt, key) in [
        (ETCD_SERVER_CRT, ETCD_SERVER_KEY),
        (ETCD_PEER_CRT, ETCD_PEER_KEY),
    ] {
        let (cert, k) = leaf(
            (&ca.0, &ca.1),
            "master-2",
            Usage::ServerAndClient,
            &["master-2", "localhost"],
            &other_ips,
        );
        let err = ha_plan(&with(shared.clone(), &[(crt, &cert), (key, &k)])).unwrap_err();
        assert_eq!(
            err,
            PkiError::MissingSans {
                path: crt.to_string(),
                missing: vec!["10.0.0.5".to_string(), "fd00::5".to_string()],
            }
        );
        let text = err.to_string();
        assert!(text.contains("another node or address"), "{text}");
        assert!(text.contains(&format!("remove {crt} and {key}")), "{text}");

        // The same certificate made for this node's addresses is kept.
        let (cert, k) = leaf(
            (&ca.0, &ca.1),
            "master-1",
            Usage::ServerAndClient,
            &["master-1", "localhost"],
            &etcd_member_ips(),
        );
        let planned = ha_plan(&with(shared.clone(), &[(crt, &cert), (key, &k)])).unwrap();
        assert!(
            !planned.iter().any(|f| f.path == crt || f.path == key),
            "{crt} kept"
        );
        assert_eq!(planned.len(), 16);
    }
}

#[test]
fn an_etcd_member_certificate_needs_server_and_client_auth() {
    let shared = ha_shared();
    let ca = etcd_ca_of(&shared);
    let (cert, key) = leaf(
        (&ca.0, &ca.1),
        "master-1",
        Usage::Server,
        &["master-1"],
        &etcd_member_ips(),
    );
    assert_eq!(
        ha_plan(&with(
            shared,
            &[(ETCD_PEER_CRT, &cert), (ETCD_PEER_KEY, &key)]
        )),
        Err(PkiError::WrongUsage {
            path: ETCD_PEER_CRT.to_string(),
            needed: "serverAuth and clientAuth",
        })
    );
}

#[test]
fn etcd_leaves_signed_by_the_cluster_ca_are_not_signed_by_etcds() {
    let shared = ha_shared();
    let cluster = (fixture("ec-ca.crt"), fixture("ec-ca.sec1.key"));
    let (server, server_key) = leaf(
        (&cluster.0, &cluster.1),
        "master-1",
        Usage::ServerAndClient,
        &["master-1", "localhost"],
        &etcd_member_ips(),
    );
    let (client, client_key) = leaf(
        (&cluster.0, &cluster.1),
        "kube-apiserver-etcd-client",
        Usage::Client,
        &[],
        &[],
    );
    for (crt, key, cert_pem, key_pem) in [
        (ETCD_SERVER_CRT, ETCD_SERVER_KEY, &server, &server_key),
        (
            APISERVER_ETCD_CLIENT_CRT,
            APISERVER_ETCD_CLIENT_KEY,
            &client,
            &client_key,
        ),
    ] {
        match ha_plan(&with(shared.clone(), &[(crt, cert_pem), (key, key_pem)])) {
            Err(PkiError::NotSignedBy { path, ca, .. }) => {
                assert_eq!((path.as_str(), ca.as_str()), (crt, ETCD_CA_CRT));
            }
            other => panic!("{crt}: {other:?}"),
        }
    }
}

#[test]
fn an_etcd_client_certificate_for_another_name_is_an_error() {
    let shared = ha_shared();
    let ca = etcd_ca_of(&shared);
    let (cert, key) = leaf((&ca.0, &ca.1), "root", Usage::Client, &[], &[]);
    let err = ha_plan(&with(
        shared,
        &[
            (ETCD_HEALTHCHECK_CLIENT_CRT, &cert),
            (ETCD_HEALTHCHECK_CLIENT_KEY, &key),
        ],
    ))
    .unwrap_err();
    assert_eq!(
        err,
        PkiError::WrongIdentity {
            path: ETCD_HEALTHCHECK_CLIENT_CRT.to_string(),
            expected: "kube-etcd-healthcheck-client".to_string(),
            found: "root".to_string(),
        }
    );
    assert!(
        err.hint().contains(&format!(
            "remove {ETCD_HEALTHCHECK_CLIENT_CRT} and {ETCD_HEALTHCHECK_CLIENT_KEY}"
        )),
        "{err}"
    );
}

#[test]
fn etcd_half_pairs_and_swapped_keys_are_errors() {
    let shared = ha_shared();
    let all = written(&shared, &ha_plan(&shared).unwrap());
    let mut half = all.clone();
    half.remove(ETCD_PEER_KEY);
    assert_eq!(
        ha_plan(&half),
        Err(PkiError::HalfPair {
            present: ETCD_PEER_CRT.to_string(),
            missing: ETCD_PEER_KEY.to_string()
        })
    );
    let swapped = with(all.clone(), &[(ETCD_SERVER_KEY, &all[ETCD_PEER_KEY])]);
    assert_eq!(
        ha_plan(&swapped),
        Err(PkiError::KeyMismatch {
            key: ETCD_SERVER_KEY.to_string(),
            cert: ETCD_SERVER_CRT.to_string()
        })
    );
    let not_a_ca = with(
        all.clone(),
        &[
            (ETCD_CA_CRT, &all[ETCD_SERVER_CRT]),
            (ETCD_CA_KEY, &all[ETCD_SERVER_KEY]),
        ],
    );
    assert_eq!(
        ha_plan(&not_a_ca),
        Err(PkiError::NotACa {
            path: ETCD_CA_CRT.to_string()
        })
    );
    let mismatch = PkiError::KeyMismatch {
        key: ETCD_CA_KEY.to_string(),
        cert: ETCD_CA_CRT.to_string(),
    };
    assert!(
        mismatch.hint().contains("the etcd CA cannot be generated"),
        "{mismatch}"
    );
}

#[test]
fn a_single_master_ignores_etcd_files() {
    let garbage: &[u8] = b"not a certificate";
    let existing = with(
        ec_ca(),
        &[
            (ETCD_CA_CRT, garbage),
            (ETCD_SERVER_CRT, garbage),
            (ETCD_PEER_KEY, garbage),
            (APISERVER_ETCD_CLIENT_CRT, garbage),
        ],
    );
    let planned = plan(&existing).unwrap();
    let paths: Vec<&str> = planned.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ALL_GENERATED);
    let all = written(&existing, &planned);
    assert_eq!(plan(&all), Ok(vec![]));
}
