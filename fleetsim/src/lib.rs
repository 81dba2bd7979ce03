//! A deterministic discrete-event simulation of a fleet of minions booting, each driven by the agent's own pure
//! core — [`k8s_core::plan::next`] with its backoff, TTL and Weave rules; nothing of that logic is copied here.
//! The world around the agents is modelled:
//!
//! - **instances**: an Auto Scaling group launching `launch_batch` instances every `launch_interval_ms`; each boots
//!   (`boot_ms`) until its agent starts; some die during boot and are replaced by a new instance (new address);
//! - **DNS**: a registrar (the seeds' Lambda on Auto Scaling events) that adds an instance `register_ms` after its
//!   launch and removes a dead one `deregister_ms` after its death, writing the record set every `dns_batch_ms`;
//!   a write becomes visible after `propagation_ms`; an optional cap on the values of a record set; a caching
//!   resolver in front of the agents that keeps answers for the TTL;
//! - **the master**: its record and API server become available at `master_ready_ms`, then may flap.
//!
//! Pure and seeded: the same scenario gives the same report. The executor's timings (how long a DNS query, a
//! probe, a unit start take) are those of the agent's own simulation test (`core/tests/core_plan_simulation.rs`).

use k8s_core::node_role::NodeRole;
use k8s_core::plan::{
    Action, AgentState, DiscoveryOutcome, DnsQuery, DnsResult, KubeletCredentials, Observation,
    Phase, ProbeResult, next,
};
use k8s_core::weave::WeaveDecision;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr};

/// SplitMix64: small, seeded, good enough for schedules.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..1.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in lo..=hi.
    pub fn between(&mut self, (lo, hi): (u64, u64)) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo + 1)
        }
    }
}

/// One group of minions (an Auto Scaling group) with its user data.
#[derive(Debug, Clone)]
pub struct Group {
    pub size: usize,
    /// `WEAVE_CONSENSUS` in this group's user data.
    pub consensus: u32,
    /// When the group starts launching (ms after the start).
    pub launch_at_ms: u64,
}

/// A scenario: the fleet and the world it boots in.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    /// All groups register in the same `minions` record.
    pub groups: Vec<Group>,
    pub launch_batch: usize,
    pub launch_interval_ms: u64,
    /// Launch → the agent starts.
    pub boot_ms: (u64, u64),
    /// Launch → the registrar adds the instance.
    pub register_ms: (u64, u64),
    pub deregister_ms: u64,
    pub dns_batch_ms: u64,
    pub propagation_ms: (u64, u64),
    pub ttl_secs: u32,
    /// At most this many values in a record set (managed DNS limits); `None`: no cap.
    pub value_cap: Option<usize>,
    /// The master's record and API server are up from here.
    pub master_ready_ms: u64,
    /// Intervals (ms) in which the master's API server does not answer.
    pub master_down: Vec<(u64, u64)>,
    /// Instances that die during boot (chosen at random), each replaced by a new one.
    pub deaths: usize,
    pub death_window_ms: (u64, u64),
    pub replace_ms: u64,
    /// Stop here even if not every node is Ready.
    pub horizon_ms: u64,
    /// `WEAVE_PEERS_RECORD=weave-core` on every node: the Weave decision reads a record that lists only the first
    /// group (the core); the registrar keeps it as it keeps `minions`.
    pub core_record: bool,
}

impl Scenario {
    /// The seeds' layout: one minion group of `n`, `WEAVE_CONSENSUS` = n, launched in batches of 50 every 5 s.
    pub fn seeds(n: usize, seed: u64) -> Scenario {
        Scenario {
            name: format!("seeds layout, {n} minions, consensus {n}"),
            seed,
            groups: vec![Group {
                size: n,
                consensus: n as u32,
                launch_at_ms: 0,
            }],
            launch_batch: 50,
            launch_interval_ms: 5_000,
            boot_ms: (25_000, 60_000),
            register_ms: (20_000, 60_000),
            deregister_ms: 30_000,
            dns_batch_ms: 5_000,
            propagation_ms: (1_000, 10_000),
            ttl_secs: 10,
            value_cap: None,
            master_ready_ms: 90_000,
            master_down: Vec::new(),
            deaths: 0,
            death_window_ms: (30_000, 120_000),
            replace_ms: 20_000,
            horizon_ms: 3_600_000,
            core_record: false,
        }
    }

    /// A fixed core of `core` minions (`WEAVE_CONSENSUS` = core) launched first, and `observers` more with the same
    /// user data launched `gap_ms` later.
    pub fn core_and_observers(core: usize, observers: usize, gap_ms: u64, seed: u64) -> Scenario {
        let mut s = Scenario::seeds(core + observers, seed);
        s.name = format!(
            "core {core} + {observers} observers (consensus {core}), observers launched {} s later",
            gap_ms / 1000
        );
        s.groups = vec![
            Group {
                size: core,
                consensus: core as u32,
                launch_at_ms: 0,
            },
            Group {
                size: observers,
                consensus: core as u32,
                launch_at_ms: gap_ms,
            },
        ];
        s
    }

    /// As [`Scenario::core_and_observers`], with the core in a record of its own that every node's Weave decision
    /// reads (`WEAVE_PEERS_RECORD=weave-core`).
    pub fn core_record(core: usize, observers: usize, gap_ms: u64, seed: u64) -> Scenario {
        let mut s = Scenario::core_and_observers(core, observers, gap_ms, seed);
        s.name = format!(
            "core {core} in its own record (WEAVE_PEERS_RECORD) + {observers} observers, launched {} s later",
            gap_ms / 1000
        );
        s.core_record = true;
        s
    }
}

/// The answer a resolver gave, and when it was fetched upstream.
#[derive(Debug, Clone)]
struct Cached {
    result: DnsResult,
    expires_at: u64,
}

/// One instance's life.
#[derive(Debug, Clone)]
struct Instance {
    ip: Ipv4Addr,
    group: usize,
    launched_at: u64,
    agent_start: u64,
    registered_at: u64,
    died_at: Option<u64>,
}

/// Per-node simulation state.
struct SimNode {
    state: AgentState,
    observation: Observation,
    ready_at: Option<u64>,
    failed: Option<String>,
    decision: Option<WeaveDecision>,
}

/// What one scenario gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub name: String,
    /// Instances launched (replacements included) and those alive at the end.
    pub launched: usize,
    pub alive: usize,
    /// Alive nodes Ready by the horizon.
    pub ready: usize,
    /// Launch of the first instance → Ready (ms) over the alive nodes: p50, p99, max.
    pub ready_p50_ms: u64,
    pub ready_p99_ms: u64,
    pub ready_max_ms: u64,
    /// Queries the agents sent to the resolver: mean and peak per second (until the last node was Ready).
    pub resolver_qps_mean: f64,
    pub resolver_qps_peak: u64,
    /// Queries the resolver sent upstream (cache misses).
    pub upstream_queries: u64,
    /// The largest `minions` answer, in bytes, and whether it needs TCP (over 1232 bytes with EDNS).
    pub answer_bytes_max: usize,
    pub answer_needs_tcp: bool,
    /// Nodes that voted (core members) and observers.
    pub voters: usize,
    pub observers: usize,
    /// Distinct peer sets voted for, and how many of them have a quorum of voters (a ring could be seeded): must
    /// be at most 1. `ring_formed`: one set has a quorum of voters alive at the end.
    pub voted_sets: usize,
    pub seedable_rings: usize,
    pub ring_formed: bool,
    /// Nodes that stopped in Failed.
    pub failed: usize,
    /// Ready nodes over time (second, count) and resolver queries per second (second, count), for plots.
    pub ready_over_time: Vec<(u64, usize)>,
    pub qps_over_time: Vec<(u64, u64)>,
}

const MASTER_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

fn minion_ip(index: usize) -> Ipv4Addr {
    let i = index as u32 + 10;
    Ipv4Addr::new(10, 2, (i >> 8) as u8, (i & 0xff) as u8)
}

/// DNS wire size of an A answer with `n` records for `name` (header, question, compressed answers).
pub fn answer_bytes(name: &str, n: usize) -> usize {
    12 + (name.len() + 2 + 4) + n * 16
}

fn role_observation(consensus: u32, core_record: bool) -> Observation {
    let text = format!(
        "CLUSTER_NAME=prod\nCA_CERT_HASH=sha256:{}\nBOOTSTRAP_TOKEN=abcdef.0123456789abcdef\nWEAVE_CONSENSUS={consensus}\n{}",
        "ab".repeat(32),
        if core_record {
            "WEAVE_PEERS_RECORD=weave-core\n"
        } else {
            ""
        }
    );
    match k8s_core::role_file::parse_role_file(
        std::path::Path::new("/etc/sysconfig/kubernetes-minions"),
        NodeRole::Minion,
        &text,
    ) {
        Ok(config) => Observation::RoleParsed(Box::new(config)),
        Err(e) => Observation::RoleInvalid(e),
    }
}

/// The fleet's instances, deaths and replacements, drawn from the scenario.
fn instances(s: &Scenario, rng: &mut Rng) -> Vec<Instance> {
    let mut out = Vec::new();
    for (g, group) in s.groups.iter().enumerate() {
        for k in 0..group.size {
            let launched_at =
                group.launch_at_ms + (k / s.launch_batch.max(1)) as u64 * s.launch_interval_ms;
            let index = out.len();
            out.push(Instance {
                ip: minion_ip(index),
                group: g,
                launched_at,
                agent_start: launched_at + rng.between(s.boot_ms),
                registered_at: launched_at + rng.between(s.register_ms),
                died_at: None,
            });
        }
    }
    let original = out.len();
    for _ in 0..s.deaths.min(original) {
        let victim = loop {
            let v = (rng.next_u64() % original as u64) as usize;
            if out[v].died_at.is_none() {
                break v;
            }
        };
        let died = out[victim].launched_at + rng.between(s.death_window_ms);
        out[victim].died_at = Some(died);
        let launched_at = died + s.replace_ms;
        let index = out.len();
        let group = out[victim].group;
        out.push(Instance {
            ip: minion_ip(index),
            group,
            launched_at,
            agent_start: launched_at + rng.between(s.boot_ms),
            registered_at: launched_at + rng.between(s.register_ms),
            died_at: None,
        });
    }
    out
}

/// The versions of the record the Weave decision reads (`minions`, or the core's own record): (visible from,
/// addresses in registration order).
fn record_versions(s: &Scenario, fleet: &[Instance], rng: &mut Rng) -> Vec<(u64, Vec<Ipv4Addr>)> {
    let end = fleet
        .iter()
        .map(|i| {
            i.registered_at
                .max(i.died_at.unwrap_or(0) + s.deregister_ms)
        })
        .max()
        .unwrap_or(0)
        + s.dns_batch_ms;
    let mut versions: Vec<(u64, Vec<Ipv4Addr>)> = Vec::new();
    let mut last: Option<Vec<Ipv4Addr>> = None;
    let mut visible_floor = 0;
    let mut tick = s.dns_batch_ms;
    while tick <= end {
        let mut listed: Vec<&Instance> = fleet
            .iter()
            .filter(|i| !s.core_record || i.group == 0)
            .filter(|i| i.registered_at <= tick)
            .filter(|i| i.died_at.is_none_or(|d| d + s.deregister_ms > tick))
            .collect();
        listed.sort_by_key(|i| (i.registered_at, i.ip));
        let mut addrs: Vec<Ipv4Addr> = listed.iter().map(|i| i.ip).collect();
        if let Some(cap) = s.value_cap {
            addrs.truncate(cap);
        }
        if last.as_ref() != Some(&addrs) {
            let visible = (tick + rng.between(s.propagation_ms)).max(visible_floor);
            visible_floor = visible;
            versions.push((visible, addrs.clone()));
            last = Some(addrs);
        }
        tick += s.dns_batch_ms;
    }
    versions
}

struct World<'a> {
    scenario: &'a Scenario,
    minions_versions: Vec<(u64, Vec<Ipv4Addr>)>,
    cache: BTreeMap<&'static str, Cached>,
    upstream: u64,
    queries_per_second: BTreeMap<u64, u64>,
    answer_bytes_max: usize,
}

impl World<'_> {
    fn master_up(&self, t: u64) -> bool {
        t >= self.scenario.master_ready_ms
            && !self
                .scenario
                .master_down
                .iter()
                .any(|(a, b)| t >= *a && t < *b)
    }

    fn upstream_answer(&mut self, query: DnsQuery, t: u64) -> DnsResult {
        let ttl = self.scenario.ttl_secs;
        match query {
            DnsQuery::Masters if t >= self.scenario.master_ready_ms => DnsResult::Answers {
                addrs: vec![IpAddr::V4(MASTER_IP)],
                ttl_secs: ttl,
            },
            DnsQuery::Masters => DnsResult::NxDomain {
                negative_ttl_secs: Some(ttl),
            },
            DnsQuery::Minions => {
                let current = self
                    .minions_versions
                    .iter()
                    .rev()
                    .find(|(at, _)| *at <= t)
                    .map(|(_, addrs)| addrs.clone())
                    .unwrap_or_default();
                self.answer_bytes_max = self
                    .answer_bytes_max
                    .max(answer_bytes("minions.prod.k8s", current.len()));
                if current.is_empty() {
                    DnsResult::NxDomain {
                        negative_ttl_secs: Some(ttl),
                    }
                } else {
                    DnsResult::Answers {
                        addrs: current.into_iter().map(IpAddr::V4).collect(),
                        ttl_secs: ttl,
                    }
                }
            }
        }
    }

    /// A query through the caching resolver.
    fn resolve(&mut self, query: DnsQuery, t: u64) -> DnsResult {
        *self.queries_per_second.entry(t / 1000).or_insert(0) += 1;
        let key = match query {
            DnsQuery::Masters => "masters",
            DnsQuery::Minions => "minions",
        };
        if let Some(c) = self.cache.get(key)
            && c.expires_at > t
        {
            return c.result.clone();
        }
        self.upstream += 1;
        let result = self.upstream_answer(query, t);
        self.cache.insert(
            key,
            Cached {
                result: result.clone(),
                expires_at: t + u64::from(self.scenario.ttl_secs) * 1000,
            },
        );
        result
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs one scenario.
pub fn run(s: &Scenario) -> Report {
    let mut rng = Rng::new(s.seed);
    let fleet = instances(s, &mut rng);
    let versions = record_versions(s, &fleet, &mut rng);
    let mut world = World {
        scenario: s,
        minions_versions: versions,
        cache: BTreeMap::new(),
        upstream: 0,
        queries_per_second: BTreeMap::new(),
        answer_bytes_max: 0,
    };
    let mut nodes: Vec<SimNode> = fleet
        .iter()
        .map(|i| SimNode {
            state: AgentState::new(i.agent_start),
            observation: Observation::Tick,
            ready_at: None,
            failed: None,
            decision: None,
        })
        .collect();
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> = fleet
        .iter()
        .enumerate()
        .map(|(n, i)| Reverse((i.agent_start, n)))
        .collect();

    while let Some(Reverse((t, n))) = queue.pop() {
        if t > s.horizon_ms {
            break;
        }
        let instance = &fleet[n];
        if instance.died_at.is_some_and(|d| d <= t) {
            continue;
        }
        let node = &mut nodes[n];
        let observation = std::mem::replace(&mut node.observation, Observation::Tick);
        let (state, action) = next(&node.state, observation, t, rng.unit());
        node.state = state;
        if node.decision.is_none()
            && let Some(d) = &node.state.weave
        {
            node.decision = Some(d.clone());
        }
        let (after, observation) = match action {
            Action::Wait { retry_after, .. } => (retry_after.as_millis() as u64, Observation::Tick),
            // The simulated fleets have one master and no etcd across masters.
            Action::EnsureEtcdMember { .. } => (
                1000,
                Observation::Etcd(k8s_core::plan::EtcdProgress::Blocked {
                    reason: "fleetsim simulates no etcd".into(),
                }),
            ),
            Action::ReadRoleFile => (
                1,
                role_observation(s.groups[instance.group].consensus, s.core_record),
            ),
            Action::RunHostChecks => (
                20,
                Observation::HostChecksPassed {
                    local_addrs: vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(instance.ip)],
                },
            ),
            Action::Resolve { query, .. } => {
                let result = world.resolve(query, t);
                (2, Observation::Dns { query, result })
            }
            Action::ProbeMaster { .. } => {
                let result = if world.master_up(t) {
                    ProbeResult::Healthy
                } else {
                    ProbeResult::Unreachable {
                        message: "connection refused".into(),
                    }
                };
                (3, Observation::MasterProbe(result))
            }
            Action::Discover { .. } => {
                let outcome = if world.master_up(t) {
                    DiscoveryOutcome::Joined {
                        server: "https://masters.prod.k8s:6443".into(),
                        ca_hash: format!("sha256:{}", "ab".repeat(32)),
                    }
                } else {
                    DiscoveryOutcome::Unreachable {
                        reason: "connection refused".into(),
                    }
                };
                (5, Observation::Discovered(outcome))
            }
            Action::WriteWeaveEnv { .. } => (1, Observation::WeaveEnvWritten),
            Action::CheckKubeletCredentials => (
                1000,
                Observation::KubeletChecked {
                    node_name: format!("minion-{n}"),
                    credentials: KubeletCredentials::Issued {
                        subject: format!("system:node:minion-{n}"),
                        not_after: "2027-01-01T00:00:00Z".into(),
                    },
                },
            ),
            Action::ImportImages => (150, Observation::ImagesImported(Vec::new())),
            // The simulated fleet runs CNI=weave: this action is never asked for; a pod range if it were.
            Action::SetUpPodNetwork { .. } => (
                50,
                Observation::PodNetworkSetUp(k8s_core::pod_network::SetUpOutcome::NotYet {
                    reason: "not simulated".into(),
                }),
            ),
            // kubelet registers and reports Ready, kube-proxy syncs: modelled as 2 s; the Node can only be read
            // while the master is up.
            Action::CheckHealth { checks, .. } => {
                let up = world.master_up(t);
                let reports = checks
                    .into_iter()
                    .map(|check| {
                        let node_check =
                            matches!(check, k8s_core::health::HealthCheck::NodeReady { .. });
                        k8s_core::health::HealthReport {
                            check,
                            healthy: up || !node_check,
                            unknown: !up && node_check,
                            detail: if up || !node_check {
                                "200".into()
                            } else {
                                "no answer".into()
                            },
                        }
                    })
                    .collect();
                (2000, Observation::HealthChecked(reports))
            }
            Action::StartUnits { units } => (50, Observation::UnitsStarted(units)),
            Action::RegisterDns { .. } => {
                node.failed = Some("self-registration (DNS_UPDATE_*) is not modelled here".into());
                continue;
            }
            Action::EnsurePki { .. } | Action::EnsureJoinObjects { .. } => {
                node.failed = Some("a minion was asked to do a master's step".into());
                continue;
            }
            Action::Done => {
                if node.ready_at.is_none() && node.state.phase == Phase::Ready {
                    node.ready_at = Some(t);
                }
                continue;
            }
            Action::Fail { reason } => {
                node.failed = Some(reason);
                continue;
            }
        };
        node.observation = observation;
        queue.push(Reverse((t + after.max(1), n)));
    }

    // Results.
    let alive: Vec<usize> = (0..fleet.len())
        .filter(|n| fleet[*n].died_at.is_none())
        .collect();
    let mut ready: Vec<u64> = alive.iter().filter_map(|n| nodes[*n].ready_at).collect();
    ready.sort_unstable();
    let last_ready = ready.last().copied().unwrap_or(s.horizon_ms);
    let secs = last_ready / 1000 + 1;
    let total_queries: u64 = world
        .queries_per_second
        .range(..secs)
        .map(|(_, q)| *q)
        .sum();
    let mut sets: BTreeMap<Vec<Ipv4Addr>, (usize, usize, u32)> = BTreeMap::new();
    let (mut voters, mut observers) = (0, 0);
    for (n, node) in nodes.iter().enumerate() {
        let Some(d) = &node.decision else { continue };
        if d.is_core() {
            voters += 1;
            let entry = sets
                .entry(d.peers.addrs().to_vec())
                .or_insert((0, 0, d.quorum()));
            entry.0 += 1;
            if fleet[n].died_at.is_none() {
                entry.1 += 1;
            }
        } else {
            observers += 1;
        }
    }
    let seedable_rings = sets
        .values()
        .filter(|(voted, _, quorum)| *voted as u32 >= *quorum)
        .count();
    let ring_formed = sets
        .values()
        .any(|(_, alive, quorum)| *alive as u32 >= *quorum);
    let mut ready_over_time = Vec::new();
    let mut count = 0;
    for sec in 0..=secs {
        while count < ready.len() && ready[count] / 1000 <= sec {
            count += 1;
        }
        ready_over_time.push((sec, count));
    }
    Report {
        name: s.name.clone(),
        launched: fleet.len(),
        alive: alive.len(),
        ready: ready.len(),
        ready_p50_ms: percentile(&ready, 0.5),
        ready_p99_ms: percentile(&ready, 0.99),
        ready_max_ms: ready.last().copied().unwrap_or(0),
        resolver_qps_mean: total_queries as f64 / secs as f64,
        resolver_qps_peak: world
            .queries_per_second
            .values()
            .copied()
            .max()
            .unwrap_or(0),
        upstream_queries: world.upstream,
        answer_bytes_max: world.answer_bytes_max,
        answer_needs_tcp: world.answer_bytes_max > 1232,
        voters,
        observers,
        voted_sets: sets.len(),
        seedable_rings,
        ring_formed,
        failed: nodes.iter().filter(|n| n.failed.is_some()).count(),
        ready_over_time,
        qps_over_time: (0..secs)
            .map(|sec| {
                (
                    sec,
                    world.queries_per_second.get(&sec).copied().unwrap_or(0),
                )
            })
            .collect(),
    }
}

/// The scenarios `fleetsim` runs by default.
pub fn default_scenarios(seed: u64) -> Vec<Scenario> {
    let mut out = vec![
        Scenario::seeds(10, seed),
        Scenario::seeds(100, seed),
        Scenario::seeds(1000, seed),
        Scenario::core_and_observers(5, 995, 120_000, seed),
        Scenario::core_and_observers(5, 995, 0, seed),
        Scenario::core_record(5, 995, 0, seed),
    ];
    let mut deaths = Scenario::seeds(100, seed);
    deaths.name = "seeds layout, 100 minions, 10 die during boot and are replaced".into();
    deaths.deaths = 10;
    out.push(deaths);
    let mut flapping = Scenario::seeds(100, seed);
    flapping.name =
        "seeds layout, 100 minions, master flapping from 95 s (down 15 s of every 30 s, 5 times)"
            .into();
    flapping.master_down = (0..5)
        .map(|k| (95_000 + k * 30_000, 110_000 + k * 30_000))
        .collect();
    out.push(flapping);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(n: usize, seed: u64) -> Scenario {
        let mut s = Scenario::seeds(n, seed);
        s.launch_batch = 5;
        s
    }

    #[test]
    fn the_same_seed_gives_the_same_report() {
        assert_eq!(run(&small(8, 7)), run(&small(8, 7)));
    }

    #[test]
    fn a_seeds_layout_boot_has_every_node_ready_and_one_ring() {
        for seed in 1..20 {
            let r = run(&small(12, seed));
            assert_eq!(r.ready, r.alive, "seed {seed}: {r:?}");
            assert_eq!(r.failed, 0);
            assert!(r.seedable_rings <= 1, "seed {seed}: {r:?}");
            assert_eq!(r.voters + r.observers, r.alive);
        }
    }

    #[test]
    fn a_core_launched_first_keeps_every_later_node_an_observer() {
        for seed in 1..10 {
            let r = run(&Scenario::core_and_observers(3, 30, 120_000, seed));
            assert_eq!(r.ready, r.alive, "{r:?}");
            assert_eq!(r.voters, 3, "seed {seed}: {r:?}");
            assert_eq!(r.seedable_rings, 1);
            assert!(r.ring_formed);
        }
    }

    #[test]
    fn deaths_and_a_flapping_master_keep_one_ring_and_everyone_ready() {
        for seed in 1..10 {
            let mut s = small(20, seed);
            s.deaths = 3;
            s.master_down = vec![(100_000, 130_000)];
            let r = run(&s);
            assert_eq!(r.ready, r.alive, "seed {seed}: {r:?}");
            assert!(r.seedable_rings <= 1, "seed {seed}: {r:?}");
        }
    }

    #[test]
    fn a_core_record_makes_the_launch_order_irrelevant() {
        for seed in 1..10 {
            let together = run(&Scenario::core_and_observers(3, 30, 0, seed));
            let r = run(&Scenario::core_record(3, 30, 0, seed));
            assert_eq!(r.ready, r.alive, "{r:?}");
            assert_eq!((r.voters, r.observers), (3, 30), "seed {seed}: {r:?}");
            assert!(r.ring_formed && r.seedable_rings == 1, "seed {seed}: {r:?}");
            assert!(r.answer_bytes_max < together.answer_bytes_max);
        }
    }

    #[test]
    fn answer_sizes_follow_the_wire_format() {
        assert_eq!(answer_bytes("minions.prod.k8s", 1), 12 + 22 + 16);
        assert!(answer_bytes("minions.prod.k8s", 1000) > 16_000);
    }
}
