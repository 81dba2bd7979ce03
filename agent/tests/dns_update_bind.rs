//! Self-registration ([`k8s_agent::edge::dns_update`]) against a real BIND 9 (Debian's `named`, run in the
//! foreground on 127.0.0.1 and a free port, one per test) with TSIG keys made by BIND's own `tsig-keygen`; what
//! the zone holds is read back with `dig` (an independent client), never with the agent's resolver.
//!
//! - an empty zone: the node adds itself to `minions.prod.k8s` and `weave-core.prod.k8s` → both answer its address;
//!   adding again is a no-op (still one record); another node's record is left alone by this node's delete;
//!   `deregister` removes exactly this node's address;
//! - a wrong secret → `Refused { NOTAUTH, BADSIG }`; a key the server does not know → `NOTAUTH` + `BADKEY`; a
//!   key the server knows but its policy does not allow → `REFUSED`; nothing is added in any of these;
//! - the key file missing, readable by others, or another key's clause → `KeyFile` with the reason, nothing sent
//!   (BIND's query log shows no UPDATE);
//! - no server listening → `Unreachable` within the exchange timeout.
//!
//! Without BIND the tests are skipped with a message, unless `CI` is set: then they fail (`.ci/run` installs
//! bind9 and bind9-dnsutils).

use k8s_agent::edge::dns_update::{self, EXCHANGE_TIMEOUT};
use k8s_agent::plan::{DnsRegistration, DnsUpdateOutcome};
use k8s_agent::pure::dns_update::{DnsUpdateConfig, TsigAlgorithmName};
use k8s_agent::role_file::DnsName;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const NAMED: &str = "/usr/sbin/named";
const KEY_FILE: &str = "/etc/k8s-agent/dns-update.key";

/// BIND's programs; `None` (after saying so) when missing outside CI; a failure when missing in CI.
fn require_bind(test: &str) -> bool {
    let have = Path::new(NAMED).is_file() && which("tsig-keygen") && which("dig");
    if have {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: BIND is not installed, and CI is set: .ci/run must install bind9, bind9-utils, bind9-dnsutils"
        );
    }
    eprintln!(
        "SKIPPED {test}: BIND is not installed (apt-get install bind9 bind9-utils bind9-dnsutils)"
    );
    false
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn tsig_keygen(name: &str) -> String {
    let out = Command::new("tsig-keygen")
        .args(["-a", "hmac-sha256", name])
        .output()
        .expect("tsig-keygen runs");
    assert!(
        out.status.success(),
        "tsig-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A BIND primary for `k8s` on 127.0.0.1:port: `k8s-agent` may update A records below `k8s`, `reader` is known
/// but granted nothing. Killed on drop.
struct Bind {
    child: Child,
    dir: TempDir,
    port: u16,
    /// The key clauses as `tsig-keygen` printed them.
    agent_key: String,
    reader_key: String,
}

impl Bind {
    fn start() -> Bind {
        let mut last = String::new();
        for _ in 0..5 {
            match Bind::try_start(free_port()) {
                Ok(bind) => return bind,
                Err(e) => last = e,
            }
        }
        panic!("named did not start (5 ports tried): {last}");
    }

    fn try_start(port: u16) -> Result<Bind, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path().display().to_string();
        let agent_key = tsig_keygen("k8s-agent");
        let reader_key = tsig_keygen("reader");
        std::fs::write(
            dir.path().join("keys.conf"),
            format!("{agent_key}{reader_key}"),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            dir.path().join("k8s.zone"),
            "$TTL 30\n@ IN SOA ns.k8s. hostmaster.k8s. 1 60 60 3600 30\n@ IN NS ns.k8s.\nns IN A 127.0.0.1\n",
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            dir.path().join("named.conf"),
            format!(
                "options {{ directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n\
                 pid-file \"{d}/named.pid\"; recursion no; dnssec-validation no; querylog yes; }};\n\
                 include \"{d}/keys.conf\";\ncontrols {{ }};\n\
                 zone \"k8s\" {{ type primary; file \"{d}/k8s.zone\";\n\
                 update-policy {{ grant k8s-agent subdomain k8s. A; }}; }};\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("named.log")).map_err(|e| e.to_string())?;
        let child = Command::new(NAMED)
            .args(["-g", "-c"])
            .arg(dir.path().join("named.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn named: {e}"))?;
        let mut bind = Bind {
            child,
            dir,
            port,
            agent_key,
            reader_key,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if bind.log().contains("running") && bind.dig("ns.k8s") == vec!["127.0.0.1".to_string()]
            {
                return Ok(bind);
            }
            if let Ok(Some(status)) = bind.child.try_wait() {
                return Err(format!("named exited ({status}): {}", bind.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("named did not answer in 15 s: {}", bind.log()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    fn server(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The A records of `name`, sorted, as dig sees them.
    fn dig(&self, name: &str) -> Vec<String> {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+short",
                "+tries=1",
                "+time=2",
                name,
                "A",
            ])
            .output()
            .expect("dig runs");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with(';') && !l.is_empty())
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    /// How many UPDATE requests BIND logged (its `update` category: each names the zone).
    fn updates_seen(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("updating zone 'k8s/IN'") || l.contains("update 'k8s/IN'"))
            .count()
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("udp bind");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

fn name(s: &str) -> DnsName {
    DnsName::parse(s).expect("name")
}

fn config(server: SocketAddr, key_name: &str, records: &[&str]) -> DnsUpdateConfig {
    DnsUpdateConfig {
        server,
        zone: name("k8s"),
        key_name: name(key_name),
        algorithm: TsigAlgorithmName::HmacSha256,
        key_file: PathBuf::from(KEY_FILE),
        records: records.iter().map(|r| name(r)).collect(),
        ttl_secs: 30,
    }
}

/// A node root holding `key` at [`KEY_FILE`] with `mode`.
fn root_with_key(key: &str, mode: u32) -> TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join(KEY_FILE.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, key).expect("write key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    root
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Another clause with the same name and a secret of the same length that is not the server's.
fn wrong_secret(clause: &str) -> String {
    let start = clause.find("secret \"").expect("secret") + "secret \"".len();
    let end = start + clause[start..].find('"').expect("closing quote");
    let mut secret: Vec<char> = clause[start..end].chars().collect();
    secret[0] = if secret[0] == 'A' { 'B' } else { 'A' };
    format!(
        "{}{}{}",
        &clause[..start],
        secret.into_iter().collect::<String>(),
        &clause[end..]
    )
}

#[test]
fn a_node_registers_in_an_empty_zone_and_deregisters_exactly_itself() {
    if !require_bind("a_node_registers_in_an_empty_zone_and_deregisters_exactly_itself") {
        return;
    }
    let bind = Bind::start();
    let rt = runtime();
    let root = root_with_key(&bind.agent_key, 0o600);
    let update = config(
        bind.server(),
        "k8s-agent",
        &["minions.prod.k8s", "weave-core.prod.k8s"],
    );
    assert!(
        bind.dig("minions.prod.k8s").is_empty(),
        "the zone starts empty"
    );

    let outcome = rt.block_on(dns_update::register(root.path(), &update));
    let DnsUpdateOutcome::Registered { address, records } = outcome else {
        panic!("expected Registered, got {outcome:?}\n{}", bind.log())
    };
    // Toward 127.0.0.1 the kernel's source address is 127.0.0.1: that is what the node is known by there.
    assert_eq!(address.to_string(), "127.0.0.1");
    assert_eq!(records, ["minions.prod.k8s", "weave-core.prod.k8s"]);
    assert_eq!(bind.dig("minions.prod.k8s"), ["127.0.0.1"]);
    assert_eq!(bind.dig("weave-core.prod.k8s"), ["127.0.0.1"]);
    assert!(
        bind.updates_seen() >= 2,
        "BIND logs each update it applies: {}",
        bind.log()
    );

    // Again (a restarted agent re-asserting): still exactly one record.
    let again = rt.block_on(dns_update::register(root.path(), &update));
    assert!(
        matches!(again, DnsUpdateOutcome::Registered { .. }),
        "{again:?}"
    );
    assert_eq!(bind.dig("minions.prod.k8s"), ["127.0.0.1"]);

    // Another node's record (added with nsupdate, BIND's own client) survives this node's delete.
    let key_path = bind.dir.path().join("agent.key");
    std::fs::write(&key_path, &bind.agent_key).expect("key");
    let mut nsupdate = Command::new("nsupdate")
        .arg("-k")
        .arg(&key_path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("nsupdate");
    use std::io::Write as _;
    nsupdate
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            format!(
                "server 127.0.0.1 {}\nupdate add minions.prod.k8s 30 A 10.9.9.9\nsend\n",
                bind.port
            )
            .as_bytes(),
        )
        .expect("write");
    assert!(nsupdate.wait().expect("nsupdate").success());
    assert_eq!(bind.dig("minions.prod.k8s"), ["10.9.9.9", "127.0.0.1"]);

    let registration = DnsRegistration {
        address,
        records,
        at: 0,
    };
    let removed = rt
        .block_on(dns_update::deregister(root.path(), &update, &registration))
        .expect("deregister");
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert_eq!(
        bind.dig("minions.prod.k8s"),
        ["10.9.9.9"],
        "only this node's address is gone"
    );
    assert!(bind.dig("weave-core.prod.k8s").is_empty());
}

#[test]
fn refusals_come_back_with_the_servers_reason_and_add_nothing() {
    if !require_bind("refusals_come_back_with_the_servers_reason_and_add_nothing") {
        return;
    }
    let bind = Bind::start();
    let rt = runtime();
    let records = ["minions.prod.k8s"];

    let wrong = root_with_key(&wrong_secret(&bind.agent_key), 0o600);
    let outcome = rt.block_on(dns_update::register(
        wrong.path(),
        &config(bind.server(), "k8s-agent", &records),
    ));
    assert_eq!(
        outcome,
        DnsUpdateOutcome::Refused {
            rcode: "NOTAUTH".into(),
            tsig_error: Some("BADSIG".into())
        },
        "{}",
        bind.log()
    );

    let unknown = root_with_key(&tsig_keygen("stranger"), 0o600);
    let outcome = rt.block_on(dns_update::register(
        unknown.path(),
        &config(bind.server(), "stranger", &records),
    ));
    assert_eq!(
        outcome,
        DnsUpdateOutcome::Refused {
            rcode: "NOTAUTH".into(),
            tsig_error: Some("BADKEY".into())
        }
    );

    let reader = root_with_key(&bind.reader_key, 0o600);
    let outcome = rt.block_on(dns_update::register(
        reader.path(),
        &config(bind.server(), "reader", &records),
    ));
    assert_eq!(
        outcome,
        DnsUpdateOutcome::Refused {
            rcode: "REFUSED".into(),
            tsig_error: None
        }
    );

    assert!(bind.dig("minions.prod.k8s").is_empty(), "nothing was added");
}

#[test]
fn a_key_file_that_cannot_be_used_sends_nothing() {
    if !require_bind("a_key_file_that_cannot_be_used_sends_nothing") {
        return;
    }
    let bind = Bind::start();
    let rt = runtime();
    let update = config(bind.server(), "k8s-agent", &["minions.prod.k8s"]);
    let before = bind.updates_seen();

    let missing = tempfile::tempdir().expect("tempdir");
    let open = root_with_key(&bind.agent_key, 0o644);
    let other = root_with_key(&bind.reader_key, 0o600);
    for (root, expect) in [
        (missing.path(), "does not exist"),
        (open.path(), "readable by others (mode 0644)"),
        (other.path(), "holds the key \"reader\""),
    ] {
        match rt.block_on(dns_update::register(root, &update)) {
            DnsUpdateOutcome::KeyFile { problem } => {
                assert!(problem.contains(expect), "{problem}");
                assert!(!problem.contains("secret \""), "{problem}");
            }
            other => panic!("expected KeyFile ({expect}), got {other:?}"),
        }
    }
    assert_eq!(bind.updates_seen(), before, "no UPDATE reached the server");
    assert!(bind.dig("minions.prod.k8s").is_empty());
}

#[test]
fn no_server_is_unreachable_within_the_timeout() {
    let port = free_port();
    let root = root_with_key("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", 0o600);
    let update = config(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        "k8s-agent",
        &["minions.prod.k8s"],
    );
    let started = Instant::now();
    let outcome = runtime().block_on(dns_update::register(root.path(), &update));
    assert!(
        matches!(outcome, DnsUpdateOutcome::Unreachable { .. }),
        "{outcome:?}"
    );
    assert!(started.elapsed() < EXCHANGE_TIMEOUT + Duration::from_secs(2));
}
