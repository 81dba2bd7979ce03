//! etcd across the masters (`CONTROL_PLANE_SIZE` > 1): which master starts a new cluster, which joins as a
//! learner, when a learner is promoted, when a dead member is removed, and the environment files etcd and
//! kube-apiserver read. Pure: the executor gathers an [`EtcdView`] (its data directory, its own member's status,
//! the `masters.<cluster>.<domain>` answer and each other master's member list, `k8s_agent::edge::etcd`), asks
//! [`decide`] for the one next [`EtcdStep`], performs it and looks again.
//!
//! # The rule (first match wins)
//!
//! | what the master sees | step |
//! |---|---|
//! | its own member answers, not ready, and a voter of its cluster answers without its member ID | [`EtcdStep::MoveDataAside`]: removed while away (etcd exits when told, systemd starts it again) |
//! | its own member answers and is a learner | [`EtcdStep::Promote`] through a voter that answers (etcd refuses until the learner is in sync) |
//! | its own member answers, a voter, `/readyz` 200 | [`EtcdStep::Ready`]: the control plane may start |
//! | its own member answers, a voter, not ready | wait |
//! | another master answers with another `cluster_id` than its own member | [`EtcdStep::Blocked`] (two clusters: an operator must choose) |
//! | its data directory holds a WAL, and a voter answers without this master in its member list | [`EtcdStep::MoveDataAside`]: it was removed while away; stop etcd, keep the data under another name, join again — only once a linearizable read at that voter says so too ([`confirm_removed`]) |
//! | its data directory holds a WAL | [`EtcdStep::Restart`]: etcd reads its WAL and ignores the `initial-*` settings |
//! | masters answer with different `cluster_id`s | [`EtcdStep::Blocked`] |
//! | a master answers; its member list has this master's peer URL, never started | [`EtcdStep::StartLearner`] (an earlier add whose start was lost) |
//! | … has this peer URL with a name (an address reused by a replacement with an empty disk) | [`EtcdStep::RemoveStale`], then add |
//! | a master answers | [`EtcdStep::AddLearner`] through it, whatever the boot order |
//! | nobody answers; the masters record lists exactly `CONTROL_PLANE_SIZE` addresses, this one among them, and this one is the lowest (numeric, IPv4 before IPv6) | [`EtcdStep::Bootstrap`] |
//! | nobody answers, anything else | wait, saying for what |
//!
//! **Never two clusters at creation.** Only the lowest address of a *complete* view bootstraps. While exactly
//! `CONTROL_PLANE_SIZE` masters exist every complete view is the same set with one lowest member; every other
//! master either sees it answering (and joins) or waits. A partial DNS view (records still being added, an old TTL)
//! only delays. Joins are serialised by etcd itself (`--max-learners` 1: "too many learner members"). The one case
//! this cannot rule out is a master *replaced during the cluster's first bootstrap* (views {A,B,C} and {B,C,D});
//! a bootstrapper that later sees another `cluster_id` stops ([`EtcdStep::Blocked`]).
//!
//! # Removing a dead member ([`member_to_remove`])
//! Only the agent whose own member is the raft leader removes (one actor per term), one member per check, a voter
//! other than itself that has been unreachable (its client URL does not answer) for `ETCD_DEAD_MEMBER_AFTER`
//! (600 s), or for `ETCD_REPLACED_MEMBER_AFTER` (60 s) once more voters than `CONTROL_PLANE_SIZE` exist (a
//! replacement was promoted). The clock is the agent's state on this boot (`/run`): a whole-cluster power cut
//! starts it again. etcd's strict reconfiguration check refuses a removal that would break quorum.

pub mod api;
#[cfg(test)]
mod tests;

use api::{Member, MemberList, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// etcd's environment, written by the agent before it starts etcd (`EnvironmentFile=` of etcd.service; settings
/// from it override the unit's single-member defaults).
pub const ETCD_ENV_FILE: &str = "run/k8s-agent/etcd.env";
/// kube-apiserver's etcd flags (`$KUBE_APISERVER_ETCD` in kube-apiserver.service).
pub const APISERVER_ETCD_ENV_FILE: &str = "run/k8s-agent/apiserver-etcd.env";
/// etcd's data directory, relative to the node root.
pub const DATA_DIR: &str = "var/lib/etcd";
/// A member that has ever started has a WAL here.
pub const WAL_DIR: &str = "var/lib/etcd/member/wal";
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
/// etcd's health endpoint on the metrics listener: 200 means a voter in quorum (`non_learner`, a linearizable
/// read).
pub const READYZ_URL: &str = "http://127.0.0.1:2381/readyz";
pub const DEFAULT_DEAD_MEMBER_AFTER_SECS: u32 = 600;
pub const MIN_DEAD_MEMBER_AFTER_SECS: u32 = 120;
pub const DEFAULT_REPLACED_MEMBER_AFTER_SECS: u32 = 60;
pub const MIN_REPLACED_MEMBER_AFTER_SECS: u32 = 30;

/// The control plane a master belongs to (role file: `CONTROL_PLANE_SIZE`, `ETCD_DEAD_MEMBER_AFTER`,
/// `ETCD_REPLACED_MEMBER_AFTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlane {
    /// Voting etcd members: 1 (one master, etcd on loopback, today's layout) or 3, 5, 7.
    pub size: u32,
    pub dead_member_after_secs: u32,
    pub replaced_member_after_secs: u32,
}

impl Default for ControlPlane {
    fn default() -> ControlPlane {
        ControlPlane {
            size: 1,
            dead_member_after_secs: DEFAULT_DEAD_MEMBER_AFTER_SECS,
            replaced_member_after_secs: DEFAULT_REPLACED_MEMBER_AFTER_SECS,
        }
    }
}

impl ControlPlane {
    /// etcd across the masters over TLS (size > 1).
    pub fn is_ha(&self) -> bool {
        self.size > 1
    }
}

fn url(scheme: &str, addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{scheme}://{a}:{port}"),
        IpAddr::V6(a) => format!("{scheme}://[{a}]:{port}"),
    }
}

/// `https://<addr>:2380`.
pub fn peer_url(addr: IpAddr) -> String {
    url("https", addr, PEER_PORT)
}

/// `https://<addr>:2379`.
pub fn client_url(addr: IpAddr) -> String {
    url("https", addr, CLIENT_PORT)
}

/// What one other master's etcd said to `member/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAnswer {
    Members(MemberList),
    /// No answer (refused, timeout, TLS, an error body), in words.
    Failed(String),
}

/// One master address and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerProbe {
    pub addr: IpAddr,
    pub answer: PeerAnswer,
}

/// Everything [`decide`] looks at, gathered by the executor in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdView {
    /// This master's address (its peer URL is `https://<own>:2380`).
    pub own: IpAddr,
    pub size: u32,
    /// `/var/lib/etcd/member/wal` holds files.
    pub has_data: bool,
    /// This master's own member (`maintenance/status` over loopback), if it answers.
    pub local: Option<Status>,
    /// `GET /readyz` on the local metrics listener answered 200.
    pub local_ready: bool,
    /// The A records of `masters.<cluster>.<domain>` (empty: none yet).
    pub masters: Vec<IpAddr>,
    /// `member/list` at every other master address.
    pub peers: Vec<PeerProbe>,
}

/// The one next thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdStep {
    /// A voter in quorum: start the control plane.
    Ready { member_id: u64, leader: bool },
    /// Start etcd on the data it has.
    Restart,
    /// Start a new cluster with this master as its only member.
    Bootstrap,
    /// `member/add` this master as a learner at `via`, then start etcd joining the members the answer lists.
    AddLearner { via: IpAddr },
    /// This master is a learner that never started: start etcd joining `members`.
    StartLearner { members: Vec<Member> },
    /// A started member holds this master's peer URL, but this master has no data: remove it (at `via`) first.
    RemoveStale { via: IpAddr, id: u64, name: String },
    /// `member/promote` this master's learner `id` at the voter `via`.
    Promote { via: IpAddr, id: u64 },
    /// This master has data, but the cluster no longer lists it (it was removed while it was away): stop etcd and
    /// move its data aside (kept, never deleted); it then joins again as a new learner. `via` is the voter whose
    /// list said so; the executor asks it again with a linearizable read ([`confirm_removed`]) before it moves
    /// anything, since a voter that is itself catching up may answer from an old membership.
    MoveDataAside { via: IpAddr, reason: String },
    /// Nothing to do yet; the sentence says for what.
    Wait { reason: String },
    /// Only an operator can fix this.
    Blocked { reason: String },
}

/// Whether `linearizable`, the member list `via` gave to a linearizable read (the current membership, as its
/// leader has it), still says what made [`decide`] choose [`EtcdStep::MoveDataAside`]: the same cluster as `via`'s
/// first answer (and as its own member's, when that answers), and this master not in it. Only then is the data
/// moved aside.
pub fn confirm_removed(view: &EtcdView, via: IpAddr, linearizable: MemberList) -> bool {
    let same_cluster = answers(view)
        .iter()
        .any(|(addr, l)| *addr == via && l.header.cluster_id == linearizable.header.cluster_id);
    if !same_cluster {
        return false;
    }
    let again = EtcdView {
        peers: vec![PeerProbe {
            addr: via,
            answer: PeerAnswer::Members(linearizable),
        }],
        ..view.clone()
    };
    matches!(decide(&again), EtcdStep::MoveDataAside { via: v, .. } if v == via)
}

/// The lowest address, the one that bootstraps (numeric order, IPv4 before IPv6).
pub fn bootstrapper(masters: &[IpAddr]) -> Option<IpAddr> {
    masters.iter().min().copied()
}

fn answers(view: &EtcdView) -> Vec<(IpAddr, &MemberList)> {
    view.peers
        .iter()
        .filter(|p| p.addr != view.own)
        .filter_map(|p| match &p.answer {
            PeerAnswer::Members(list) => Some((p.addr, list)),
            PeerAnswer::Failed(_) => None,
        })
        .collect()
}

fn hex(id: u64) -> String {
    format!("{id:x}")
}

fn split_reason(a: (IpAddr, u64), b: (IpAddr, u64)) -> String {
    format!(
        "two etcd clusters: {} is in cluster {} and {} in cluster {}; nothing is started or changed. Keep the one \
         with the data you want, stop etcd on the other master, move its /var/lib/etcd aside and restart its agent",
        a.0,
        hex(a.1),
        b.0,
        hex(b.1)
    )
}

/// The rule of the module documentation.
pub fn decide(view: &EtcdView) -> EtcdStep {
    let peers = answers(view);
    if let Some(local) = &view.local {
        if let Some((addr, list)) = peers.iter().find(|(_, l)| {
            l.header.cluster_id != 0 && l.header.cluster_id != local.header.cluster_id
        }) {
            return EtcdStep::Blocked {
                reason: split_reason(
                    (view.own, local.header.cluster_id),
                    (*addr, list.header.cluster_id),
                ),
            };
        }
        let id = local.header.member_id;
        // Its etcd runs on old data while the cluster removed it (etcd exits once a peer tells it, and systemd
        // starts it again): a voter of this cluster that answers and does not list its member ID.
        if !view.local_ready
            && let Some((via, list)) = peers.iter().find(|(_, l)| {
                l.answering().is_some_and(|m| !m.is_learner)
                    && !l.members.iter().any(|m| m.id == id)
            })
        {
            return EtcdStep::MoveDataAside {
                via: *via,
                reason: format!(
                    "etcd member {} runs on this master's data, but {via} (cluster {}) no longer lists it: it was \
                     removed from the cluster while it was away",
                    hex(id),
                    hex(list.header.cluster_id)
                ),
            };
        }
        if local.is_learner {
            let voter = peers
                .iter()
                .find(|(_, list)| list.answering().is_some_and(|m| !m.is_learner));
            return match voter {
                Some((via, _)) => EtcdStep::Promote { via: *via, id },
                None => EtcdStep::Wait {
                    reason: format!(
                        "etcd member {} is a learner; no voting member answers to promote it",
                        hex(id)
                    ),
                },
            };
        }
        if view.local_ready {
            return EtcdStep::Ready {
                member_id: id,
                leader: local.is_leader(),
            };
        }
        return EtcdStep::Wait {
            reason: format!(
                "etcd member {} is a voter but not ready yet ({} not 200: no leader or no quorum)",
                hex(id),
                READYZ_URL
            ),
        };
    }
    if view.has_data {
        let own_url = peer_url(view.own);
        // A voter of this cluster answers and does not list this master: it was removed while away. (etcd itself
        // would stop with "the member has been permanently removed from the cluster", again and again.)
        if let Some((via, list)) = peers.iter().find(|(_, l)| {
            l.answering().is_some_and(|m| !m.is_learner)
                && !l.members.iter().any(|m| m.peer_urls.contains(&own_url))
        }) {
            return EtcdStep::MoveDataAside {
                via: *via,
                reason: format!(
                    "this master has etcd data, but {via} (cluster {}) no longer lists its peer URL {own_url}: it \
                     was removed from the cluster while it was away",
                    hex(list.header.cluster_id)
                ),
            };
        }
        return EtcdStep::Restart;
    }
    if let Some((first, rest)) = peers.split_first() {
        if let Some(other) = rest
            .iter()
            .find(|(_, l)| l.header.cluster_id != first.1.header.cluster_id)
        {
            return EtcdStep::Blocked {
                reason: split_reason(
                    (first.0, first.1.header.cluster_id),
                    (other.0, other.1.header.cluster_id),
                ),
            };
        }
        let (via, list) = *first;
        let own_url = peer_url(view.own);
        return match list.members.iter().find(|m| m.peer_urls.contains(&own_url)) {
            Some(m) if !m.started() => EtcdStep::StartLearner {
                members: list.members.clone(),
            },
            Some(m) => EtcdStep::RemoveStale {
                via,
                id: m.id,
                name: m.name.clone(),
            },
            None => EtcdStep::AddLearner { via },
        };
    }
    let listed = view.masters.len();
    let addrs = view
        .masters
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    if !view.masters.contains(&view.own) {
        return EtcdStep::Wait {
            reason: format!(
                "the masters record lists {listed} address(es) ({addrs}) but not this master's {}; etcd is \
                 bootstrapped or joined only once it does",
                view.own
            ),
        };
    }
    if listed < view.size as usize {
        return EtcdStep::Wait {
            reason: format!(
                "the masters record lists {listed} of {} masters ({addrs}) and no etcd answers; etcd is \
                 bootstrapped only with all {} in view",
                view.size, view.size
            ),
        };
    }
    if listed > view.size as usize {
        return EtcdStep::Blocked {
            reason: format!(
                "the masters record lists {listed} addresses ({addrs}), more than CONTROL_PLANE_SIZE={}, and no \
                 etcd answers: remove the addresses of masters that are gone from the record",
                view.size
            ),
        };
    }
    match bootstrapper(&view.masters) {
        Some(lowest) if lowest == view.own => EtcdStep::Bootstrap,
        Some(lowest) => EtcdStep::Wait {
            reason: format!(
                "waiting for {lowest} (the lowest address of the masters record) to bootstrap etcd; no etcd \
                 answers yet{}",
                view.peers
                    .iter()
                    .find(|p| p.addr == lowest)
                    .and_then(|p| match &p.answer {
                        PeerAnswer::Failed(why) => Some(format!(" ({lowest}: {why})")),
                        PeerAnswer::Members(_) => None,
                    })
                    .unwrap_or_default()
            ),
        },
        None => EtcdStep::Wait {
            reason: "the masters record is empty".to_string(),
        },
    }
}

/// `ETCD_INITIAL_CLUSTER` from a member list: `name=peerURL` for every peer URL; a member that never started is
/// named `this_name` when it is this master, else by its hex ID (as kubeadm does).
pub fn initial_cluster(members: &[Member], own: IpAddr, this_name: &str) -> String {
    let own_url = peer_url(own);
    let mut parts = Vec::new();
    for m in members {
        let mine = m.peer_urls.contains(&own_url);
        let name = if mine {
            this_name.to_string()
        } else if m.started() {
            m.name.clone()
        } else {
            hex(m.id)
        };
        for u in &m.peer_urls {
            parts.push(format!("{name}={u}"));
        }
    }
    parts.join(",")
}

/// How etcd starts: a new cluster, or joining/restarting an existing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing { initial_cluster: String },
}

/// The agent's etcd settings for an HA master ([`ETCD_ENV_FILE`]): TLS on client and peer listeners (mutual,
/// `etcd/ca`), clients on loopback and the master's address, metrics over plain HTTP on loopback only.
pub fn render_etcd_env(own: IpAddr, name: &str, cluster: &str, state: &ClusterState) -> String {
    let pki = "/etc/kubernetes/pki/etcd";
    let (initial, state_word) = match state {
        ClusterState::New => (format!("{name}={}", peer_url(own)), "new"),
        ClusterState::Existing { initial_cluster } => (initial_cluster.clone(), "existing"),
    };
    let lines = [
        ("ETCD_NAME", name.to_string()),
        ("ETCD_DATA_DIR", format!("/{DATA_DIR}")),
        (
            "ETCD_LISTEN_CLIENT_URLS",
            format!("https://127.0.0.1:{CLIENT_PORT},{}", client_url(own)),
        ),
        ("ETCD_ADVERTISE_CLIENT_URLS", client_url(own)),
        ("ETCD_LISTEN_PEER_URLS", peer_url(own)),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer_url(own)),
        ("ETCD_INITIAL_CLUSTER", initial),
        ("ETCD_INITIAL_CLUSTER_STATE", state_word.to_string()),
        ("ETCD_INITIAL_CLUSTER_TOKEN", format!("k8s-{cluster}")),
        ("ETCD_CERT_FILE", format!("{pki}/server.crt")),
        ("ETCD_KEY_FILE", format!("{pki}/server.key")),
        ("ETCD_TRUSTED_CA_FILE", format!("{pki}/ca.crt")),
        ("ETCD_CLIENT_CERT_AUTH", "true".to_string()),
        ("ETCD_PEER_CERT_FILE", format!("{pki}/peer.crt")),
        ("ETCD_PEER_KEY_FILE", format!("{pki}/peer.key")),
        ("ETCD_PEER_TRUSTED_CA_FILE", format!("{pki}/ca.crt")),
        ("ETCD_PEER_CLIENT_CERT_AUTH", "true".to_string()),
        (
            "ETCD_LISTEN_METRICS_URLS",
            "http://127.0.0.1:2381".to_string(),
        ),
    ];
    let mut out = format!(
        "# Written by k8s-agent: etcd member {name} of a control plane across the masters ({state_word}; \
         docs/agent.md \"HA control plane\").\n"
    );
    for (k, v) in lines {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

/// kube-apiserver's etcd flags for an HA master ([`APISERVER_ETCD_ENV_FILE`]): its own member over loopback,
/// TLS with its own client certificate.
pub fn render_apiserver_etcd_env() -> String {
    format!(
        "# Written by k8s-agent: kube-apiserver talks to this master's etcd member over TLS.\n\
         KUBE_APISERVER_ETCD=\"--etcd-servers=https://127.0.0.1:{CLIENT_PORT} \
         --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt \
         --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt \
         --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key\"\n"
    )
}

/// One member as the agent on a master sees it (status, metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    pub peer_url: String,
    pub learner: bool,
    pub leader: bool,
    /// Its client URL answered `maintenance/status` at the last check.
    pub healthy: bool,
    /// Unix seconds when it was first seen unreachable on this boot (`None`: reachable).
    #[serde(default)]
    pub unreachable_since: Option<u64>,
    /// This master's own member.
    #[serde(default)]
    pub own: bool,
}

/// A member this agent removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalRecord {
    pub id: String,
    pub name: String,
    pub peer_url: String,
    pub at_unix: u64,
    pub reason: String,
}

/// This master's etcd as last seen (status, metrics, state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdMembership {
    pub cluster_id: String,
    pub member_id: String,
    /// `bootstrap`, `join` or `restart`: how this master's member started on this boot.
    #[serde(default)]
    pub started_by: Option<String>,
    pub learner: bool,
    pub leader: bool,
    pub members: Vec<MemberView>,
    #[serde(default)]
    pub removals: Vec<RemovalRecord>,
    /// When the agent scheduled or refused a removal, why (the leader's master only).
    #[serde(default)]
    pub note: Option<String>,
    pub checked_at_unix: u64,
}

impl EtcdMembership {
    pub fn voters(&self) -> usize {
        self.members.iter().filter(|m| !m.learner).count()
    }
    pub fn healthy_voters(&self) -> usize {
        self.members
            .iter()
            .filter(|m| !m.learner && m.healthy)
            .count()
    }
}

/// Builds the view of the membership from a member list, each member's reachability, this member's status, and
/// the previous view (whose `unreachable_since` times carry over while a member stays unreachable).
pub fn membership(
    list: &MemberList,
    own: &Status,
    reachable: &BTreeMap<u64, bool>,
    previous: Option<&EtcdMembership>,
    now_unix: u64,
) -> EtcdMembership {
    let since = |id: &str| {
        previous
            .and_then(|p| p.members.iter().find(|m| m.id == id))
            .and_then(|m| m.unreachable_since)
    };
    let members = list
        .members
        .iter()
        .map(|m| {
            let id = hex(m.id);
            let healthy = reachable.get(&m.id).copied().unwrap_or(false);
            MemberView {
                name: if m.started() {
                    m.name.clone()
                } else {
                    "(not started)".to_string()
                },
                peer_url: m.peer_urls.first().cloned().unwrap_or_default(),
                learner: m.is_learner,
                leader: m.id == own.leader,
                healthy,
                unreachable_since: if healthy {
                    None
                } else {
                    Some(since(&id).unwrap_or(now_unix))
                },
                own: m.id == own.header.member_id,
                id,
            }
        })
        .collect();
    EtcdMembership {
        cluster_id: hex(own.header.cluster_id),
        member_id: hex(own.header.member_id),
        started_by: previous.and_then(|p| p.started_by.clone()),
        learner: own.is_learner,
        leader: own.is_leader(),
        members,
        removals: previous.map(|p| p.removals.clone()).unwrap_or_default(),
        note: None,
        checked_at_unix: now_unix,
    }
}

/// A removal [`member_to_remove`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub id: String,
    pub name: String,
    pub reason: String,
}

/// The removal rule of the module documentation; `None` with a note when a member is unreachable but not due.
pub fn member_to_remove(
    view: &EtcdMembership,
    control_plane: &ControlPlane,
    now_unix: u64,
) -> (Option<Removal>, Option<String>) {
    if !view.leader {
        return (None, None);
    }
    let voters = view.voters();
    let grace = if voters > control_plane.size as usize {
        (
            "ETCD_REPLACED_MEMBER_AFTER",
            control_plane.replaced_member_after_secs,
        )
    } else {
        (
            "ETCD_DEAD_MEMBER_AFTER",
            control_plane.dead_member_after_secs,
        )
    };
    let mut note = None;
    for m in view.members.iter().filter(|m| !m.learner && !m.own) {
        let Some(since) = m.unreachable_since else {
            continue;
        };
        let down = now_unix.saturating_sub(since);
        if down >= u64::from(grace.1) {
            return (
                Some(Removal {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    reason: format!(
                        "unreachable for {down} s ({}={} s; {voters} voters, CONTROL_PLANE_SIZE {})",
                        grace.0, grace.1, control_plane.size
                    ),
                }),
                None,
            );
        }
        note.get_or_insert(format!(
            "member {} ({}) unreachable for {down} s: this master (etcd leader) removes it after {} s unless it \
             answers ({}={})",
            m.name, m.peer_url, grace.1, grace.0, grace.1
        ));
    }
    (None, note)
}
