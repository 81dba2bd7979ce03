//! Tests of the bootstrap rule, the environment files and the removal rule, including a simulation of random boot
//! schedules of three masters that must never make two clusters.

use super::api::{Header, Member, MemberList, Status};
use super::*;

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 79, 0, last])
}

fn member(id: u64, name: &str, addr: IpAddr, learner: bool) -> Member {
    Member {
        id,
        name: name.to_string(),
        peer_urls: vec![peer_url(addr)],
        client_urls: vec![client_url(addr)],
        is_learner: learner,
    }
}

fn list(cluster: u64, answering: u64, members: Vec<Member>) -> MemberList {
    MemberList {
        header: Header {
            cluster_id: cluster,
            member_id: answering,
            raft_term: 2,
        },
        members,
    }
}

fn status(cluster: u64, id: u64, leader: u64, learner: bool) -> Status {
    Status {
        header: Header {
            cluster_id: cluster,
            member_id: id,
            raft_term: 2,
        },
        leader,
        raft_index: 10,
        is_learner: learner,
        errors: vec![],
    }
}

fn view(own: u8, masters: &[u8], peers: Vec<PeerProbe>) -> EtcdView {
    EtcdView {
        own: ip(own),
        size: 3,
        has_data: false,
        local: None,
        local_ready: false,
        masters: masters.iter().map(|m| ip(*m)).collect(),
        peers,
    }
}

fn refused(last: u8) -> PeerProbe {
    PeerProbe {
        addr: ip(last),
        answer: PeerAnswer::Failed("connection refused".into()),
    }
}

#[test]
fn the_lowest_of_a_complete_view_bootstraps_and_the_others_wait_for_it() {
    let all = [10, 3, 4];
    assert_eq!(
        decide(&view(3, &all, vec![refused(10), refused(4)])),
        EtcdStep::Bootstrap
    );
    for own in [10, 4] {
        match decide(&view(own, &all, vec![refused(3)])) {
            EtcdStep::Wait { reason } => {
                assert!(reason.contains("waiting for 10.79.0.3"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_incomplete_view_or_one_without_this_master_only_waits() {
    match decide(&view(3, &[3, 4], vec![refused(4)])) {
        EtcdStep::Wait { reason } => assert!(reason.contains("2 of 3"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match decide(&view(3, &[4, 10, 11], vec![])) {
        EtcdStep::Wait { reason } => {
            assert!(reason.contains("not this master's 10.79.0.3"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    match decide(&view(3, &[3, 4, 10, 11], vec![])) {
        EtcdStep::Blocked { reason } => assert!(
            reason.contains("more than CONTROL_PLANE_SIZE=3"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_master_that_sees_members_joins_them_whatever_its_rank() {
    let running = PeerProbe {
        addr: ip(10),
        answer: PeerAnswer::Members(list(7, 1, vec![member(1, "master", ip(10), false)])),
    };
    // 10.79.0.3 is the lowest, but 10.79.0.10 already has a cluster: join it.
    assert_eq!(
        decide(&view(3, &[10, 3, 4], vec![running])),
        EtcdStep::AddLearner { via: ip(10) }
    );
}

#[test]
fn data_on_disk_restarts_and_two_cluster_ids_block() {
    let mut v = view(4, &[3, 4, 10], vec![refused(3)]);
    v.has_data = true;
    assert_eq!(decide(&v), EtcdStep::Restart);
    let a = PeerProbe {
        addr: ip(3),
        answer: PeerAnswer::Members(list(7, 1, vec![member(1, "a", ip(3), false)])),
    };
    let b = PeerProbe {
        addr: ip(10),
        answer: PeerAnswer::Members(list(8, 2, vec![member(2, "b", ip(10), false)])),
    };
    match decide(&view(4, &[3, 4, 10], vec![a.clone(), b])) {
        EtcdStep::Blocked { reason } => assert!(reason.contains("two etcd clusters"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Its own member in cluster 9, a peer in 7: blocked, not promoted.
    let mut mine = view(4, &[3, 4, 10], vec![a]);
    mine.local = Some(status(9, 5, 5, false));
    mine.local_ready = true;
    assert!(matches!(decide(&mine), EtcdStep::Blocked { .. }));
}

#[test]
fn a_master_removed_while_away_moves_its_data_aside_and_one_still_listed_restarts() {
    let voter = |members| PeerProbe {
        addr: ip(3),
        answer: PeerAnswer::Members(list(7, 1, members)),
    };
    let mut v = view(
        4,
        &[3, 4, 10],
        vec![voter(vec![
            member(1, "a", ip(3), false),
            member(3, "c", ip(10), false),
        ])],
    );
    v.has_data = true;
    match decide(&v) {
        EtcdStep::MoveDataAside { via, reason } => {
            assert_eq!(via, ip(3));
            assert!(
                reason.contains("no longer lists its peer URL https://10.79.0.4:2380"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    v.peers = vec![voter(vec![
        member(1, "a", ip(3), false),
        member(2, "b", ip(4), false),
    ])];
    assert_eq!(decide(&v), EtcdStep::Restart);
    // Nobody answers (a whole-cluster power cut): restart on the data, never move it.
    v.peers = vec![refused(3), refused(10)];
    assert_eq!(decide(&v), EtcdStep::Restart);
}

#[test]
fn a_removed_member_whose_etcd_runs_again_is_moved_aside_only_while_not_ready() {
    // Its etcd (member 5, cluster 7) answers on loopback for the moment systemd has it running again; the voter at
    // .3 lists members 1 and 3 only.
    let voter = PeerProbe {
        addr: ip(3),
        answer: PeerAnswer::Members(list(
            7,
            1,
            vec![member(1, "a", ip(3), false), member(3, "c", ip(10), false)],
        )),
    };
    let mut v = view(4, &[3, 4, 10], vec![voter.clone()]);
    v.has_data = true;
    v.local = Some(status(7, 5, 0, false));
    match decide(&v) {
        EtcdStep::MoveDataAside { via, reason } => {
            assert_eq!(via, ip(3));
            assert!(
                reason.contains("etcd member 5 runs on this master's data"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Ready (a leader, in quorum): never moved, whatever an answer says.
    v.local_ready = true;
    assert!(matches!(decide(&v), EtcdStep::Ready { .. }));
    // Still listed: wait for it to be ready.
    v.local_ready = false;
    v.peers = vec![PeerProbe {
        addr: ip(3),
        answer: PeerAnswer::Members(list(
            7,
            1,
            vec![member(1, "a", ip(3), false), member(5, "b", ip(4), false)],
        )),
    }];
    assert!(matches!(decide(&v), EtcdStep::Wait { .. }));
    // A learner that answers from another member's list is promoted through it, not moved.
    v.local = Some(status(7, 5, 0, true));
    v.peers = vec![PeerProbe {
        addr: ip(3),
        answer: PeerAnswer::Members(list(
            7,
            1,
            vec![member(1, "a", ip(3), false), member(5, "b", ip(4), true)],
        )),
    }];
    assert_eq!(decide(&v), EtcdStep::Promote { via: ip(3), id: 5 });
}

#[test]
fn data_is_moved_aside_only_when_a_linearizable_read_confirms_the_removal() {
    let mut v = view(
        4,
        &[3, 4, 10],
        vec![PeerProbe {
            addr: ip(3),
            answer: PeerAnswer::Members(list(7, 1, vec![member(1, "a", ip(3), false)])),
        }],
    );
    v.has_data = true;
    assert!(matches!(decide(&v), EtcdStep::MoveDataAside { .. }));
    // The leader's membership lists this master: the first answer was an old copy (the voter was catching up).
    let current = list(
        7,
        1,
        vec![member(1, "a", ip(3), false), member(2, "b", ip(4), false)],
    );
    assert!(!confirm_removed(&v, ip(3), current));
    // It does not list it: confirmed.
    let current = list(
        7,
        1,
        vec![member(1, "a", ip(3), false), member(3, "c", ip(10), false)],
    );
    assert!(confirm_removed(&v, ip(3), current.clone()));
    // Another cluster answering: not a confirmation (blocked instead).
    let other = list(8, 1, vec![member(1, "a", ip(3), false)]);
    assert!(!confirm_removed(&v, ip(3), other));
    // A learner's answer is no voter's word.
    let learner = list(7, 1, vec![member(1, "a", ip(3), true)]);
    assert!(!confirm_removed(&v, ip(3), learner));
    // The running-again case too (by member ID).
    v.local = Some(status(7, 5, 0, false));
    assert!(confirm_removed(&v, ip(3), current));
}

#[test]
fn an_unstarted_learner_starts_and_a_stale_member_is_removed_first() {
    let unstarted = Member {
        name: String::new(),
        ..member(2, "", ip(4), true)
    };
    let members = vec![member(1, "a", ip(3), false), unstarted];
    let p = PeerProbe {
        addr: ip(3),
        answer: PeerAnswer::Members(list(7, 1, members.clone())),
    };
    assert_eq!(
        decide(&view(4, &[3, 4, 10], vec![p])),
        EtcdStep::StartLearner {
            members: members.clone()
        }
    );
    assert_eq!(
        initial_cluster(&members, ip(4), "master3"),
        "a=https://10.79.0.3:2380,master3=https://10.79.0.4:2380"
    );
    let stale = PeerProbe {
        addr: ip(3),
        answer: PeerAnswer::Members(list(
            7,
            1,
            vec![member(1, "a", ip(3), false), member(9, "old", ip(4), false)],
        )),
    };
    assert_eq!(
        decide(&view(4, &[3, 4, 10], vec![stale])),
        EtcdStep::RemoveStale {
            via: ip(3),
            id: 9,
            name: "old".into()
        }
    );
}

#[test]
fn a_learner_is_promoted_through_a_voter_and_a_ready_voter_is_ready() {
    let voter = PeerProbe {
        addr: ip(3),
        answer: PeerAnswer::Members(list(
            7,
            1,
            vec![member(1, "a", ip(3), false), member(2, "b", ip(4), true)],
        )),
    };
    let mut v = view(4, &[3, 4, 10], vec![voter.clone()]);
    v.local = Some(status(7, 2, 1, true));
    assert_eq!(decide(&v), EtcdStep::Promote { via: ip(3), id: 2 });
    v.local = Some(status(7, 2, 1, false));
    assert!(matches!(decide(&v), EtcdStep::Wait { .. }));
    v.local_ready = true;
    assert_eq!(
        decide(&v),
        EtcdStep::Ready {
            member_id: 2,
            leader: false
        }
    );
    // A learner whose only answering peer is a learner itself waits.
    let mut lonely = view(4, &[3, 4, 10], vec![refused(3)]);
    lonely.local = Some(status(7, 2, 1, true));
    assert!(matches!(decide(&lonely), EtcdStep::Wait { .. }));
}

#[test]
fn the_env_files_name_tls_everywhere_and_the_state() {
    let env = render_etcd_env(ip(4), "master3", "local", &ClusterState::New);
    for line in [
        "ETCD_NAME=master3\n",
        "ETCD_INITIAL_CLUSTER=master3=https://10.79.0.4:2380\n",
        "ETCD_INITIAL_CLUSTER_STATE=new\n",
        "ETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:2379,https://10.79.0.4:2379\n",
        "ETCD_CLIENT_CERT_AUTH=true\n",
        "ETCD_PEER_CLIENT_CERT_AUTH=true\n",
        "ETCD_INITIAL_CLUSTER_TOKEN=k8s-local\n",
    ] {
        assert!(env.contains(line), "{line} in {env}");
    }
    let joined = render_etcd_env(
        ip(4),
        "master3",
        "local",
        &ClusterState::Existing {
            initial_cluster: "a=https://10.79.0.3:2380,master3=https://10.79.0.4:2380".into(),
        },
    );
    assert!(joined.contains("ETCD_INITIAL_CLUSTER_STATE=existing\n"));
    assert!(render_apiserver_etcd_env().contains("--etcd-servers=https://127.0.0.1:2379"));
    assert_eq!(
        peer_url("fd00::1".parse().unwrap()),
        "https://[fd00::1]:2380"
    );
}

fn membership_with(unreachable_since: Option<u64>, voters: usize) -> EtcdMembership {
    let mut members = vec![MemberView {
        id: "1".into(),
        name: "a".into(),
        peer_url: peer_url(ip(3)),
        learner: false,
        leader: true,
        healthy: true,
        unreachable_since: None,
        own: true,
    }];
    for i in 1..voters {
        members.push(MemberView {
            id: format!("{}", i + 1),
            name: format!("m{i}"),
            peer_url: peer_url(ip(3 + i as u8)),
            learner: false,
            leader: false,
            healthy: i != 1 || unreachable_since.is_none(),
            unreachable_since: if i == 1 { unreachable_since } else { None },
            own: false,
        });
    }
    EtcdMembership {
        leader: true,
        members,
        ..EtcdMembership::default()
    }
}

#[test]
fn only_the_leader_removes_and_only_after_the_grace() {
    let cp = ControlPlane {
        size: 3,
        ..ControlPlane::default()
    };
    let (none, note) = member_to_remove(&membership_with(Some(1000), 3), &cp, 1000 + 599);
    assert!(none.is_none());
    assert!(note.unwrap().contains("removes it after 600 s"));
    let (due, _) = member_to_remove(&membership_with(Some(1000), 3), &cp, 1000 + 600);
    assert_eq!(due.unwrap().name, "m1");
    // A replacement was promoted (4 voters): the short grace.
    let (due, _) = member_to_remove(&membership_with(Some(1000), 4), &cp, 1000 + 60);
    assert!(due.unwrap().reason.contains("ETCD_REPLACED_MEMBER_AFTER"));
    // Not the leader: nothing, ever.
    let mut follower = membership_with(Some(0), 3);
    follower.leader = false;
    assert_eq!(member_to_remove(&follower, &cp, 1_000_000), (None, None));
    // Everyone healthy: nothing.
    assert_eq!(
        member_to_remove(&membership_with(None, 3), &cp, 1_000_000),
        (None, None)
    );
}

#[test]
fn unreachable_since_carries_over_and_resets_when_a_member_answers() {
    let l = list(
        7,
        1,
        vec![member(1, "a", ip(3), false), member(2, "b", ip(4), false)],
    );
    let own = status(7, 1, 1, false);
    let down: BTreeMap<u64, bool> = [(1, true), (2, false)].into();
    let first = membership(&l, &own, &down, None, 100);
    assert_eq!(first.members[1].unreachable_since, Some(100));
    let later = membership(&l, &own, &down, Some(&first), 200);
    assert_eq!(later.members[1].unreachable_since, Some(100));
    let up: BTreeMap<u64, bool> = [(1, true), (2, true)].into();
    assert_eq!(
        membership(&l, &own, &up, Some(&later), 300).members[1].unreachable_since,
        None
    );
    assert!(first.leader && first.members[0].own && first.members[0].leader);
}

/// Random boot schedules of three masters: the masters record fills in any order, every master looks at any
/// moment and acts on [`decide`]; etcd answers only from masters whose member started. However the schedule goes,
/// one cluster is made and every master ends in it.
#[test]
fn random_boot_schedules_never_make_two_clusters() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let addrs = [ip(10), ip(3), ip(4)];
    let mut formed = 0;
    for _ in 0..2000 {
        // Per master: None (no member) or Some(cluster id); records published so far (in a random order).
        let mut cluster: [Option<u64>; 3] = [None; 3];
        let mut order: Vec<usize> = vec![0, 1, 2];
        for i in (1..3).rev() {
            order.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        let mut published = 0usize;
        let mut made = 0u64;
        for _ in 0..60 {
            if published < 3 && next() % 3 == 0 {
                published += 1;
            }
            let who = (next() % 3) as usize;
            // A resolver may still hand out an older, shorter answer.
            let seen = published.saturating_sub((next() % 2) as usize);
            let masters: Vec<IpAddr> = order[..seen].iter().map(|i| addrs[*i]).collect();
            let peers = (0..3)
                .filter(|i| *i != who)
                .map(|i| PeerProbe {
                    addr: addrs[i],
                    answer: match cluster[i] {
                        Some(c) => PeerAnswer::Members(list(
                            c,
                            i as u64 + 1,
                            vec![member(i as u64 + 1, "x", addrs[i], false)],
                        )),
                        None => PeerAnswer::Failed("refused".into()),
                    },
                })
                .collect();
            let v = EtcdView {
                own: addrs[who],
                size: 3,
                has_data: cluster[who].is_some(),
                local: cluster[who].map(|c| status(c, who as u64 + 1, who as u64 + 1, false)),
                local_ready: cluster[who].is_some(),
                masters,
                peers,
            };
            match decide(&v) {
                EtcdStep::Bootstrap => {
                    made += 1;
                    cluster[who] = Some(100 + made);
                }
                EtcdStep::AddLearner { via } => {
                    let from = addrs.iter().position(|a| *a == via).unwrap();
                    cluster[who] = cluster[from];
                }
                EtcdStep::Blocked { reason } => panic!("blocked: {reason}"),
                _ => {}
            }
        }
        assert!(made <= 1, "two clusters were bootstrapped");
        if cluster.iter().all(Option::is_some) {
            assert!(cluster.iter().all(|c| *c == cluster[0]));
            formed += 1;
        }
    }
    // The schedules do reach a whole cluster (the test is not vacuous).
    assert!(
        formed > 1000,
        "only {formed} of 2000 schedules formed a cluster"
    );
}
