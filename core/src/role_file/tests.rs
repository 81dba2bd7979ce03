//! Tests of role file checking and discovery.

use super::*;

const MINION: &str = "/etc/sysconfig/kubernetes-minions";
const MASTER: &str = "/etc/sysconfig/kubernetes-masters";
const PIN: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn minion(text: &str) -> Result<RoleConfig, RoleFileError> {
    parse_role_file(Path::new(MINION), NodeRole::Minion, text)
}

fn master(text: &str) -> Result<RoleConfig, RoleFileError> {
    parse_role_file(Path::new(MASTER), NodeRole::Master, text)
}

fn ok(result: Result<RoleConfig, RoleFileError>) -> RoleConfig {
    match result {
        Ok(config) => config,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn minion_without_token() -> String {
    format!("CLUSTER_NAME=prod\nCA_CERT_HASH={PIN}\nWEAVE_CONSENSUS=3\n")
}

fn minimal_minion() -> String {
    format!(
        "CLUSTER_NAME=prod\nCA_CERT_HASH={PIN}\nBOOTSTRAP_TOKEN=abcdef.0123456789abcdef\nWEAVE_CONSENSUS=3\n"
    )
}

#[test]
fn minimal_minion_gets_the_defaults() {
    let config = ok(minion(&minimal_minion()));
    assert_eq!(config.role, NodeRole::Minion);
    assert_eq!(config.cluster_name.as_str(), "prod");
    assert_eq!(config.dns_domain.as_str(), "k8s");
    assert_eq!(
        config.master_endpoint.url(),
        "https://masters.prod.k8s:6443/readyz"
    );
    assert_eq!(config.minions_name.as_str(), "minions.prod.k8s");
    assert_eq!(config.weave_consensus.map(|n| n.get()), Some(3));
    assert_eq!(config.master_endpoint.probe, MasterProbe::Https);
    assert!(config.warnings.is_empty() && config.extra.is_empty());
}

#[test]
fn minimal_master_needs_only_the_cluster_name() {
    let config = ok(master("CLUSTER_NAME=cncfdemo\n"));
    assert_eq!(config.role, NodeRole::Master);
    assert_eq!(config.weave_consensus, None);
}

#[test]
fn the_seed_role_file_works_on_a_master_with_warnings() {
    let seed = "CLUSTER_NAME=cncfdemo\nCLOUD_PROVIDER=--cloud-provider=aws\n\
                KUBELET_HOSTNAME=--hostname-override=ip-172-20-0-12.us-west-2.compute.internal\n";
    let config = ok(master(seed));
    assert_eq!(
        config.cloud_provider.as_ref().map(|p| p.as_str()),
        Some("aws")
    );
    assert_eq!(
        config.kubelet_hostname.as_ref().map(|h| h.as_str()),
        Some("ip-172-20-0-12.us-west-2.compute.internal")
    );
    assert_eq!(
        config.warnings,
        vec![
            RoleWarning::SeedFlagForm {
                key: keys::CLOUD_PROVIDER,
                line: 2,
                flag: "--cloud-provider="
            },
            RoleWarning::CloudProviderNotExternal {
                line: 2,
                provider: "aws".into()
            },
            RoleWarning::SeedFlagForm {
                key: keys::KUBELET_HOSTNAME,
                line: 3,
                flag: "--hostname-override="
            },
            RoleWarning::NotForRole {
                key: keys::KUBELET_HOSTNAME,
                line: 3,
                role: NodeRole::Master
            },
        ]
    );
}

#[test]
fn the_seed_role_file_on_a_minion_says_what_is_missing() {
    let seed = "CLUSTER_NAME=cncfdemo\nCLOUD_PROVIDER=--cloud-provider=aws\n";
    assert_eq!(
        minion(seed),
        Err(RoleFileError::MissingKey {
            path: MINION.into(),
            key: keys::WEAVE_CONSENSUS
        })
    );
    assert_eq!(
        minion(&format!("{seed}WEAVE_CONSENSUS=2\n")),
        Err(RoleFileError::NoMasterTrust {
            path: MINION.into()
        })
    );
    // Plain HTTP (explicit) needs no CA.
    let config = ok(minion(&format!(
        "{seed}WEAVE_CONSENSUS=2\nMASTER_PROBE=http\n"
    )));
    assert_eq!(
        config.master_endpoint.url(),
        "http://masters.cncfdemo.k8s:8080/healthz"
    );
}

#[test]
fn every_key_set() {
    let text = format!(
        "# user data\nCLUSTER_NAME=prod\nDNS_DOMAIN=internal.example\nCLOUD_PROVIDER=external\n\
         KUBELET_HOSTNAME=node-1.internal.example\nBOOTSTRAP_TOKEN=abcdef.0123456789abcdef\nCA_CERT_HASH={PIN}\n\
         CA_CERT_FILE=/etc/kubernetes/pki/ca.crt\nMASTER_PROBE=https\nMASTER_PORT=443\nWEAVE_CONSENSUS=5\n"
    );
    let config = ok(minion(&text));
    assert_eq!(
        config.master_endpoint.url(),
        "https://masters.prod.internal.example:443/readyz"
    );
    assert_eq!(
        config.minions_name.as_str(),
        "minions.prod.internal.example"
    );
    assert_eq!(
        config.bootstrap_token.as_ref().map(|t| t.id()),
        Some("abcdef")
    );
    assert_eq!(
        config.ca_cert_file.as_deref(),
        Some(Path::new("/etc/kubernetes/pki/ca.crt"))
    );
    assert_eq!(
        config.master_trust().describe(),
        format!("CA_CERT_HASH {PIN} and CA_CERT_FILE /etc/kubernetes/pki/ca.crt")
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn the_error_message_names_file_line_value_and_hint() {
    let err = minion("# comment\n\nCLUSTER_NAME=Prod_1\n").err();
    assert_eq!(
        err,
        Some(RoleFileError::InvalidValue {
            path: MINION.into(),
            line: 3,
            key: keys::CLUSTER_NAME,
            value: "Prod_1".into(),
            problem: ValueProblem::LabelBadChar { found: '_' },
        })
    );
    assert_eq!(
        err.map(|e| e.to_string()).unwrap_or_default(),
        "CLUSTER_NAME \"Prod_1\" on /etc/sysconfig/kubernetes-minions:3 is not a DNS label (contains '_') \
         — hint: use lower-case letters, digits and '-'"
    );
}

#[test]
fn upper_case_cluster_name_is_rejected_with_the_lower_case_suggestion() {
    let err = minion("CLUSTER_NAME=Prod\n").err();
    assert_eq!(
        err.as_ref().map(|e| e.to_string()),
        Some(
            "CLUSTER_NAME \"Prod\" on /etc/sysconfig/kubernetes-minions:1 is not lower-case — hint: write it in \
             lower case: prod"
                .to_string()
        )
    );
}

#[test]
fn invalid_values_each_say_which() {
    let base = minimal_minion();
    let cases: &[(&str, &str, ValueProblem)] = &[
        ("DNS_DOMAIN", "k8s.", ValueProblem::EmptyLabel),
        (
            "DNS_DOMAIN",
            "K8S",
            ValueProblem::UpperCase {
                lower: "k8s".into(),
            },
        ),
        ("CLOUD_PROVIDER", "AWS", ValueProblem::NotCloudProvider),
        (
            "KUBELET_HOSTNAME",
            "Node_1",
            ValueProblem::LabelBadChar { found: '_' },
        ),
        ("CA_CERT_FILE", "pki/ca.crt", ValueProblem::NotAbsolutePath),
        ("MASTER_PROBE", "tcp", ValueProblem::NotMasterProbe),
        ("MASTER_PORT", "0", ValueProblem::NotPort),
        ("MASTER_PORT", "65536", ValueProblem::NotPort),
        ("MASTER_PORT", "+443", ValueProblem::NotPort),
        (
            "WEAVE_CONSENSUS",
            "0",
            ValueProblem::NotConsensusSize { max: 1000 },
        ),
        (
            "WEAVE_CONSENSUS",
            "1001",
            ValueProblem::NotConsensusSize { max: 1000 },
        ),
        (
            "WEAVE_CONSENSUS",
            "three",
            ValueProblem::NotConsensusSize { max: 1000 },
        ),
        (
            "WEAVE_CONSENSUS",
            "+3",
            ValueProblem::NotConsensusSize { max: 1000 },
        ),
    ];
    for (key, value, problem) in cases {
        // Replace the key if the base sets it, else append it.
        let mut text: String = base
            .lines()
            .filter(|l| !l.starts_with(&format!("{key}=")))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&format!("{key}={value}\n"));
        let line = text.lines().count();
        match minion(&text) {
            Err(RoleFileError::InvalidValue {
                key: k,
                value: v,
                problem: p,
                line: l,
                ..
            }) => {
                assert_eq!(
                    (k, v.as_str(), &p, l),
                    (*key, *value, problem, line),
                    "{key}={value}"
                );
            }
            other => panic!("{key}={value}: {other:?}"),
        }
    }
}

#[test]
fn a_bad_token_is_reported_without_its_value() {
    let text = format!(
        "{}BOOTSTRAP_TOKEN=abcdef.0123456789ABCDEF\n",
        minion_without_token()
    );
    let err = minion(&text).err();
    assert_eq!(
        err,
        Some(RoleFileError::InvalidValue {
            path: MINION.into(),
            line: 4,
            key: keys::BOOTSTRAP_TOKEN,
            value: REDACTED.into(),
            problem: ValueProblem::NotBootstrapToken,
        })
    );
    let shown = format!(
        "{} {:?}",
        err.as_ref().map(|e| e.to_string()).unwrap_or_default(),
        err
    );
    assert!(!shown.contains("0123456789"), "{shown}");
}

#[test]
fn the_token_never_shows_up_in_debug_serialize_or_role_output() {
    let text = format!(
        "{}BOOTSTRAP_TOKEN=abcdef.zyxwvutsrq987654\nJOIN_TOKEN=also-secret\n",
        minion_without_token()
    );
    let config = ok(minion(&text));
    let debug = format!("{config:?}");
    let json = serde_json::to_string(&config).unwrap_or_default();
    let lines = config.redacted_lines().join("\n");
    for shown in [&debug, &json, &lines] {
        assert!(!shown.contains("zyxwvutsrq987654"), "{shown}");
        assert!(!shown.contains("also-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
    assert!(json.contains("\"cluster_name\":\"prod\""), "{json}");
}

#[test]
fn redacted_lines_for_k8s_agent_role() {
    let text = format!(
        "{}BOOTSTRAP_TOKEN=abcdef.0123456789abcdef\nFLAVOUR=large\n",
        minion_without_token()
    );
    let config = ok(minion(&text));
    assert_eq!(
        config.redacted_lines(),
        vec![
            "# role: minion (from /etc/sysconfig/kubernetes-minions)".to_string(),
            "CLUSTER_NAME=prod".into(),
            "DNS_DOMAIN=k8s  # default".into(),
            "BOOTSTRAP_TOKEN=abcdef.<redacted>".into(),
            format!("CA_CERT_HASH={PIN}"),
            "MASTER_PROBE=https  # default".into(),
            "MASTER_PORT=6443  # default".into(),
            "WEAVE_CONSENSUS=3".into(),
            "# masters probed at https://masters.prod.k8s:6443/readyz".into(),
            "# weave peers from the A records of minions.prod.k8s".into(),
            "HOST_CHECKS=enforce  # default".into(),
            "# line 5: FLAVOUR=\"large\" (unknown key)".into(),
            "# warning: line 5: unknown key FLAVOUR is ignored by k8s-agent (units that read this file still see it)"
                .into(),
        ]
    );
}

#[test]
fn a_minion_needs_a_bootstrap_token_to_join_and_unit_flags_pass_silently() {
    let text = format!(
        "CLUSTER_NAME=prod\nCA_CERT_HASH={PIN}\nWEAVE_CONSENSUS=3\nKUBELET_EXTRA_ARGS=--v=2\n"
    );
    let err = minion(&text).expect_err("no token");
    assert_eq!(
        err,
        RoleFileError::MissingKey {
            path: MINION.into(),
            key: keys::BOOTSTRAP_TOKEN
        }
    );
    assert!(err.to_string().contains("kubeadm token create"), "{err}");
    // MASTER_PROBE=http joins no cluster by TLS bootstrap, so it needs no token.
    let config = ok(minion(&format!("{text}MASTER_PROBE=http\n")));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.extra.len(), 1);
}

#[test]
fn unknown_keys_are_kept_and_warned_about() {
    let config = ok(minion(&format!("{}EXTRA_ARGS=--v=2\n", minimal_minion())));
    assert_eq!(config.extra.len(), 1);
    assert_eq!(config.extra[0].key, "EXTRA_ARGS");
    assert_eq!(config.extra[0].value, "--v=2");
    assert_eq!(
        config.warnings,
        vec![RoleWarning::UnknownKey {
            key: "EXTRA_ARGS".into(),
            line: 5
        }]
    );
}

#[test]
fn duplicate_keys_are_an_error() {
    assert_eq!(
        minion("CLUSTER_NAME=a\nCLUSTER_NAME=b\n"),
        Err(RoleFileError::DuplicateKey {
            path: MINION.into(),
            key: "CLUSTER_NAME".into(),
            first_line: 1,
            line: 2
        })
    );
}

#[test]
fn missing_and_empty_cluster_name() {
    assert_eq!(
        master(""),
        Err(RoleFileError::MissingKey {
            path: MASTER.into(),
            key: keys::CLUSTER_NAME
        })
    );
    assert_eq!(
        master("# only a comment\n"),
        Err(RoleFileError::MissingKey {
            path: MASTER.into(),
            key: keys::CLUSTER_NAME
        })
    );
    assert!(matches!(
        master("CLUSTER_NAME=\n"),
        Err(RoleFileError::InvalidValue {
            problem: ValueProblem::Empty,
            line: 1,
            ..
        })
    ));
}

#[test]
fn empty_optional_values_count_as_unset() {
    let config = ok(minion(&format!(
        "{}DNS_DOMAIN=\nCLOUD_PROVIDER=\n",
        minimal_minion()
    )));
    assert_eq!(config.dns_domain.as_str(), "k8s");
    assert_eq!(config.cloud_provider, None);
}

#[test]
fn syntax_errors_carry_file_and_line() {
    let err = master("CLUSTER_NAME=a\nexport DNS_DOMAIN=k8s\n").err();
    assert_eq!(
        err,
        Some(RoleFileError::Syntax {
            path: MASTER.into(),
            line: 2,
            problem: SyntaxProblem::ExportPrefix {
                key: "DNS_DOMAIN".into()
            },
        })
    );
    assert_eq!(
        err.map(|e| e.to_string()).unwrap_or_default(),
        "/etc/sysconfig/kubernetes-masters:2: 'export DNS_DOMAIN' is shell syntax — hint: remove 'export': \
         systemd's EnvironmentFile syntax is plain DNS_DOMAIN=value"
    );
}

#[test]
fn quoted_values_are_unquoted_before_checking() {
    let config = ok(master("CLUSTER_NAME=\"prod\"\nDNS_DOMAIN='k8s'\n"));
    assert_eq!(
        (config.cluster_name.as_str(), config.dns_domain.as_str()),
        ("prod", "k8s")
    );
}

#[test]
fn a_trailing_comment_gets_a_specific_hint() {
    let err = master("CLUSTER_NAME=prod # the prod cluster\n").err();
    assert!(
        err.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("no trailing comments")
    );
}

#[test]
fn names_too_long_for_dns() {
    let domain = vec!["d".repeat(60); 4].join(".");
    let text = format!("CLUSTER_NAME={}\nDNS_DOMAIN={domain}\n", "c".repeat(10));
    assert_eq!(
        master(&text),
        Err(RoleFileError::EndpointNameTooLong {
            path: MASTER.into(),
            name_len: 8 + 10 + 1 + domain.len()
        })
    );
}

#[test]
fn minion_only_keys_on_a_master_are_checked_then_ignored() {
    let config = ok(master(
        "CLUSTER_NAME=a\nWEAVE_CONSENSUS=3\nMASTER_PROBE=http\n",
    ));
    assert_eq!(
        config.warnings,
        vec![
            RoleWarning::NotForRole {
                key: keys::WEAVE_CONSENSUS,
                line: 2,
                role: NodeRole::Master
            },
            RoleWarning::NotForRole {
                key: keys::MASTER_PROBE,
                line: 3,
                role: NodeRole::Master
            },
        ]
    );
    assert!(master("CLUSTER_NAME=a\nWEAVE_CONSENSUS=x\n").is_err());
}

#[test]
fn not_utf8_and_too_large() {
    let path = Path::new(MASTER);
    assert_eq!(
        decode_role_file(path, b"CLUSTER_NAME=a\nX=\xff\n"),
        Err(RoleFileError::Syntax {
            path: path.into(),
            line: 2,
            problem: SyntaxProblem::NotUtf8
        })
    );
    let big = vec![b'#'; MAX_ROLE_FILE_BYTES + 1];
    assert!(matches!(
        decode_role_file(path, &big),
        Err(RoleFileError::Syntax {
            problem: SyntaxProblem::TooLarge { .. },
            ..
        })
    ));
}

#[test]
fn host_checks_mode_is_enforce_by_default_and_checked() {
    assert_eq!(
        ok(minion(&minimal_minion())).host_checks,
        HostCheckMode::Enforce
    );
    let warn = ok(minion(&format!("{}HOST_CHECKS=warn\n", minimal_minion())));
    assert_eq!(warn.host_checks, HostCheckMode::Warn);
    let err = minion(&format!("{}HOST_CHECKS=loose\n", minimal_minion())).expect_err("bad mode");
    let shown = err.to_string();
    assert!(
        shown.contains("HOST_CHECKS") && shown.contains("enforce"),
        "{shown}"
    );
}

#[test]
fn weave_peers_record_names_the_record_the_weave_decision_reads() {
    let config = ok(minion(&format!(
        "{}WEAVE_PEERS_RECORD=weave-core\n",
        minimal_minion()
    )));
    assert_eq!(config.minions_name.as_str(), "weave-core.prod.k8s");
    assert!(
        config
            .redacted_lines()
            .iter()
            .any(|l| l.contains("weave-core.prod.k8s"))
    );
    let err = minion(&format!(
        "{}WEAVE_PEERS_RECORD=Weave_Core\n",
        minimal_minion()
    ))
    .expect_err("not a DNS label");
    let text = err.to_string();
    assert!(text.contains("WEAVE_PEERS_RECORD"), "{text}");
    assert!(text.contains(":5"), "names the line: {text}");
}

#[test]
fn a_role_file_edited_or_removed_after_it_was_read_is_reported() {
    let text = "CLUSTER_NAME=prod\nBOOTSTRAP_TOKEN=abcdef.0123456789abcdef\n";
    let config = ok(parse_role_file(Path::new(MASTER), NodeRole::Master, text));
    assert_eq!(config.content_sha256, content_sha256(text.as_bytes()));
    assert_eq!(drift(&config.content_sha256, Some(text.as_bytes())), None);
    let edited = drift(&config.content_sha256, Some(b"CLUSTER_NAME=other\n"));
    assert!(
        matches!(edited, Some(RoleFileDrift::Changed { .. })),
        "{edited:?}"
    );
    let removed = drift(&config.content_sha256, None).expect("removed");
    let sentence = removed.describe(Path::new(MASTER));
    assert!(
        sentence.contains("was removed after the agent read it") && sentence.contains("reboot"),
        "{sentence}"
    );
    assert_eq!(
        drift("", None),
        None,
        "a state without a recorded hash says nothing"
    );
}

#[test]
fn advertise_address_is_a_masters_reachable_address() {
    let config = ok(master("CLUSTER_NAME=a\nADVERTISE_ADDRESS=10.79.0.10\n"));
    assert_eq!(
        config.advertise_address,
        Some("10.79.0.10".parse().expect("ip"))
    );
    for bad in [
        "127.0.0.1",
        "10.79.0.300",
        "masters.a.k8s",
        "169.254.0.1",
        "::1",
    ] {
        match master(&format!("CLUSTER_NAME=a\nADVERTISE_ADDRESS={bad}\n")) {
            Err(RoleFileError::InvalidValue {
                key, line, problem, ..
            }) => {
                assert_eq!(
                    (key, line, problem),
                    (
                        keys::ADVERTISE_ADDRESS,
                        2,
                        ValueProblem::NotAdvertiseAddress
                    ),
                    "{bad}"
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    // A minion's is kubelet's --node-ip.
    let minion_config = ok(minion(&format!(
        "{}ADVERTISE_ADDRESS=10.0.0.5\n",
        minimal_minion()
    )));
    assert_eq!(
        minion_config.advertise_address,
        Some("10.0.0.5".parse().expect("ip"))
    );
    assert!(
        minion_config.warnings.is_empty(),
        "{:?}",
        minion_config.warnings
    );
}
