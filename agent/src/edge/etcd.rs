//! etcd's v3 API over its JSON gateway (`POST https://<addr>:2379/v3/...`), as this master's
//! `etcd/healthcheck-client` (mutual TLS, verified against `etcd/ca`), and the one step
//! [`crate::pure::etcd_cluster::decide`] names, performed: write etcd's environment, start etcd.service, add or
//! promote a learner, remove a stale or dead member. The bodies are the serde types of
//! [`crate::pure::etcd_cluster::api`]; no decision is made here. Keys are read from files and never logged.

use crate::edge::kube_api::{Identity, KubeApi, KubeApiError, ServerTrust};
use crate::pure::atomic_file::atomic_write;
use crate::pure::etcd_cluster::api::{MemberAdded, MemberList, Refusal, Status};
use crate::pure::etcd_cluster::{
    self as etcd, EtcdMembership, EtcdStep, EtcdView, PeerAnswer, PeerProbe,
};
use crate::role_file::Secret;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const ETCD_CA: &str = "etc/kubernetes/pki/etcd/ca.crt";
pub const CLIENT_CRT: &str = "etc/kubernetes/pki/etcd/healthcheck-client.crt";
pub const CLIENT_KEY: &str = "etc/kubernetes/pki/etcd/healthcheck-client.key";
/// Every read of a member ends within this (a powered-off master must not stall a step).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A membership change goes through raft (a proposal, applied by a quorum): more time than a read.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call gave nothing to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// etcd answered with an error it names.
    Refused(Refusal),
    /// No usable answer (refused, timeout, TLS, a body that is not etcd's).
    Transport(String),
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtcdError::Refused(r) => f.write_str(&r.describe()),
            EtcdError::Transport(m) => f.write_str(m),
        }
    }
}

/// A client for the members of this control plane.
#[derive(Clone)]
pub struct EtcdClient {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Secret,
    timeout: Duration,
}

impl EtcdClient {
    /// Reads `etcd/ca.crt` and the healthcheck client's certificate and key under `root`.
    pub fn load(root: &Path, timeout: Duration) -> Result<EtcdClient, String> {
        let read =
            |p: &str| std::fs::read(root.join(p)).map_err(|e| format!("cannot read /{p}: {e}"));
        let key = String::from_utf8(read(CLIENT_KEY)?)
            .map_err(|_| format!("/{CLIENT_KEY} is not PEM text"))?;
        Ok(EtcdClient {
            ca: read(ETCD_CA)?,
            cert: read(CLIENT_CRT)?,
            key: Secret::new(key),
            timeout,
        })
    }

    fn api(&self, addr: IpAddr, timeout: Duration) -> Result<KubeApi, EtcdError> {
        KubeApi::new(
            &etcd::client_url(addr),
            &[],
            &ServerTrust::CaPem(self.ca.clone()),
            &Identity::ClientCertificate {
                cert_pem: self.cert.clone(),
                key_pem: self.key.clone(),
            },
            timeout,
        )
        .map_err(|e| EtcdError::Transport(e.to_string()))
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        addr: IpAddr,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, EtcdError> {
        let change = path.starts_with("/v3/cluster/member/") && path != "/v3/cluster/member/list";
        let timeout = if change {
            self.timeout.max(CHANGE_TIMEOUT)
        } else {
            self.timeout
        };
        let api = self.api(addr, timeout)?;
        match api.post(path, body.to_string().into_bytes()).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                EtcdError::Transport(format!(
                    "{}{path}: not etcd's answer ({e})",
                    etcd::client_url(addr)
                ))
            }),
            Err(KubeApiError::Status { message, .. }) if !message.is_empty() => {
                Err(EtcdError::Refused(Refusal::from_message(&message)))
            }
            Err(e) => Err(EtcdError::Transport(e.to_string())),
        }
    }

    pub async fn member_list(&self, addr: IpAddr) -> Result<MemberList, EtcdError> {
        self.call(addr, "/v3/cluster/member/list", serde_json::json!({}))
            .await
    }

    /// `member/list` as a linearizable read: the membership as the cluster's leader has it now (fails without a
    /// leader), not the answering member's possibly older copy.
    pub async fn member_list_linearizable(&self, addr: IpAddr) -> Result<MemberList, EtcdError> {
        self.call(
            addr,
            "/v3/cluster/member/list",
            serde_json::json!({ "linearizable": true }),
        )
        .await
    }

    pub async fn status(&self, addr: IpAddr) -> Result<Status, EtcdError> {
        self.call(addr, "/v3/maintenance/status", serde_json::json!({}))
            .await
    }

    pub async fn add_learner(
        &self,
        addr: IpAddr,
        peer_url: &str,
    ) -> Result<MemberAdded, EtcdError> {
        self.call(
            addr,
            "/v3/cluster/member/add",
            serde_json::json!({ "peerURLs": [peer_url], "isLearner": true }),
        )
        .await
    }

    pub async fn promote(&self, addr: IpAddr, id: u64) -> Result<(), EtcdError> {
        self.call::<serde_json::Value>(
            addr,
            "/v3/cluster/member/promote",
            serde_json::json!({ "ID": id.to_string() }),
        )
        .await
        .map(|_| ())
    }

    pub async fn remove(&self, addr: IpAddr, id: u64) -> Result<(), EtcdError> {
        self.call::<serde_json::Value>(
            addr,
            "/v3/cluster/member/remove",
            serde_json::json!({ "ID": id.to_string() }),
        )
        .await
        .map(|_| ())
    }
}

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// `GET` etcd's `/readyz` on the local metrics listener: 200.
pub async fn local_ready(timeout: Duration) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
    else {
        return false;
    };
    matches!(client.get(etcd::READYZ_URL).send().await, Ok(r) if r.status().as_u16() == 200)
}

/// `member/list` at every address, at the same time.
pub async fn probe_peers(client: &EtcdClient, addrs: &[IpAddr]) -> Vec<PeerProbe> {
    let client = Arc::new(client.clone());
    let mut set = tokio::task::JoinSet::new();
    for (i, addr) in addrs.iter().copied().enumerate() {
        let client = client.clone();
        set.spawn(async move { (i, addr, client.member_list(addr).await) });
    }
    let mut out: Vec<(usize, PeerProbe)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, addr, result)) = joined {
            let answer = match result {
                Ok(list) => PeerAnswer::Members(list),
                Err(e) => PeerAnswer::Failed(e.to_string()),
            };
            out.push((i, PeerProbe { addr, answer }));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, p)| p).collect()
}

/// The WAL directory holds files: this member has started before.
pub fn has_data(root: &Path) -> bool {
    std::fs::read_dir(root.join(etcd::WAL_DIR)).is_ok_and(|mut d| d.next().is_some())
}

/// Writes etcd's environment and kube-apiserver's etcd flags (atomically).
pub fn write_env(root: &Path, etcd_env: &str) -> Result<(), String> {
    for (path, text) in [
        (etcd::ETCD_ENV_FILE, etcd_env.to_string()),
        (
            etcd::APISERVER_ETCD_ENV_FILE,
            etcd::render_apiserver_etcd_env(),
        ),
    ] {
        atomic_write(&root.join(path), text.as_bytes(), 0o644)
            .map_err(|e| format!("cannot write /{path}: {e}"))?;
    }
    Ok(())
}

/// Looks at etcd as [`EtcdView`] says (the masters' addresses resolved by the caller).
pub async fn look(
    root: &Path,
    client: &EtcdClient,
    own: IpAddr,
    size: u32,
    masters: Vec<IpAddr>,
) -> EtcdView {
    let local = client.status(LOOPBACK).await.ok();
    let local_ready = match local {
        Some(_) => local_ready(client.timeout).await,
        None => false,
    };
    let others: Vec<IpAddr> = masters.iter().copied().filter(|a| *a != own).collect();
    let peers = probe_peers(client, &others).await;
    EtcdView {
        own,
        size,
        has_data: has_data(root),
        local,
        local_ready,
        masters,
        peers,
    }
}

/// The membership as this master sees it now: the list and status from its own member, and whether each member's
/// client URL answers.
pub async fn membership(
    client: &EtcdClient,
    previous: Option<&EtcdMembership>,
    now_unix: u64,
) -> Result<EtcdMembership, EtcdError> {
    let list = client.member_list(LOOPBACK).await?;
    let own = client.status(LOOPBACK).await?;
    let mut reachable = BTreeMap::new();
    for m in &list.members {
        let ok = if m.id == own.header.member_id {
            true
        } else {
            match m.client_urls.first().and_then(|u| host_of(u)) {
                Some(addr) => client.status(addr).await.is_ok(),
                None => false,
            }
        };
        reachable.insert(m.id, ok);
    }
    Ok(etcd::membership(
        &list, &own, &reachable, previous, now_unix,
    ))
}

fn host_of(url: &str) -> Option<IpAddr> {
    let rest = url.strip_prefix("https://")?;
    let host = rest.rsplit_once(':')?.0;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The dead-member rule, applied by the etcd leader's master: removes at most one member and records it.
pub async fn remove_dead(
    client: &EtcdClient,
    mut view: EtcdMembership,
    control_plane: &etcd::ControlPlane,
    now_unix: u64,
) -> EtcdMembership {
    let (removal, note) = etcd::member_to_remove(&view, control_plane, now_unix);
    view.note = note;
    let Some(removal) = removal else {
        return view;
    };
    let Ok(id) = u64::from_str_radix(&removal.id, 16) else {
        return view;
    };
    match client.remove(LOOPBACK, id).await {
        Ok(()) => {
            tracing::warn!(member = %removal.name, id = %removal.id, reason = %removal.reason, "removed a dead etcd member");
            let peer_url = view
                .members
                .iter()
                .find(|m| m.id == removal.id)
                .map(|m| m.peer_url.clone())
                .unwrap_or_default();
            view.members.retain(|m| m.id != removal.id);
            view.removals.push(etcd::RemovalRecord {
                id: removal.id,
                name: removal.name,
                peer_url,
                at_unix: now_unix,
                reason: removal.reason,
            });
        }
        Err(e) => {
            view.note = Some(format!(
                "removing member {} ({}) was refused: {e}",
                removal.name, removal.reason
            ));
        }
    }
    view
}

/// The actions a step needs from the host, besides etcd's API (starting etcd.service).
pub trait StartEtcd {
    fn start_etcd(&self) -> impl std::future::Future<Output = Result<(), String>>;
    fn stop_etcd(&self) -> impl std::future::Future<Output = Result<(), String>>;
}

/// Stops etcd and renames its data directory to `/var/lib/etcd.removed-<unix seconds>` (never deletes it).
async fn move_data_aside<S: StartEtcd>(
    root: &Path,
    starter: &S,
    now_unix: u64,
) -> Result<String, String> {
    starter.stop_etcd().await?;
    let from = root.join(etcd::DATA_DIR);
    let to = root.join(format!("{}.removed-{now_unix}", etcd::DATA_DIR));
    std::fs::rename(&from, &to)
        .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))?;
    Ok(format!("/{}.removed-{now_unix}", etcd::DATA_DIR))
}

/// Performs `step` (the decision for `view`); returns what happened in words, for the phase machine.
#[allow(clippy::too_many_arguments)]
pub async fn perform<S: StartEtcd>(
    root: &Path,
    client: &EtcdClient,
    starter: &S,
    view: &EtcdView,
    step: EtcdStep,
    name: &str,
    cluster: &str,
    now_unix: u64,
) -> crate::plan::EtcdProgress {
    use crate::plan::EtcdProgress as P;
    let own = view.own;
    let start = |state: etcd::ClusterState, what: String, how: &'static str| async move {
        if let Err(e) = write_env(root, &etcd::render_etcd_env(own, name, cluster, &state)) {
            return P::Error { reason: e };
        }
        match starter.start_etcd().await {
            Ok(()) => P::Acted {
                what,
                started_by: Some(how.to_string()),
            },
            Err(e) => P::Waiting {
                reason: format!("{what}; etcd.service has not started yet: {e}"),
            },
        }
    };
    match step {
        EtcdStep::Ready { .. } => {
            // kube-apiserver's flags, in case an earlier boot's file is gone (/run is fresh every boot).
            if let Err(e) = atomic_write(
                &root.join(etcd::APISERVER_ETCD_ENV_FILE),
                etcd::render_apiserver_etcd_env().as_bytes(),
                0o644,
            ) {
                return P::Error {
                    reason: format!("cannot write /{}: {e}", etcd::APISERVER_ETCD_ENV_FILE),
                };
            }
            match membership(client, None, now_unix).await {
                Ok(membership) => P::Ready { membership },
                Err(e) => P::Waiting {
                    reason: format!("the member list could not be read: {e}"),
                },
            }
        }
        EtcdStep::Restart => {
            let state = etcd::ClusterState::Existing {
                initial_cluster: format!("{name}={}", etcd::peer_url(own)),
            };
            start(
                state,
                "started etcd on the data it has".to_string(),
                "restart",
            )
            .await
        }
        EtcdStep::Bootstrap => {
            start(
                etcd::ClusterState::New,
                format!(
                    "bootstrapped a new etcd cluster (lowest of {} masters)",
                    view.masters.len()
                ),
                "bootstrap",
            )
            .await
        }
        EtcdStep::AddLearner { via } => match client.add_learner(via, &etcd::peer_url(own)).await {
            Ok(added) => {
                let initial = etcd::initial_cluster(&added.members, own, name);
                start(
                    etcd::ClusterState::Existing {
                        initial_cluster: initial,
                    },
                    format!("added as learner {:x} through {via}", added.member.id),
                    "join",
                )
                .await
            }
            Err(EtcdError::Refused(
                refusal @ (Refusal::TooManyLearners | Refusal::NotEnoughStartedMembers),
            )) => P::Waiting {
                reason: format!(
                    "another master is joining etcd now ({via}: {}); trying again",
                    refusal.describe()
                ),
            },
            Err(EtcdError::Refused(Refusal::AlreadyMember)) => P::Acted {
                what: format!("{via}: this peer URL is a member already; looking again"),
                started_by: None,
            },
            Err(e) => P::Error {
                reason: format!("adding this master as a learner through {via}: {e}"),
            },
        },
        EtcdStep::StartLearner { members } => {
            let initial = etcd::initial_cluster(&members, own, name);
            start(
                etcd::ClusterState::Existing {
                    initial_cluster: initial,
                },
                "started etcd as the learner added before".to_string(),
                "join",
            )
            .await
        }
        EtcdStep::RemoveStale {
            via,
            id,
            name: stale,
        } => match client.remove(via, id).await {
            Ok(()) | Err(EtcdError::Refused(Refusal::MemberNotFound)) => P::Acted {
                what: format!(
                    "removed member {stale} ({id:x}), which held this master's peer URL without its data"
                ),
                started_by: None,
            },
            Err(e) => P::Error {
                reason: format!("removing the stale member {stale} ({id:x}) through {via}: {e}"),
            },
        },
        EtcdStep::Promote { via, id } => match client.promote(via, id).await {
            Ok(()) | Err(EtcdError::Refused(Refusal::NotLearner)) => P::Acted {
                what: format!("learner {id:x} promoted to voter"),
                started_by: None,
            },
            Err(EtcdError::Refused(Refusal::LearnerNotInSync)) => P::Waiting {
                reason: format!(
                    "learner {id:x} is catching up with the leader (raft index {}); promoted once in sync",
                    view.local.as_ref().map(|s| s.raft_index).unwrap_or(0)
                ),
            },
            Err(e) => P::Error {
                reason: format!("promoting learner {id:x} through {via}: {e}"),
            },
        },
        EtcdStep::MoveDataAside { via, reason } => {
            match client.member_list_linearizable(via).await {
                Ok(list) if etcd::confirm_removed(view, via, list.clone()) => {}
                Ok(_) => {
                    return P::Waiting {
                        reason: format!(
                            "{reason} — but a linearizable read at {via} lists it (that answer was old): data kept, \
                             looking again"
                        ),
                    };
                }
                Err(e) => {
                    return P::Waiting {
                        reason: format!(
                            "{reason} — not confirmed by a linearizable read at {via} ({e}): data kept, looking again"
                        ),
                    };
                }
            }
            match move_data_aside(root, starter, now_unix).await {
                Ok(kept) => {
                    tracing::warn!(%reason, %kept, "etcd data moved aside");
                    P::Acted {
                        what: format!(
                            "{reason}; its data moved to {kept}, joining again as a new member"
                        ),
                        started_by: None,
                    }
                }
                Err(e) => P::Error {
                    reason: format!("{reason}; moving its data aside failed: {e}"),
                },
            }
        }
        EtcdStep::Wait { reason } => P::Waiting { reason },
        EtcdStep::Blocked { reason } => P::Blocked { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_client_urls() {
        assert_eq!(
            host_of("https://10.0.0.3:2379"),
            Some("10.0.0.3".parse().unwrap())
        );
        assert_eq!(
            host_of("https://[fd00::3]:2379"),
            Some("fd00::3".parse().unwrap())
        );
        assert_eq!(host_of("http://10.0.0.3:2379"), None);
    }
}
