//! Property-style tests of the Weave Net rule (`k8s_core::weave`): over many random clusters, boot orders,
//! polling schedules and messy DNS answers, no two nodes ever vote with different cores or different N, and
//! never more than N nodes vote. A small deterministic PRNG stands in for a property-testing crate.

use k8s_core::weave::{
    ConsensusSize, IpallocInit, MinionAnswer, WeaveDecision, WeaveOutcome, decide,
    validate_minion_answer,
};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// splitmix64: small, deterministic, good enough to explore schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.range(0, i);
            items.swap(i, j);
        }
    }
}

fn n(k: usize) -> ConsensusSize {
    ConsensusSize::new(k as u32).unwrap_or_else(|e| panic!("{e}"))
}

/// `count` distinct random node addresses in 10.0.0.0/16 (so later nodes often have lower addresses).
fn node_addrs(rng: &mut Rng, count: usize) -> Vec<Ipv4Addr> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < count {
        let addr = Ipv4Addr::new(10, 0, rng.range(0, 255) as u8, rng.range(1, 254) as u8);
        if seen.insert(addr) {
            out.push(addr);
        }
    }
    out
}

/// What DNS returns for a record set: any order, sometimes duplicates, an AAAA, loopback or unspecified noise.
fn messy_answer(rng: &mut Rng, record: &[Ipv4Addr]) -> MinionAnswer {
    let mut records: Vec<IpAddr> = record.iter().map(|a| IpAddr::V4(*a)).collect();
    for addr in record {
        if rng.chance(10) {
            records.push(IpAddr::V4(*addr));
        }
    }
    if rng.chance(20) {
        records.push(IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            0,
            0,
            0,
            rng.range(1, 9) as u16,
        )));
    }
    if rng.chance(10) {
        records.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if rng.chance(5) {
        records.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    rng.shuffle(&mut records);
    validate_minion_answer(&records).unwrap_or_else(|e| panic!("{e}"))
}

fn local(addr: Ipv4Addr) -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(addr),
        IpAddr::V4(Ipv4Addr::new(10, 32, 0, 1)),
    ]
}

/// The safety invariant: all voters use the same N and the same peers, and there are at most N of them.
fn assert_one_core(
    decisions: &[(Ipv4Addr, WeaveDecision)],
    n: ConsensusSize,
    context: &str,
) -> usize {
    let voters: Vec<&(Ipv4Addr, WeaveDecision)> =
        decisions.iter().filter(|(_, d)| d.is_core()).collect();
    let cores: BTreeSet<Vec<Ipv4Addr>> = voters
        .iter()
        .map(|(_, d)| d.peers.addrs().to_vec())
        .collect();
    let sizes: BTreeSet<String> = voters
        .iter()
        .map(|(_, d)| d.ipalloc_init.to_string())
        .collect();
    assert!(
        cores.len() <= 1,
        "{context}: voters disagree on the core: {cores:?}"
    );
    let expected = IpallocInit::Consensus(n).to_string();
    assert!(
        sizes.len() <= 1 && sizes.iter().all(|s| *s == expected),
        "{context}: {sizes:?}"
    );
    assert!(
        voters.len() <= n.get() as usize,
        "{context}: {} voters for N={n}",
        voters.len()
    );
    for (addr, d) in &voters {
        assert!(
            d.peers.addrs().contains(addr),
            "{context}: voter {addr} is not in its own core"
        );
        assert_eq!(d.peers.len(), n.get() as usize, "{context}");
    }
    voters.len()
}

/// The group comes up one instance at a time (the record only grows); each node's agent polls DNS on its own
/// random schedule (possibly before it is listed itself, possibly skipping steps) and decides on the first answer
/// with at least N addresses.
#[test]
fn growing_record_never_gives_two_cores() {
    let mut rng = Rng(0x5eed_0001);
    let mut trials_with_ring = 0;
    for trial in 0..3000 {
        let k = rng.range(1, 7);
        let size = n(k);
        let group = rng.range(k, k + 6);
        let addrs = node_addrs(&mut rng, group);
        let mut decisions = Vec::new();
        for (i, me) in addrs.iter().enumerate() {
            // The node's agent starts polling around the time it boots (up to 2 steps before it is listed).
            let mut step = rng.range(i.saturating_sub(1), i + 1);
            loop {
                let record = &addrs[..step.min(group)];
                let answer = messy_answer(&mut rng, record);
                match decide(size, &answer, &local(*me), step as u64) {
                    WeaveOutcome::Decided(d) => {
                        assert!(answer.addrs.len() >= k, "decided on fewer than N");
                        decisions.push((*me, d));
                        break;
                    }
                    WeaveOutcome::NotEnoughMinions { listed, .. } => assert!(listed < k),
                    WeaveOutcome::NoLocalIpv4 => panic!("the node has an address"),
                }
                assert!(step <= group, "trial {trial}: node {me} never decided");
                step += rng.range(1, 2);
            }
        }
        let context = format!("trial {trial} (N={k}, group {group})");
        let voters = assert_one_core(&decisions, size, &context);
        let core: BTreeSet<Ipv4Addr> = addrs[..k].iter().copied().collect();
        for (addr, d) in &decisions {
            if d.is_core() {
                assert_eq!(
                    d.peers.addrs().iter().copied().collect::<BTreeSet<_>>(),
                    core,
                    "{context}"
                );
            } else {
                assert!(
                    d.peers.len() > k || d.self_addr.is_none(),
                    "{context}: {addr} observes without reason"
                );
            }
        }
        if voters >= size.quorum() as usize {
            trials_with_ring += 1;
        }
        // Liveness when the group is created with N instances: every member votes.
        if group == k {
            assert_eq!(voters, k, "{context}: a group of exactly N must all vote");
        }
    }
    eprintln!("trials with a ring: {trials_with_ring} of 3000");
    // Most random schedules still seed a ring (the others stall, visibly, and never split).
    assert!(trials_with_ring > 1500, "{trials_with_ring}");
}

/// Once the core exists, nodes may see any superset of it (late joiners, any order, noise): every node that sees
/// exactly the core and is in it votes for it; everyone else observes. Two nodes never vote for different cores.
#[test]
fn supersets_of_the_core_agree() {
    let mut rng = Rng(0x5eed_0002);
    for trial in 0..2000 {
        let k = rng.range(1, 9);
        let size = n(k);
        let count = k + rng.range(1, 20);
        let all = node_addrs(&mut rng, count);
        let (core, extra) = all.split_at(k);
        let mut decisions = Vec::new();
        for _ in 0..12 {
            let mut view: Vec<Ipv4Addr> = core.to_vec();
            for addr in extra {
                if rng.chance(50) {
                    view.push(*addr);
                }
            }
            // The deciding node: any node of the view, or one not listed yet.
            let me = if rng.chance(90) {
                view[rng.range(0, view.len() - 1)]
            } else {
                Ipv4Addr::new(192, 168, 7, 7)
            };
            let answer = messy_answer(&mut rng, &view);
            let WeaveOutcome::Decided(d) = decide(size, &answer, &local(me), 0) else {
                panic!("trial {trial}: {k} or more addresses must decide");
            };
            let expect_core = view.len() == k && core.contains(&me);
            assert_eq!(
                d.is_core(),
                expect_core,
                "trial {trial}: view {} me {me}",
                view.len()
            );
            decisions.push((me, d));
        }
        // Several draws may pick the same node; the invariant is about distinct voters.
        decisions.sort_by_key(|(me, _)| *me);
        decisions.dedup_by_key(|(me, _)| *me);
        assert_one_core(&decisions, size, &format!("trial {trial}"));
    }
}

/// The same record set gives the same decision whatever order, duplicates or noise DNS adds.
#[test]
fn order_duplicates_and_noise_do_not_matter() {
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..1000 {
        let k = rng.range(1, 6);
        let count = k + rng.range(0, 3);
        let record = node_addrs(&mut rng, count);
        let me = record[rng.range(0, record.len() - 1)];
        let first = decide(n(k), &messy_answer(&mut rng, &record), &local(me), 42);
        for _ in 0..5 {
            assert_eq!(
                decide(n(k), &messy_answer(&mut rng, &record), &local(me), 42),
                first
            );
        }
    }
}

/// A core member dies before it voted and a replacement is listed: still at most N voters, all with N.
/// (After it voted, the replacement is an extra voter that finds ring holders; see the module doc.)
#[test]
fn a_core_member_dying_before_it_voted() {
    let mut rng = Rng(0x5eed_0004);
    for trial in 0..1000 {
        let k = rng.range(2, 7);
        let addrs = node_addrs(&mut rng, k + 1);
        let (core, replacement) = (&addrs[..k], addrs[k]);
        let dead = rng.range(0, k - 1);
        let mut decisions = Vec::new();
        // Some survivors decide on the original core, the others only after the dead one was replaced.
        let mut after: Vec<Ipv4Addr> = core
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != dead)
            .map(|(_, a)| *a)
            .collect();
        after.push(replacement);
        for (i, me) in core.iter().enumerate() {
            if i == dead {
                continue;
            }
            let view = if rng.chance(50) {
                core.to_vec()
            } else {
                after.clone()
            };
            if let WeaveOutcome::Decided(d) =
                decide(n(k), &messy_answer(&mut rng, &view), &local(*me), i as u64)
            {
                decisions.push((*me, d));
            }
        }
        if let WeaveOutcome::Decided(d) = decide(
            n(k),
            &messy_answer(&mut rng, &after),
            &local(replacement),
            99,
        ) {
            decisions.push((replacement, d));
        }
        let voters = decisions.iter().filter(|(_, d)| d.is_core()).count();
        assert!(voters <= k, "trial {trial}: {voters} voters for N={k}");
        assert!(
            decisions
                .iter()
                .filter(|(_, d)| d.is_core())
                .all(|(_, d)| d.ipalloc_init == IpallocInit::Consensus(n(k)))
        );
    }
}

/// Why N must not come from DNS: the seeds' rule (`MEMBERS = number of records`) gives two nodes two different
/// consensus sizes as soon as they boot at different times — and with N=1 a node seeds a ring on its own.
#[test]
fn the_seeds_rule_would_split() {
    let addrs: Vec<Ipv4Addr> = (1..=3).map(|i| Ipv4Addr::new(172, 20, 0, 60 + i)).collect();
    let seeds_members = |record: &[Ipv4Addr]| record.len();
    let node_a = seeds_members(&addrs[..1]);
    let node_b = seeds_members(&addrs[..3]);
    assert_ne!(node_a, node_b);
    assert_eq!(
        n(node_a).quorum(),
        1,
        "node A alone is a quorum: it seeds its own ring"
    );
    // The rule here, for the same two moments: A waits, B (once all three are listed) votes with N=3.
    let size = n(3);
    let early = validate_minion_answer(&[IpAddr::V4(addrs[0])]).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        decide(size, &early, &local(addrs[0]), 0),
        WeaveOutcome::NotEnoughMinions { listed: 1, .. }
    ));
    let full: Vec<IpAddr> = addrs.iter().map(|a| IpAddr::V4(*a)).collect();
    let full = validate_minion_answer(&full).unwrap_or_else(|e| panic!("{e}"));
    for me in &addrs {
        match decide(size, &full, &local(*me), 1) {
            WeaveOutcome::Decided(d) => assert_eq!(d.ipalloc_init, IpallocInit::Consensus(size)),
            other => panic!("{other:?}"),
        }
    }
}

/// Why the core is not "the N lowest addresses": a node that decides after a lower address joined would compute
/// another core and vote, a voter too many. Here it observes.
#[test]
fn a_late_lower_address_does_not_vote() {
    let size = n(3);
    let core = [
        Ipv4Addr::new(10, 0, 0, 20),
        Ipv4Addr::new(10, 0, 0, 21),
        Ipv4Addr::new(10, 0, 0, 22),
    ];
    let late = Ipv4Addr::new(10, 0, 0, 5);
    let mut record: Vec<IpAddr> = core.iter().map(|a| IpAddr::V4(*a)).collect();
    record.push(IpAddr::V4(late));
    let answer = validate_minion_answer(&record).unwrap_or_else(|e| panic!("{e}"));
    match decide(size, &answer, &local(late), 0) {
        WeaveOutcome::Decided(d) => assert_eq!(d.ipalloc_init, IpallocInit::Observer),
        other => panic!("{other:?}"),
    }
}

/// Minions reboot, in any order, while instances of the group die (the record shrinks). With the decision kept
/// across reboots (`after_reboot`, rule 5) every vote ever cast — on first boots and on reboots — is for the one
/// core, by its members only. Deciding afresh on every boot is not safe: the same schedules then give a second
/// voted set (an observer that reboots when the record lists exactly N, itself among them, votes for a new core).
#[test]
fn reboots_while_instances_die_never_give_a_second_vote() {
    use k8s_core::weave::{AfterReboot, KeptDecision, after_reboot, observe_after_reboot};
    use std::collections::BTreeMap;
    let mut rng = Rng(0x5eed_0007);
    let mut fresh_splits = 0;
    for trial in 0..2000 {
        let k = rng.range(1, 5);
        let size = n(k);
        let group = rng.range(k, k + 4);
        let addrs = node_addrs(&mut rng, group);
        let context = format!("trial {trial} (N={k}, group {group})");
        // First boots: the record grows one instance at a time; each listed node decides once it lists >= N.
        let mut kept: BTreeMap<Ipv4Addr, KeptDecision> = BTreeMap::new();
        let mut votes: BTreeSet<(Ipv4Addr, Vec<Ipv4Addr>)> = BTreeSet::new();
        let mut fresh_votes = BTreeSet::new();
        for listed in 1..=group {
            for me in &addrs[..listed] {
                if kept.contains_key(me) {
                    continue;
                }
                let answer = messy_answer(&mut rng, &addrs[..listed]);
                if let WeaveOutcome::Decided(d) = decide(size, &answer, &local(*me), 0) {
                    if d.is_core() {
                        votes.insert((*me, d.peers.addrs().to_vec()));
                        fresh_votes.insert(d.peers.addrs().to_vec());
                    }
                    kept.insert(*me, KeptDecision::new("prod", &d));
                }
            }
        }
        let core: Vec<Ipv4Addr> = {
            let mut c = addrs[..k].to_vec();
            c.sort();
            c
        };
        // Churn: instances die (leave the record) and survivors reboot, in random order.
        let mut alive: Vec<Ipv4Addr> = addrs.clone();
        for _ in 0..rng.range(1, 12) {
            if alive.len() > 1 && rng.chance(40) {
                let gone = rng.range(0, alive.len() - 1);
                alive.remove(gone);
                continue;
            }
            let me = alive[rng.range(0, alive.len() - 1)];
            let answer = messy_answer(&mut rng, &alive);
            // What deciding afresh would do (the rule without rule 5).
            if let WeaveOutcome::Decided(d) = decide(size, &answer, &local(me), 1)
                && d.is_core()
            {
                fresh_votes.insert(d.peers.addrs().to_vec());
            }
            let earlier = kept
                .get(&me)
                .cloned()
                .expect("every node decided on its first boot");
            let now = match after_reboot(&earlier, "prod", size, &local(me)) {
                AfterReboot::VoteAgain(d) => {
                    assert_eq!(d.peers, earlier.decision.peers, "{context}: a vote changed");
                    d
                }
                AfterReboot::Observe(why) => {
                    if answer.addrs.is_empty() {
                        continue;
                    }
                    observe_after_reboot(size, &answer, &local(me), 1, &why)
                }
                AfterReboot::DecideAfresh(why) => panic!("{context}: same cluster, yet {why}"),
            };
            if now.is_core() {
                votes.insert((me, now.peers.addrs().to_vec()));
            }
            kept.insert(me, KeptDecision::new("prod", &now));
        }
        let sets: BTreeSet<&Vec<Ipv4Addr>> = votes.iter().map(|(_, set)| set).collect();
        assert!(sets.len() <= 1, "{context}: votes for {sets:?}");
        for (voter, set) in &votes {
            assert_eq!(set, &core, "{context}: {voter} voted for another set");
            assert!(
                core.contains(voter),
                "{context}: {voter} is not in the core"
            );
        }
        if fresh_votes.len() > 1 {
            fresh_splits += 1;
        }
    }
    eprintln!("schedules where deciding afresh on reboot would vote twice: {fresh_splits} of 2000");
    assert!(
        fresh_splits > 0,
        "the schedules never test what rule 5 guards against"
    );
}
