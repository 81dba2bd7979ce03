//! The phase machine driven by a simulated executor against a simulated world (DNS records that appear, an API
//! server that becomes healthy, minions that boot at different times), with a simulated clock. Checks the
//! numbers the backoff policy promises: p50 ≤ 0.5 s from "master healthy" to the minion asking systemd to start
//! its units, the DNS query rate while waiting, and that minions booting at different times agree on Weave.

use k8s_core::node_role::NodeRole;
use k8s_core::plan::{
    Action, AgentState, DiscoveryOutcome, DnsQuery, DnsResult, KubeletCredentials, Observation,
    Phase, ProbeResult, next,
};
use k8s_core::role_file::parse_role_file;
use k8s_core::weave::WeaveDecision;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

const T0: u64 = 1_767_225_600_000;
const SEC: u64 = 1000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..1.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The world, as functions of time.
struct World {
    /// When `masters.prod.k8s` starts resolving (the master group has a healthy instance).
    masters_listed_at: u64,
    /// When the API server's /readyz answers 200.
    api_ready_at: u64,
    /// Minions and when each is listed in `minions.prod.k8s`.
    minions: Vec<(Ipv4Addr, u64)>,
}

impl World {
    /// From the minion's point of view, the moment the master is healthy: resolvable and ready.
    fn healthy_at(&self) -> u64 {
        self.masters_listed_at.max(self.api_ready_at)
    }
}

/// What one simulated agent did.
struct Trace {
    start_units_at: u64,
    dns_query_times: Vec<u64>,
    probe_times: Vec<u64>,
    state: AgentState,
}

fn minion_role_file(consensus: u32) -> Observation {
    let text = format!(
        "CLUSTER_NAME=prod\nCA_CERT_HASH=sha256:{}\nBOOTSTRAP_TOKEN=abcdef.0123456789abcdef\n\
         WEAVE_CONSENSUS={consensus}\n",
        "ab".repeat(32)
    );
    let config = parse_role_file(
        Path::new("/etc/sysconfig/kubernetes-minions"),
        NodeRole::Minion,
        &text,
    );
    Observation::RoleParsed(Box::new(config.unwrap_or_else(|e| panic!("{e}"))))
}

/// Run one minion's agent from `boot` until Ready, performing every action against `world`.
fn run_minion(world: &World, me: Ipv4Addr, boot: u64, consensus: u32, rng: &mut Rng) -> Trace {
    let mut state = AgentState::new(boot);
    let mut now = boot;
    let mut observation = Observation::Tick;
    let mut trace = Trace {
        start_units_at: 0,
        dns_query_times: vec![],
        probe_times: vec![],
        state: state.clone(),
    };
    for _ in 0..100_000 {
        let (next_state, action) = next(&state, observation, now, rng.unit());
        state = next_state;
        observation = match action {
            Action::Wait { retry_after, .. } => {
                now += retry_after.as_millis() as u64;
                Observation::Tick
            }
            Action::ReadRoleFile => {
                now += 1;
                minion_role_file(consensus)
            }
            Action::RunHostChecks => {
                now += 20;
                Observation::HostChecksPassed {
                    local_addrs: vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(me)],
                }
            }
            Action::Resolve { query, .. } => {
                trace.dns_query_times.push(now);
                now += 2;
                let result = match query {
                    DnsQuery::Masters if now >= world.masters_listed_at => DnsResult::Answers {
                        addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1))],
                        ttl_secs: 0,
                    },
                    DnsQuery::Masters => DnsResult::NxDomain {
                        negative_ttl_secs: None,
                    },
                    DnsQuery::Minions => {
                        let addrs: Vec<IpAddr> = world
                            .minions
                            .iter()
                            .filter(|(_, at)| now >= *at)
                            .map(|(a, _)| IpAddr::V4(*a))
                            .collect();
                        if addrs.is_empty() {
                            DnsResult::NxDomain {
                                negative_ttl_secs: None,
                            }
                        } else {
                            DnsResult::Answers { addrs, ttl_secs: 0 }
                        }
                    }
                };
                Observation::Dns { query, result }
            }
            Action::ProbeMaster { .. } => {
                trace.probe_times.push(now);
                now += 3;
                if now >= world.api_ready_at {
                    Observation::MasterProbe(ProbeResult::Healthy)
                } else {
                    Observation::MasterProbe(ProbeResult::Unreachable {
                        message: "connection refused".into(),
                    })
                }
            }
            Action::WriteWeaveEnv { .. } => {
                now += 1;
                Observation::WeaveEnvWritten
            }
            Action::RegisterDns { .. } => panic!("these role files do not register in DNS"),
            Action::SetUpPodNetwork { .. } => panic!("these role files use CNI=weave"),
            // Token discovery answers once the API server does (cluster-info exists by then in this world).
            Action::Discover { .. } => {
                trace.probe_times.push(now);
                now += 5;
                if now >= world.api_ready_at {
                    Observation::Discovered(DiscoveryOutcome::Joined {
                        server: "https://masters.prod.k8s:6443".into(),
                        ca_hash: format!("sha256:{}", "ab".repeat(32)),
                    })
                } else {
                    Observation::Discovered(DiscoveryOutcome::Unreachable {
                        reason: "connection refused".into(),
                    })
                }
            }
            // kubelet's TLS bootstrap takes a second in this world.
            Action::CheckKubeletCredentials => {
                now += SEC;
                Observation::KubeletChecked {
                    node_name: "node".into(),
                    credentials: KubeletCredentials::Issued {
                        subject: "system:node:node".into(),
                        not_after: "2027-01-01T00:00:00Z".into(),
                    },
                }
            }
            // No images baked in this world.
            Action::ImportImages => {
                now += 1;
                Observation::ImagesImported(Vec::new())
            }
            // The node's components answer their health checks a second after kube-proxy started in this world.
            Action::CheckHealth { checks, .. } => {
                now += SEC;
                Observation::HealthChecked(
                    checks
                        .into_iter()
                        .map(|check| k8s_core::health::HealthReport {
                            check,
                            healthy: true,
                            unknown: false,
                            detail: "200".into(),
                        })
                        .collect(),
                )
            }
            Action::EnsurePki { .. } | Action::EnsureJoinObjects { .. } => {
                panic!("a minion never does {action:?}")
            }
            Action::EnsureEtcdMember { .. } => panic!("a minion never touches etcd"),
            Action::StartUnits { units } => {
                if trace.start_units_at == 0 {
                    trace.start_units_at = now;
                }
                now += 50;
                Observation::UnitsStarted(units)
            }
            Action::Done => break,
            Action::Fail { reason } => panic!("failed: {reason}"),
        };
    }
    assert_eq!(state.phase, Phase::Ready, "did not finish");
    trace.state = state;
    trace
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn three_minions(me: Ipv4Addr) -> Vec<(Ipv4Addr, u64)> {
    vec![
        (me, 0),
        (Ipv4Addr::new(10, 0, 0, 1), 0),
        (Ipv4Addr::new(10, 0, 0, 3), 0),
    ]
}

/// Latencies (ms) from "healthy" to StartUnits, and DNS queries per minute while waiting.
fn latencies(seed: u64, world_at: impl Fn(u64, &mut Rng) -> World) -> (Vec<u64>, f64) {
    let mut rng = Rng(seed);
    let me = Ipv4Addr::new(10, 0, 0, 2);
    let (mut lat, mut queries, mut waited) = (Vec::new(), 0usize, 0u64);
    for _ in 0..2000 {
        let healthy_after = rng.between(SEC, 120 * SEC);
        let world = world_at(T0 + healthy_after, &mut rng);
        let trace = run_minion(&world, me, T0, 3, &mut rng);
        let healthy = world.healthy_at();
        assert!(
            trace.start_units_at >= healthy,
            "units started before the master was healthy"
        );
        assert!(trace.state.entered(Phase::StartUnits) >= trace.state.entered(Phase::WeavePeers));
        lat.push(trace.start_units_at - healthy);
        queries += trace
            .dns_query_times
            .iter()
            .filter(|t| **t < healthy)
            .count();
        waited += healthy - T0;
    }
    lat.sort();
    (lat, queries as f64 / (waited as f64 / 60_000.0))
}

#[test]
fn masters_record_appearing_is_noticed_within_half_a_second_p50() {
    let (lat, qpm) = latencies(1, |at, _| World {
        masters_listed_at: at,
        api_ready_at: at,
        minions: three_minions(Ipv4Addr::new(10, 0, 0, 2)),
    });
    let (p50, p90, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 1.0),
    );
    eprintln!(
        "masters record appears: p50 {p50} ms, p90 {p90} ms, max {max} ms, {qpm:.1} DNS queries/min waiting"
    );
    assert!(p50 <= 500, "p50 {p50} ms");
    assert!(max <= 1000, "max {max} ms");
    assert!(qpm <= 82.0, "{qpm} queries per minute");
}

#[test]
fn api_becoming_ready_is_noticed_within_half_a_second_p50() {
    let (lat, qpm) = latencies(2, |at, _| World {
        masters_listed_at: T0,
        api_ready_at: at,
        minions: three_minions(Ipv4Addr::new(10, 0, 0, 2)),
    });
    let (p50, p90, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 1.0),
    );
    eprintln!(
        "API becomes ready: p50 {p50} ms, p90 {p90} ms, max {max} ms, {qpm:.1} DNS queries/min waiting"
    );
    assert!(p50 <= 500, "p50 {p50} ms");
    assert!(max <= 1000, "max {max} ms");
    // A zero-TTL masters answer is re-resolved at most every 5 s while the API refuses connections.
    assert!(qpm <= 13.0, "{qpm} queries per minute");
}

#[test]
fn a_long_wait_slows_down_after_ten_minutes() {
    let mut rng = Rng(3);
    let me = Ipv4Addr::new(10, 0, 0, 2);
    let healthy = T0 + 30 * 60 * SEC;
    let world = World {
        masters_listed_at: healthy,
        api_ready_at: healthy,
        minions: three_minions(me),
    };
    let trace = run_minion(&world, me, T0, 3, &mut rng);
    let in_window = |from: u64, to: u64| {
        trace
            .dns_query_times
            .iter()
            .filter(|t| **t >= T0 + from && **t < T0 + to)
            .count()
    };
    let first_minute = in_window(0, 60 * SEC);
    let late_minute = in_window(20 * 60 * SEC, 21 * 60 * SEC);
    eprintln!(
        "long wait: {first_minute} queries in the first minute, {late_minute} per minute after 20 minutes"
    );
    assert!((75..=83).contains(&first_minute), "{first_minute}");
    assert!((5..=8).contains(&late_minute), "{late_minute}");
    assert!(trace.start_units_at - healthy <= 12 * SEC);
}

/// Minions boot at different times and are listed one by one; the group is created with N=3, two more join
/// later. Every run: one core, at most 3 voters, the first three listed; all three vote.
#[test]
fn minions_booting_at_different_times_agree_on_weave() {
    let mut rng = Rng(4);
    for trial in 0..300 {
        let mut addrs: Vec<Ipv4Addr> = Vec::new();
        while addrs.len() < 5 {
            let a = Ipv4Addr::new(10, 0, rng.between(0, 3) as u8, rng.between(1, 254) as u8);
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        let healthy = T0 + rng.between(5 * SEC, 60 * SEC);
        // The first three boot within 30 s and are listed 1-5 s after boot; two more after the core is up.
        let mut boots: Vec<(Ipv4Addr, u64, u64)> = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let boot = if i < 3 {
                T0 + rng.between(0, 30 * SEC)
            } else {
                healthy + rng.between(30 * SEC, 90 * SEC)
            };
            boots.push((*addr, boot, boot + rng.between(SEC, 5 * SEC)));
        }
        let core_listed = boots[..3].iter().map(|b| b.2).max().unwrap_or(0);
        for b in boots[3..].iter_mut() {
            // Late joiners are listed only after the whole core is (the group is grown after bring-up).
            b.2 = b.2.max(core_listed + 30 * SEC).max(healthy + 30 * SEC);
        }
        let world = World {
            masters_listed_at: healthy,
            api_ready_at: healthy,
            minions: boots.iter().map(|(a, _, listed)| (*a, *listed)).collect(),
        };
        let decisions: Vec<WeaveDecision> = boots
            .iter()
            .map(|(addr, boot, _)| run_minion(&world, *addr, *boot, 3, &mut rng).state.weave)
            .map(|w| w.unwrap_or_else(|| panic!("trial {trial}: no weave decision")))
            .collect();
        let voters: Vec<&WeaveDecision> = decisions.iter().filter(|d| d.is_core()).collect();
        let mut core: Vec<Ipv4Addr> = addrs[..3].to_vec();
        core.sort();
        assert_eq!(
            voters.len(),
            3,
            "trial {trial}: the three first minions vote"
        );
        assert!(
            voters.iter().all(|d| d.peers.addrs() == core.as_slice()),
            "trial {trial}: one core"
        );
        assert!(
            decisions[3..].iter().all(|d| !d.is_core()),
            "trial {trial}: late joiners observe"
        );
    }
}
