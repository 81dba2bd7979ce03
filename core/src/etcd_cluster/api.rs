//! The part of etcd's v3 API the agent speaks, as JSON through etcd's gRPC gateway on the client port
//! (`POST /v3/cluster/member/{list,add,promote,remove}`, `POST /v3/maintenance/status`). Pure: these are the serde
//! types of the bodies and the reading of etcd's error texts; `k8s_agent::edge::etcd` sends them.
//!
//! The gateway writes protojson with the proto field names (`UseProtoNames`) and leaves out empty fields, so a
//! voter has no `isLearner`, a member that never started has no `name`, and every `uint64` is a JSON string
//! (`"ID":"8543087242056840113"`). Measured on etcd 3.7.3 with client-certificate TLS:
//!
//! ```text
//! {"header":{"cluster_id":"18231534128738837284","member_id":"8543087242056840113","raft_term":"2"},
//!  "members":[{"ID":"8543087242056840113","name":"a","peerURLs":["https://127.0.0.1:22380"],
//!              "clientURLs":["https://127.0.0.1:22379"]}]}
//! {"code":9,"message":"etcdserver: too many learner members in cluster"}
//! ```

use serde::{Deserialize, Deserializer, Serialize};

/// A `uint64` as protojson writes it (a string), or as a plain number.
fn u64_text<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        N(u64),
    }
    match Text::deserialize(d)? {
        Text::N(n) => Ok(n),
        Text::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// The header of every answer: which cluster and which member answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Header {
    #[serde(default, deserialize_with = "u64_text")]
    pub cluster_id: u64,
    #[serde(default, deserialize_with = "u64_text")]
    pub member_id: u64,
    #[serde(default, deserialize_with = "u64_text")]
    pub raft_term: u64,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    #[serde(rename = "ID", deserialize_with = "u64_text")]
    pub id: u64,
    /// Empty for a member that was added and has not started yet.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

impl Member {
    /// Added, never started (no name yet).
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }
}

/// `member/list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MemberList {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub members: Vec<Member>,
}

impl MemberList {
    /// The member that answered (the header's member).
    pub fn answering(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.id == self.header.member_id)
    }
}

/// `member/add`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberAdded {
    #[serde(default)]
    pub header: Header,
    pub member: Member,
    #[serde(default)]
    pub members: Vec<Member>,
}

/// `maintenance/status` of one member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub header: Header,
    #[serde(default, deserialize_with = "u64_text")]
    pub leader: u64,
    #[serde(rename = "raftIndex", default, deserialize_with = "u64_text")]
    pub raft_index: u64,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
    #[serde(default)]
    pub errors: Vec<String>,
}

impl Status {
    /// This member is the raft leader.
    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.leader == self.header.member_id
    }
}

/// The gateway's error body (`{"code":9,"message":"etcdserver: …"}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub message: String,
}

/// What an error from etcd means to the agent (the texts are etcd's `rpctypes`, api/v3rpc/rpctypes/error.go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another learner is still joining (`--max-learners` is 1): try again shortly.
    TooManyLearners,
    /// The learner has not caught up with the leader yet (raft match under 90 %).
    LearnerNotInSync,
    /// Promote of a member that is a voter already: it was promoted.
    NotLearner,
    /// No such member (removed already).
    MemberNotFound,
    /// The change would leave too few started members (etcd's strict reconfiguration check).
    NotEnoughStartedMembers,
    /// A learner cannot answer this (sent to a learner).
    NotSupportedForLearner,
    /// The peer URL or ID is in the cluster already.
    AlreadyMember,
    /// Anything else, as etcd said it.
    Other(String),
}

impl Refusal {
    /// In words, for `status`.
    pub fn describe(&self) -> String {
        match self {
            Refusal::TooManyLearners => "etcd has a learner still joining (one at a time)".to_string(),
            Refusal::LearnerNotInSync => "the learner is not in sync with the leader yet".to_string(),
            Refusal::NotLearner => "the member is a voter already".to_string(),
            Refusal::MemberNotFound => "no such member (removed already)".to_string(),
            Refusal::NotEnoughStartedMembers => {
                "etcd refuses the change: a member added before has not started yet, or it would cost quorum"
                    .to_string()
            }
            Refusal::NotSupportedForLearner => "a learner cannot answer this".to_string(),
            Refusal::AlreadyMember => "the peer URL is a member already".to_string(),
            Refusal::Other(m) => m.clone(),
        }
    }

    /// Reads etcd's message.
    pub fn from_message(message: &str) -> Refusal {
        let m = message.to_ascii_lowercase();
        if m.contains("too many learner members") {
            Refusal::TooManyLearners
        } else if m.contains("in sync with leader") {
            Refusal::LearnerNotInSync
        } else if m.contains("can only promote a learner member") {
            Refusal::NotLearner
        } else if m.contains("member not found") {
            Refusal::MemberNotFound
        } else if m.contains("not enough started members") || m.contains("unhealthy cluster") {
            Refusal::NotEnoughStartedMembers
        } else if m.contains("not supported for learner") {
            Refusal::NotSupportedForLearner
        } else if m.contains("already exist") {
            Refusal::AlreadyMember
        } else {
            Refusal::Other(message.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_member_list_as_etcd_3_7_writes_it() {
        let text = r#"{"header":{"cluster_id":"18231534128738837284", "member_id":"8543087242056840113", "raft_term":"2"}, "members":[{"ID":"8543087242056840113", "name":"a", "peerURLs":["https://127.0.0.1:22380"], "clientURLs":["https://127.0.0.1:22379"]}, {"ID":"15381261644517990861", "peerURLs":["https://127.0.0.1:32380"], "isLearner":true}]}"#;
        let list: MemberList = serde_json::from_str(text).unwrap();
        assert_eq!(list.header.cluster_id, 18231534128738837284);
        assert_eq!(list.members.len(), 2);
        assert!(!list.members[0].is_learner && list.members[0].started());
        assert!(list.members[1].is_learner && !list.members[1].started());
        assert_eq!(list.answering().unwrap().name, "a");
    }

    #[test]
    fn reads_a_status_and_knows_the_leader() {
        let text = r#"{"header":{"cluster_id":"1", "member_id":"7", "revision":"1", "raft_term":"2"}, "version":"3.7.3", "leader":"7", "raftIndex":"4", "raftTerm":"2"}"#;
        let status: Status = serde_json::from_str(text).unwrap();
        assert!(status.is_leader());
        assert_eq!(status.raft_index, 4);
        assert!(!status.is_learner);
        let follower: Status =
            serde_json::from_str(r#"{"header":{"member_id":"8"},"leader":"7"}"#).unwrap();
        assert!(!follower.is_leader());
    }

    #[test]
    fn a_malformed_id_is_an_error_not_a_zero() {
        assert!(serde_json::from_str::<Member>(r#"{"ID":"x1"}"#).is_err());
        assert!(serde_json::from_str::<Member>(r#"{"name":"a"}"#).is_err());
    }

    #[test]
    fn reads_etcds_refusals() {
        for (text, want) in [
            (
                "etcdserver: too many learner members in cluster",
                Refusal::TooManyLearners,
            ),
            (
                "etcdserver: can only promote a learner member which is in sync with leader",
                Refusal::LearnerNotInSync,
            ),
            (
                "etcdserver: can only promote a learner member",
                Refusal::NotLearner,
            ),
            ("etcdserver: member not found", Refusal::MemberNotFound),
            (
                "etcdserver: re-configuration failed due to not enough started members",
                Refusal::NotEnoughStartedMembers,
            ),
            (
                "etcdserver: rpc not supported for learner",
                Refusal::NotSupportedForLearner,
            ),
            (
                "etcdserver: member ID already exist",
                Refusal::AlreadyMember,
            ),
            (
                "etcdserver: Peer URLs already exists",
                Refusal::AlreadyMember,
            ),
        ] {
            assert_eq!(Refusal::from_message(text), want, "{text}");
        }
        assert_eq!(Refusal::from_message("boom"), Refusal::Other("boom".into()));
    }
}
