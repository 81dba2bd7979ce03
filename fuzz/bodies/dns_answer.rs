//! The body of fuzz target `dns_answer`: what the agent does with DNS answers after the resolver — the minions answer's validation, the Weave
//! decision, and the phase machine fed the answer for masters and minions in the phases that consume them.
//! Input: a consensus size byte, then 4 bytes per IPv4 address / 16 per IPv6 (a selector bit per address).
//!
//! Shared by the fuzz binary (`fuzz/fuzz_targets/dns_answer.rs`) and the corpus replay of `cargo test`
//! (`imagebuilder/tests/fuzz_corpus_replay.rs`): one input, any bytes; a panic is a finding.
use k8s_core::plan::{AgentState, DnsQuery, DnsResult, Observation, next};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Run one input through what the target covers.
pub fn run(data: &[u8]) {
    let Some((&n, mut rest)) = data.split_first() else {
        return;
    };
    let mut addrs = Vec::new();
    while let Some((&kind, tail)) = rest.split_first() {
        if kind & 1 == 0 && tail.len() >= 4 {
            addrs.push(IpAddr::V4(Ipv4Addr::new(
                tail[0], tail[1], tail[2], tail[3],
            )));
            rest = &tail[4..];
        } else if tail.len() >= 16 {
            let mut b = [0u8; 16];
            b.copy_from_slice(&tail[..16]);
            addrs.push(IpAddr::V6(Ipv6Addr::from(b)));
            rest = &tail[16..];
        } else {
            break;
        }
    }
    if let Ok(answer) = k8s_core::weave::validate_minion_answer(&addrs)
        && let Ok(size) = k8s_core::weave::ConsensusSize::new(u32::from(n).max(1))
    {
        let local = addrs.first().copied().into_iter().collect::<Vec<_>>();
        let _ = k8s_core::weave::decide(size, &answer, &local, 1);
    }
    // The phase machine with the answer, whatever phase it is in (observations it does not expect are ignored).
    let state = AgentState::new(1_767_225_600_000);
    for query in [DnsQuery::Masters, DnsQuery::Minions] {
        let result = DnsResult::Answers {
            addrs: addrs.clone(),
            ttl_secs: u32::from(n),
        };
        let _ = next(
            &state,
            Observation::Dns { query, result },
            1_767_225_600_100,
            0.5,
        );
    }
}
