//! Weave Net's IPAM start-up, computed from DNS: the `IPALLOC_INIT` and `KUBE_PEERS` this minion gives
//! weave-kube, rendered by [`render_env`] into `/run/k8s-agent/weave.env` (read by `weave.service`). Pure: the DNS
//! answer, this node's addresses and the time come in as values.
//!
//! # The problem
//! With `IPALLOC_INIT=consensus=N` (the seeds' `weave launch-router --ipalloc-init consensus=$MEMBERS $PEERS`),
//! the first time an address is needed the ring-less peers run one Paxos vote; a proposal needs a quorum of
//! floor(N/2)+1 votes and the winner seeds the ring that divides the range. A peer that has a ring never votes
//! again: it hands the ring to every ring-less peer it connects to, and Weave Net keeps it in its database. Two
//! groups that each reach a quorum before hearing of each other seed two rings, which then refuse each other
//! ("seeded by different peers", weave issues #3891, #3955, #3908, #3651) while their pods' addresses overlap. Two
//! disjoint quorums cannot exist while at most N peers ever vote with the same N (two sets of more than N/2 out
//! of N share a member); they can as soon as more than N peers vote, or peers vote with different N.
//!
//! The seeds counted N on each node (`MEMBERS=$(getent hosts minions.<cluster>.k8s | wc -l)`): a node that boots
//! while DNS lists 2 minions votes with N=2, one that boots when it lists 3 votes with N=3 — two rings.
//!
//! # The rule
//! 1. **N comes from user data**, never from DNS: `WEAVE_CONSENSUS=N` in every minion's role file, the same number
//!    everywhere — the number of minions the group is created with (the seeds' `MEMBERS`).
//! 2. A minion **waits** until the A records of `minions.<cluster>.<domain>` list at least N valid addresses
//!    ([`validate_minion_answer`]: sorted, duplicates removed, unusable addresses dropped).
//! 3. On the first answer with at least N addresses it **decides once** ([`decide`]):
//!    - exactly N addresses, one of them this node's own → this node is in the **core**:
//!      `IPALLOC_INIT=consensus=N`, `KUBE_PEERS` = those N addresses;
//!    - more than N addresses, or this node is not among them → a **late joiner**: `IPALLOC_INIT=observer` (never
//!      votes, takes the ring from any peer that has one), `KUBE_PEERS` = every listed address.
//! 4. The decision ([`WeaveDecision`]) is kept in the agent's state and **never recomputed**; a restarted agent
//!    writes the same file again.
//! 5. It is also kept **across reboots**, in [`WEAVE_DECISION_FILE`] (`/var/lib/k8s-agent/weave-decision.json`;
//!    the state in `/run` is per boot). A rebooted minion never votes with another view than before
//!    ([`after_reboot`]): a core member votes again with exactly the set it voted with (the same vote), as long as
//!    its address is still its own; anything else that decided before — an observer, a core member whose address
//!    changed, a node whose `WEAVE_CONSENSUS` changed — is an observer peering with whoever the record lists now.
//!    Only a decision made for another cluster is ignored (the node was re-purposed). Without that file, a
//!    minion rebooted while the record listed exactly N others-plus-itself would vote afresh with a set that is
//!    not the core's.
//!
//! The record is `minions.<cluster>.<domain>` unless the role file names another label (`WEAVE_PEERS_RECORD`,
//! e.g. `weave-core`): for large or autoscaled clusters a small fixed core group (3 or 5, `WEAVE_CONSENSUS` = its
//! size) is registered in a record of its own that every node reads; nodes of the other groups are never listed
//! there, so they are observers peering with the core whatever the launch order (`fleetsim` shows that with a
//! shared record a core launched together with 995 others never gets to vote). The argument below is about
//! whichever record is read: it only needs that record to grow while the core comes up.
//!
//! # Why two nodes cannot seed two rings
//! The minion record lists the group's healthy instances: while the group comes up it only grows (an instance is
//! added when it becomes healthy). So the answers any two nodes see are nested — one a subset of the other — and
//! two nested sets of the same size are the same set. Every node that votes therefore saw *the same* N
//! addresses (the core) and is one of them: at most N peers ever vote, all with the same N, so any two quorums
//! share a voter and only one ring can be seeded. Every other node saw more than N addresses, or not itself, and
//! is an observer, which cannot seed anything. This holds however boot times interleave, whenever each node polls,
//! and in whatever order or with whatever duplicates DNS returns the records (the property tests in
//! `tests/core_weave_agreement.rs` check it over many random schedules).
//!
//! Why not "the core is the N lowest addresses of the first answer with at least N": a node that decides after
//! an address *lower* than the core's joined computes another core, counts itself in and votes — an (N+1)-th
//! voter, and two disjoint quorums become possible.
//!
//! **Liveness.** The ring is seeded once floor(N/2)+1 core members have decided while the record listed exactly
//! the core — always the case when the group is created with N instances, since the record cannot list more than
//! N before the group is grown. If `WEAVE_CONSENSUS` is smaller than the group's initial size (or the group grows
//! before the core decided), the nodes may only ever see more than N and all observe: nothing splits, but no ring
//! is seeded and pods get no addresses (`weave status ipam` stays idle / "awaiting consensus"); the fix is to set
//! `WEAVE_CONSENSUS` to the initial group size. No rule that sees only DNS snapshots is both always live and always
//! safe (a node that decides late cannot tell a late joiner from a slow core member); this one chooses safety,
//! because a split corrupts silently and a stall is visible.
//!
//! # When a core member dies
//! - **Before it voted** (before the others came up): it never votes, so at most N-1 core members plus, once the
//!   dead instance's record is removed and a replacement is listed, the replacement (which then sees exactly N
//!   including itself) vote: still at most N voters, all agreeing on one set. With N ≥ 3 the N-1 survivors are a
//!   quorum and seed the ring without waiting; with N ≤ 2 they wait for the replacement. If the replacement is
//!   listed while the dead record still is, it sees N+1 and observes; with N ≥ 3 the survivors still seed.
//!   Use an odd N ≥ 3.
//! - **After it voted**: the ring exists and is held by the quorum that seeded it. A replacement that sees exactly
//!   N (the group is exactly N again) votes as an (N+1)-th voter, but every other address it lists is a core
//!   member, and a ring-less peer that reaches a ring holder takes the ring instead of voting. For even N, N+1
//!   voters cannot form two disjoint quorums at all; for odd N they could only if the replacement completed a
//!   vote with core members that have no ring yet and cannot reach any that have — a partition inside the core
//!   at that moment.
//! - Weave Net stores its ring on the node (`/var/lib/weave`), so a rebooted minion that had the ring rejoins with
//!   it; one rebooted before it got the ring keeps its earlier vote or observes (rule 5), never a new vote.
//!
//! # Validation of every answer
//! - IPv4 only: an IPv6 address in the answer is ignored and reported ([`AnswerNote::Ipv6Ignored`]); the peers
//!   are the nodes' IPv4 addresses, as in the seeds.
//! - Duplicates are removed and reported.
//! - Loopback, unspecified, multicast, broadcast and link-local addresses are ignored and reported: none of them
//!   names another node.
//! - An answer with more than [`MAX_MINION_RECORDS`] records is rejected as a whole ([`MinionAnswerError`]); the
//!   agent waits and says so. (Such an answer is larger than a UDP DNS message: the resolver edge retries
//!   truncated answers over TCP.)
//!
//! Every node applies the same filter, so the same answer yields the same set on every node.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where the agent writes the weave environment (relative to the root).
pub const WEAVE_ENV_FILE: &str = "run/k8s-agent/weave.env";
/// Where the agent keeps its decision across reboots (relative to the root; `/var/lib` survives a reboot).
pub const WEAVE_DECISION_FILE: &str = "var/lib/k8s-agent/weave-decision.json";
/// The largest [`WEAVE_DECISION_FILE`] the agent reads (1000 peers twice, as JSON, is under 64 KiB).
pub const MAX_KEPT_DECISION_BYTES: u64 = 256 << 10;
/// Version of [`KeptDecision`]'s format.
pub const KEPT_DECISION_SCHEMA: u32 = 1;
/// Weave Net's default allocation range, written explicitly so every node uses the same one.
pub const IPALLOC_RANGE: &str = "10.32.0.0/12";
/// The most A records one minions answer may have (also the largest `WEAVE_CONSENSUS`).
pub const MAX_MINION_RECORDS: usize = 1000;

/// Weave Net's consensus size N (`WEAVE_CONSENSUS`), 1..=[`MAX_MINION_RECORDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ConsensusSize(u32);

impl ConsensusSize {
    pub fn new(n: u32) -> Result<ConsensusSize, String> {
        if n >= 1 && n as usize <= MAX_MINION_RECORDS {
            Ok(ConsensusSize(n))
        } else {
            Err(format!(
                "consensus size {n} is not in 1..={MAX_MINION_RECORDS}"
            ))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Votes a proposal needs: floor(N/2)+1 (Weave Net's quorum).
    pub fn quorum(self) -> u32 {
        self.0 / 2 + 1
    }
}

impl TryFrom<u32> for ConsensusSize {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        ConsensusSize::new(n)
    }
}

impl From<ConsensusSize> for u32 {
    fn from(n: ConsensusSize) -> u32 {
        n.0
    }
}

impl fmt::Display for ConsensusSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Something removed from an answer, reported to the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AnswerNote {
    Ipv6Ignored { addr: Ipv6Addr },
    Duplicate { addr: Ipv4Addr },
    Unusable { addr: Ipv4Addr, why: String },
}

impl fmt::Display for AnswerNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerNote::Ipv6Ignored { addr } => {
                write!(f, "{addr} ignored: weave peers are IPv4 addresses")
            }
            AnswerNote::Duplicate { addr } => write!(f, "{addr} listed more than once"),
            AnswerNote::Unusable { addr, why } => write!(f, "{addr} ignored: {why}"),
        }
    }
}

/// A validated minions answer: IPv4 addresses, sorted numerically, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinionAnswer {
    pub addrs: Vec<Ipv4Addr>,
    pub notes: Vec<AnswerNote>,
}

/// An answer the agent refuses as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MinionAnswerError {
    TooMany { count: usize, max: usize },
}

impl fmt::Display for MinionAnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinionAnswerError::TooMany { count, max } => write!(
                f,
                "the minions record lists {count} addresses, more than the {max} the agent accepts — hint: check \
                 what updates the record (it should list the minion group's healthy instances)"
            ),
        }
    }
}

impl std::error::Error for MinionAnswerError {}

/// Why an IPv4 address cannot be a peer, if it cannot.
fn unusable(addr: Ipv4Addr) -> Option<&'static str> {
    if addr.is_loopback() {
        Some("loopback address")
    } else if addr.is_unspecified() {
        Some("unspecified address")
    } else if addr.is_multicast() {
        Some("multicast address")
    } else if addr.is_broadcast() {
        Some("broadcast address")
    } else if addr.is_link_local() {
        Some("link-local address")
    } else {
        None
    }
}

/// Validate one answer for the minions name (see the module doc). Deterministic: the same multiset of records
/// gives the same result in any order.
pub fn validate_minion_answer(records: &[IpAddr]) -> Result<MinionAnswer, MinionAnswerError> {
    if records.len() > MAX_MINION_RECORDS {
        return Err(MinionAnswerError::TooMany {
            count: records.len(),
            max: MAX_MINION_RECORDS,
        });
    }
    let mut v4 = Vec::with_capacity(records.len());
    let mut v6 = Vec::new();
    for record in records {
        match record {
            IpAddr::V4(addr) => v4.push(*addr),
            IpAddr::V6(addr) => match addr.to_ipv4_mapped() {
                Some(mapped) => v4.push(mapped),
                None => v6.push(*addr),
            },
        }
    }
    v4.sort();
    v6.sort();
    v6.dedup();
    let mut notes: Vec<AnswerNote> = v6
        .into_iter()
        .map(|addr| AnswerNote::Ipv6Ignored { addr })
        .collect();
    let mut addrs: Vec<Ipv4Addr> = Vec::with_capacity(v4.len());
    for addr in v4 {
        if addrs.last() == Some(&addr) {
            if !notes.contains(&AnswerNote::Duplicate { addr }) {
                notes.push(AnswerNote::Duplicate { addr });
            }
            continue;
        }
        if let Some(why) = unusable(addr) {
            let note = AnswerNote::Unusable {
                addr,
                why: why.to_string(),
            };
            if !notes.contains(&note) {
                notes.push(note);
            }
            continue;
        }
        addrs.push(addr);
    }
    Ok(MinionAnswer { addrs, notes })
}

/// `IPALLOC_INIT`: vote in the one consensus, or only observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum IpallocInit {
    /// `consensus=N`: a core member, votes once.
    Consensus(ConsensusSize),
    /// `observer`: a late joiner, never votes.
    Observer,
}

impl fmt::Display for IpallocInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpallocInit::Consensus(n) => write!(f, "consensus={n}"),
            IpallocInit::Observer => f.write_str("observer"),
        }
    }
}

impl TryFrom<String> for IpallocInit {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value == "observer" {
            return Ok(IpallocInit::Observer);
        }
        value
            .strip_prefix("consensus=")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| format!("{value:?} is not consensus=N or observer"))
            .and_then(ConsensusSize::new)
            .map(IpallocInit::Consensus)
    }
}

impl From<IpallocInit> for String {
    fn from(init: IpallocInit) -> String {
        init.to_string()
    }
}

/// The peers weave-kube connects to (`KUBE_PEERS`): IPv4 addresses, sorted, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WeavePeers(Vec<Ipv4Addr>);

impl WeavePeers {
    pub fn new(mut addrs: Vec<Ipv4Addr>) -> WeavePeers {
        addrs.sort();
        addrs.dedup();
        WeavePeers(addrs)
    }

    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for WeavePeers {
    /// Space-separated, as `KUBE_PEERS` wants them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, addr) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{addr}")?;
        }
        Ok(())
    }
}

/// This node's Weave Net start-up, decided once and persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeaveDecision {
    /// `consensus=N` (core member) or `observer` (late joiner).
    pub ipalloc_init: IpallocInit,
    /// N from `WEAVE_CONSENSUS` (also kept for observers, for `status`).
    pub n: ConsensusSize,
    /// `KUBE_PEERS`.
    pub peers: WeavePeers,
    /// The validated answer the decision was made from.
    pub decided_from: Vec<Ipv4Addr>,
    /// When (unix milliseconds).
    pub decided_at: u64,
    /// This node's address as listed in the answer, if it was.
    pub self_addr: Option<Ipv4Addr>,
    /// Set on a boot after the one that first decided: why this decision is what it is ([`after_reboot`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_reboot: Option<String>,
}

impl WeaveDecision {
    /// True for a core member (votes).
    pub fn is_core(&self) -> bool {
        matches!(self.ipalloc_init, IpallocInit::Consensus(_))
    }

    /// floor(N/2)+1.
    pub fn quorum(&self) -> u32 {
        self.n.quorum()
    }
}

/// What [`decide`] concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeaveOutcome {
    Decided(WeaveDecision),
    /// Fewer than N usable addresses listed: wait.
    NotEnoughMinions {
        listed: usize,
        need: ConsensusSize,
    },
    /// At least N listed, but this node knows no IPv4 address of its own, so it cannot tell whether it is in the
    /// core (deciding "observer" here could stall the whole network).
    NoLocalIpv4,
}

/// Apply the rule (module doc) to one validated answer. `local_addrs` are this node's own addresses.
pub fn decide(
    n: ConsensusSize,
    answer: &MinionAnswer,
    local_addrs: &[IpAddr],
    now_millis: u64,
) -> WeaveOutcome {
    let listed = answer.addrs.len();
    if listed < n.get() as usize {
        return WeaveOutcome::NotEnoughMinions { listed, need: n };
    }
    let mut local_v4: Vec<Ipv4Addr> = local_addrs
        .iter()
        .filter_map(|addr| match addr {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        })
        .filter(|addr| !addr.is_loopback())
        .collect();
    local_v4.sort();
    if local_v4.is_empty() {
        return WeaveOutcome::NoLocalIpv4;
    }
    let self_addr = local_v4
        .iter()
        .find(|addr| answer.addrs.binary_search(addr).is_ok())
        .copied();
    let ipalloc_init = if listed == n.get() as usize && self_addr.is_some() {
        IpallocInit::Consensus(n)
    } else {
        IpallocInit::Observer
    };
    WeaveOutcome::Decided(WeaveDecision {
        ipalloc_init,
        n,
        peers: WeavePeers::new(answer.addrs.clone()),
        decided_from: answer.addrs.clone(),
        decided_at: now_millis,
        self_addr,
        after_reboot: None,
    })
}

/// A decision as kept in [`WEAVE_DECISION_FILE`] for the boots after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptDecision {
    /// [`KEPT_DECISION_SCHEMA`].
    pub schema_version: u32,
    /// The cluster (`CLUSTER_NAME`) it was made for.
    pub cluster: String,
    pub decision: WeaveDecision,
}

impl KeptDecision {
    pub fn new(cluster: &str, decision: &WeaveDecision) -> KeptDecision {
        KeptDecision {
            schema_version: KEPT_DECISION_SCHEMA,
            cluster: cluster.to_string(),
            decision: decision.clone(),
        }
    }

    /// The file's contents (pretty JSON, newline-terminated).
    pub fn render(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parse the file's contents; the error says what is wrong (the caller adds the path).
    pub fn parse(text: &str) -> Result<KeptDecision, String> {
        let kept: KeptDecision =
            serde_json::from_str(text).map_err(|e| format!("not a kept Weave decision: {e}"))?;
        if kept.schema_version != KEPT_DECISION_SCHEMA {
            return Err(format!(
                "format version {} (this agent reads version {KEPT_DECISION_SCHEMA})",
                kept.schema_version
            ));
        }
        if kept.decision.is_core() && kept.decision.peers.len() != kept.decision.n.get() as usize {
            return Err(format!(
                "a core vote with {} peers for WEAVE_CONSENSUS={}: the file was not written by k8s-agent",
                kept.decision.peers.len(),
                kept.decision.n
            ));
        }
        Ok(kept)
    }
}

/// What an earlier boot's decision means for this boot ([`after_reboot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterReboot {
    /// Vote again, exactly as before (no DNS answer needed).
    VoteAgain(WeaveDecision),
    /// Observe, peering with what the record lists now; the text says why.
    Observe(String),
    /// The earlier decision does not apply (another cluster): decide as on a first boot; the text says why.
    DecideAfresh(String),
}

/// Rule 5 of the module doc: what a minion that decided on an earlier boot does now. `cluster`, `n` and
/// `local_addrs` are this boot's.
pub fn after_reboot(
    kept: &KeptDecision,
    cluster: &str,
    n: ConsensusSize,
    local_addrs: &[IpAddr],
) -> AfterReboot {
    let earlier = &kept.decision;
    if kept.cluster != cluster {
        return AfterReboot::DecideAfresh(format!(
            "the decision kept from an earlier boot was made for cluster {}, not {cluster}",
            kept.cluster
        ));
    }
    if earlier.n != n {
        return AfterReboot::Observe(format!(
            "an earlier boot decided with WEAVE_CONSENSUS={} and this one has {n}: a node never votes with another \
             view than before, so it observes",
            earlier.n
        ));
    }
    if !earlier.is_core() {
        return AfterReboot::Observe(
            "an observer on an earlier boot stays an observer (it never votes later)".to_string(),
        );
    }
    match earlier.self_addr {
        Some(addr) if is_local(&addr, local_addrs) => {
            let mut again = earlier.clone();
            again.after_reboot = Some(format!(
                "voted on an earlier boot (decided at {} unix ms): the same vote again, with the same peers",
                earlier.decided_at
            ));
            AfterReboot::VoteAgain(again)
        }
        Some(addr) => AfterReboot::Observe(format!(
            "voted on an earlier boot as {addr}, which is no longer this node's address: it observes instead of \
             voting with another view"
        )),
        None => AfterReboot::Observe(
            "an earlier boot's vote names no address of this node: it observes".to_string(),
        ),
    }
}

/// True when `addr` is one of this node's addresses (an IPv4-mapped IPv6 address counts).
fn is_local(addr: &Ipv4Addr, local_addrs: &[IpAddr]) -> bool {
    local_addrs.iter().any(|local| match local {
        IpAddr::V4(v4) => v4 == addr,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().as_ref() == Some(addr),
    })
}

/// The observer decision of a node that decided on an earlier boot ([`AfterReboot::Observe`]): it peers with every
/// address the record lists now (however many), and never votes.
pub fn observe_after_reboot(
    n: ConsensusSize,
    answer: &MinionAnswer,
    local_addrs: &[IpAddr],
    now_millis: u64,
    why: &str,
) -> WeaveDecision {
    let self_addr = answer
        .addrs
        .iter()
        .copied()
        .find(|addr| is_local(addr, local_addrs));
    WeaveDecision {
        ipalloc_init: IpallocInit::Observer,
        n,
        peers: WeavePeers::new(answer.addrs.clone()),
        decided_from: answer.addrs.clone(),
        decided_at: now_millis,
        self_addr,
        after_reboot: Some(why.to_string()),
    }
}

/// The artifact name the image's lock gives Weave Net's container image.
pub const WEAVE_IMAGE_ARTIFACT: &str = "weave-kube";

/// The reference of the Weave Net image the lock bakes (artifact [`WEAVE_IMAGE_ARTIFACT`]), for weave.service's
/// `WEAVE_IMAGE`.
pub fn weave_image(lock: &crate::image_info::ImageLock) -> Option<String> {
    lock.image_reference(WEAVE_IMAGE_ARTIFACT)
}

/// Where the agent writes the CNI configuration kubelet (through containerd) uses for pods, relative to the root.
pub const WEAVE_CNI_CONFIG: &str = "etc/cni/net.d/10-weave.conflist";

/// The CNI configuration of Weave Net as weave-kube's init script writes it (the `weave-net` plugin, which the
/// image installs into /opt/cni/bin, with hairpin mode, chained with `portmap` for hostPort), so it is there before
/// kubelet starts and does not depend on the image's init step.
pub fn render_cni_config() -> String {
    "{\n    \"cniVersion\": \"0.3.0\",\n    \"name\": \"weave\",\n    \"plugins\": [\n        {\n            \"name\": \"weave\",\n            \"type\": \"weave-net\",\n            \"hairpinMode\": true\n        },\n        {\n            \"type\": \"portmap\",\n            \"capabilities\": {\"portMappings\": true},\n            \"snat\": true\n        }\n    ]\n}\n".to_string()
}

/// The contents of `/run/k8s-agent/weave.env` for a decision: systemd `EnvironmentFile=` syntax, the seeds'
/// MEMBERS and QUORUM as a comment for humans.
pub fn render_env(decision: &WeaveDecision) -> String {
    let n = decision.n;
    let listed = decision.decided_from.len();
    let role_lines = match (decision.ipalloc_init, decision.self_addr) {
        (IpallocInit::Consensus(_), Some(addr)) => format!(
            "# This node ({addr}) is in the consensus core: the record listed exactly {n} minions, itself among\n\
             # them. It votes once, with the peers below."
        ),
        (IpallocInit::Consensus(_), None) => format!(
            "# This node is in the consensus core of {n}: it votes once, with the peers below."
        ),
        (IpallocInit::Observer, Some(addr)) => format!(
            "# This node ({addr}) is a late joiner: the record listed {listed} minions, more than {n}.\n\
             # It observes (never votes) and takes the ring from the peers below."
        ),
        (IpallocInit::Observer, None) => format!(
            "# This node is a late joiner: it is not among the {listed} minions the record listed.\n\
             # It observes (never votes) and takes the ring from the peers below."
        ),
    };
    let role_lines = match &decision.after_reboot {
        Some(why) => format!("{role_lines}\n# After a reboot: {why}."),
        None => role_lines,
    };
    format!(
        "# Weave Net IPAM start-up, written by k8s-agent and read by weave.service. Do not edit: decided once at\n\
         # {at} (unix ms) from the minions DNS record and kept in /{kept} (README: Weave Net peers).\n\
         {role_lines}\n\
         # MEMBERS={n} QUORUM={quorum} (the seeds' names: WEAVE_CONSENSUS and floor({n}/2)+1)\n\
         IPALLOC_INIT={init}\n\
         KUBE_PEERS=\"{peers}\"\n\
         IPALLOC_RANGE={range}\n",
        at = decision.decided_at,
        kept = WEAVE_DECISION_FILE,
        quorum = n.quorum(),
        init = decision.ipalloc_init,
        peers = decision.peers,
        range = IPALLOC_RANGE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_decision_parses_back_and_refuses_what_k8s_agent_never_writes() {
        let d = decided(decide(
            n(3),
            &answer(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            &[ip("10.0.0.2")],
            7,
        ));
        let kept = KeptDecision::new("prod", &d);
        assert_eq!(KeptDecision::parse(&kept.render()), Ok(kept.clone()));
        let mut other = kept.clone();
        other.schema_version = 9;
        let err = KeptDecision::parse(&other.render()).expect_err("version");
        assert!(err.contains("format version 9"), "{err}");
        let mut short = kept.clone();
        short.decision.peers = WeavePeers::new(vec![v4("10.0.0.2")]);
        let err = KeptDecision::parse(&short.render()).expect_err("short core");
        assert!(
            err.contains("a core vote with 1 peers for WEAVE_CONSENSUS=3"),
            "{err}"
        );
        let err = KeptDecision::parse("[]").expect_err("garbage");
        assert!(err.starts_with("not a kept Weave decision"), "{err}");
    }

    #[test]
    fn after_a_reboot_a_node_votes_only_as_before() {
        let core = decided(decide(
            n(3),
            &answer(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            &[ip("10.0.0.2")],
            7,
        ));
        let kept = KeptDecision::new("prod", &core);
        match after_reboot(&kept, "prod", n(3), &[ip("10.0.0.2")]) {
            AfterReboot::VoteAgain(again) => {
                assert_eq!(
                    (again.ipalloc_init, &again.peers),
                    (core.ipalloc_init, &core.peers)
                );
                assert!(
                    again
                        .after_reboot
                        .is_some_and(|why| why.contains("the same vote again"))
                );
            }
            other => panic!("{other:?}"),
        }
        let AfterReboot::Observe(why) = after_reboot(&kept, "prod", n(5), &[ip("10.0.0.2")]) else {
            panic!("another N")
        };
        assert!(
            why.contains("WEAVE_CONSENSUS=3 and this one has 5"),
            "{why}"
        );
        let AfterReboot::Observe(why) = after_reboot(&kept, "prod", n(3), &[ip("10.0.0.9")]) else {
            panic!("another address")
        };
        assert!(why.contains("as 10.0.0.2, which is no longer"), "{why}");
        assert!(matches!(
            after_reboot(&kept, "staging", n(3), &[ip("10.0.0.2")]),
            AfterReboot::DecideAfresh(_)
        ));
        let observer = decided(decide(
            n(1),
            &answer(&["10.0.0.1", "10.0.0.2"]),
            &[ip("10.0.0.2")],
            7,
        ));
        let AfterReboot::Observe(_) = after_reboot(
            &KeptDecision::new("prod", &observer),
            "prod",
            n(1),
            &[ip("10.0.0.2")],
        ) else {
            panic!("an observer stays one")
        };
        let d = observe_after_reboot(n(1), &answer(&["10.0.0.2"]), &[ip("10.0.0.2")], 9, "why");
        assert_eq!(
            (d.is_core(), d.self_addr, d.after_reboot.as_deref()),
            (false, Some(v4("10.0.0.2")), Some("why"))
        );
        assert!(render_env(&d).contains("# After a reboot: why.\n"));
    }

    #[test]
    fn the_cni_config_is_json_naming_the_weave_plugin() {
        let v: serde_json::Value = serde_json::from_str(&render_cni_config()).expect("json");
        assert_eq!(v["name"], "weave");
        assert_eq!(v["plugins"][0]["type"], "weave-net");
        assert_eq!(v["plugins"][1]["type"], "portmap");
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn n(k: u32) -> ConsensusSize {
        ConsensusSize::new(k).unwrap_or_else(|e| panic!("{e}"))
    }

    fn answer(records: &[&str]) -> MinionAnswer {
        let records: Vec<IpAddr> = records.iter().map(|s| ip(s)).collect();
        validate_minion_answer(&records).unwrap_or_else(|e| panic!("{e}"))
    }

    fn decided(outcome: WeaveOutcome) -> WeaveDecision {
        match outcome {
            WeaveOutcome::Decided(d) => d,
            other => panic!("not decided: {other:?}"),
        }
    }

    #[test]
    fn quorum_is_floor_half_plus_one() {
        let quorums: Vec<u32> = (1..=6).map(|k| n(k).quorum()).collect();
        assert_eq!(quorums, vec![1, 2, 2, 3, 3, 4]);
        assert!(ConsensusSize::new(0).is_err() && ConsensusSize::new(1001).is_err());
    }

    #[test]
    fn validation_sorts_numerically_and_reports_what_it_drops() {
        let a = answer(&[
            "10.0.0.10",
            "10.0.0.9",
            "10.0.0.10",
            "fd00::1",
            "127.0.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "169.254.1.1",
            "10.0.0.100",
        ]);
        assert_eq!(
            a.addrs,
            vec![v4("10.0.0.9"), v4("10.0.0.10"), v4("10.0.0.100")]
        );
        assert_eq!(
            a.notes,
            vec![
                AnswerNote::Ipv6Ignored {
                    addr: "fd00::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
                },
                AnswerNote::Unusable {
                    addr: v4("0.0.0.0"),
                    why: "unspecified address".into()
                },
                AnswerNote::Duplicate {
                    addr: v4("10.0.0.10")
                },
                AnswerNote::Unusable {
                    addr: v4("127.0.0.1"),
                    why: "loopback address".into()
                },
                AnswerNote::Unusable {
                    addr: v4("169.254.1.1"),
                    why: "link-local address".into()
                },
                AnswerNote::Unusable {
                    addr: v4("224.0.0.1"),
                    why: "multicast address".into()
                },
                AnswerNote::Unusable {
                    addr: v4("255.255.255.255"),
                    why: "broadcast address".into()
                },
            ]
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        assert_eq!(
            answer(&["::ffff:10.0.0.1", "10.0.0.1"]).addrs,
            vec![v4("10.0.0.1")]
        );
    }

    #[test]
    fn too_many_records_are_rejected_as_a_whole() {
        let records: Vec<IpAddr> = (0..=MAX_MINION_RECORDS as u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
            .collect();
        assert_eq!(
            validate_minion_answer(&records),
            Err(MinionAnswerError::TooMany {
                count: 1001,
                max: 1000
            })
        );
        assert!(validate_minion_answer(&records[..MAX_MINION_RECORDS]).is_ok());
    }

    #[test]
    fn fewer_than_n_waits() {
        let a = answer(&["10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            decide(n(3), &a, &[ip("10.0.0.1")], 5),
            WeaveOutcome::NotEnoughMinions {
                listed: 2,
                need: n(3)
            }
        );
    }

    #[test]
    fn exactly_n_including_self_is_core() {
        let a = answer(&["10.0.0.3", "10.0.0.1", "10.0.0.2"]);
        let d = decided(decide(
            n(3),
            &a,
            &[ip("127.0.0.1"), ip("10.0.0.2"), ip("fe80::1")],
            7,
        ));
        assert_eq!(d.ipalloc_init, IpallocInit::Consensus(n(3)));
        assert_eq!(d.peers.to_string(), "10.0.0.1 10.0.0.2 10.0.0.3");
        assert_eq!(
            (d.self_addr, d.decided_at, d.quorum()),
            (Some(v4("10.0.0.2")), 7, 2)
        );
        assert!(d.is_core());
    }

    #[test]
    fn more_than_n_is_an_observer_even_for_a_low_address() {
        let a = answer(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
        let d = decided(decide(n(3), &a, &[ip("10.0.0.1")], 7));
        assert_eq!(d.ipalloc_init, IpallocInit::Observer);
        assert_eq!(d.peers.len(), 4);
    }

    #[test]
    fn exactly_n_without_self_is_an_observer() {
        let a = answer(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let d = decided(decide(n(3), &a, &[ip("10.0.0.9")], 7));
        assert_eq!((d.ipalloc_init, d.self_addr), (IpallocInit::Observer, None));
    }

    #[test]
    fn no_local_ipv4_means_no_decision() {
        let a = answer(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(
            decide(n(3), &a, &[ip("127.0.0.1"), ip("fd00::5")], 7),
            WeaveOutcome::NoLocalIpv4
        );
        // Fewer than N is reported first: nothing to decide yet either way.
        assert!(matches!(
            decide(n(4), &a, &[], 7),
            WeaveOutcome::NotEnoughMinions { .. }
        ));
    }

    #[test]
    fn ipalloc_init_round_trips() {
        for init in [IpallocInit::Observer, IpallocInit::Consensus(n(5))] {
            assert_eq!(IpallocInit::try_from(init.to_string()), Ok(init));
        }
        assert!(IpallocInit::try_from("seed=a".to_string()).is_err());
        assert!(IpallocInit::try_from("consensus=0".to_string()).is_err());
    }

    #[test]
    fn decision_serde_round_trip() {
        let a = answer(&["10.0.0.1", "10.0.0.2"]);
        let d = decided(decide(n(2), &a, &[ip("10.0.0.2")], 1));
        let json = serde_json::to_string(&d).unwrap_or_default();
        assert!(json.contains("\"ipalloc_init\":\"consensus=2\""), "{json}");
        assert_eq!(serde_json::from_str::<WeaveDecision>(&json).ok(), Some(d));
    }

    #[test]
    fn rendered_env_is_valid_environment_file_syntax() {
        let a = answer(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let d = decided(decide(n(3), &a, &[ip("10.0.0.1")], 1));
        let text = render_env(&d);
        let entries = crate::role_file::env_syntax::parse_env_file(&text).unwrap_or_default();
        let pairs: Vec<(String, String)> = entries.into_iter().map(|e| (e.key, e.value)).collect();
        assert_eq!(
            pairs,
            vec![
                ("IPALLOC_INIT".to_string(), "consensus=3".to_string()),
                (
                    "KUBE_PEERS".to_string(),
                    "10.0.0.1 10.0.0.2 10.0.0.3".to_string()
                ),
                ("IPALLOC_RANGE".to_string(), "10.32.0.0/12".to_string()),
            ]
        );
    }
}
