//! Which resolver configuration kubelet hands to pods — a pure decision, made from the text of the host's
//! `/etc/resolv.conf` and of systemd-resolved's upstream file.
//!
//! kubelet copies a resolver configuration (by default the host's `/etc/resolv.conf`) into pods that do not use the
//! cluster DNS (`dnsPolicy: Default`: CoreDNS itself, which forwards names outside the cluster to it) and takes the
//! search domains from it for the others. On a host running systemd-resolved — Debian 13's and Ubuntu's cloud images —
//! `/etc/resolv.conf` names only the stub `127.0.0.53`, which answers on the host's loopback and nowhere in a pod's
//! network namespace: CoreDNS's `forward . /etc/resolv.conf` then reaches nothing, and every name outside the
//! cluster fails in every pod. kubeadm sets `resolvConf: /run/systemd/resolve/resolv.conf` (resolved's list of the
//! real upstream servers) when systemd-resolved is active; the rule here looks at what the files say:
//!
//! 1. `/etc/resolv.conf` names a server that is not a loopback address → kubelet's default, nothing written;
//! 2. it names only loopback servers (or none: the C library then asks 127.0.0.1) and resolved's upstream file
//!    names a server that is not loopback → [`RESOLVED_UPSTREAM`], through the kubelet drop-in [`DROP_IN_FILE`];
//! 3. only loopback servers anywhere → kubelet's default, and the agent warns in the journal that pods will not
//!    resolve names outside the cluster.

use std::net::IpAddr;

/// systemd-resolved's file of the upstream servers it uses (not the stub).
pub const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// The kubelet configuration drop-in the agent writes for rule 2 (relative to the node root; kubelet reads
/// `--config-dir=/etc/kubernetes/kubelet/config.d`, in lexical order, so site drop-ins named later win).
pub const DROP_IN_FILE: &str = "etc/kubernetes/kubelet/config.d/10-k8s-agent-resolv-conf.conf";

/// What kubelet should hand to pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodResolvConf {
    /// Rule 1: the host's `/etc/resolv.conf` (kubelet's default) names these servers.
    Host(Vec<IpAddr>),
    /// Rule 2: resolved's upstream file, which names these servers.
    ResolvedUpstream(Vec<IpAddr>),
    /// Rule 3: no server a pod could reach.
    LoopbackOnly,
}

/// The `nameserver` addresses of a resolv.conf text, in order: lines that begin with the keyword (the C library
/// reads no other), addresses that parse (a zone suffix `%eth0` is dropped).
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("nameserver")?;
            if !rest.starts_with([' ', '\t']) {
                return None;
            }
            rest.split_whitespace()
                .next()?
                .split('%')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn reachable_from_pods(servers: &[IpAddr]) -> Vec<IpAddr> {
    servers
        .iter()
        .copied()
        .filter(|a| !a.is_loopback())
        .collect()
}

/// Applies the rule of the module documentation to the host's `/etc/resolv.conf` text and, when it exists,
/// resolved's upstream file's text.
pub fn choose(etc_resolv_conf: &str, resolved_upstream: Option<&str>) -> PodResolvConf {
    let host = nameservers(etc_resolv_conf);
    let reachable = reachable_from_pods(&host);
    if !reachable.is_empty() {
        return PodResolvConf::Host(host);
    }
    match resolved_upstream.map(|text| reachable_from_pods(&nameservers(text))) {
        Some(upstream) if !upstream.is_empty() => PodResolvConf::ResolvedUpstream(upstream),
        _ => PodResolvConf::LoopbackOnly,
    }
}

fn list(servers: &[IpAddr]) -> String {
    servers
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl PodResolvConf {
    /// The drop-in's content for rule 2; `None`: no drop-in (remove one left from an earlier boot).
    pub fn drop_in(&self) -> Option<String> {
        match self {
            PodResolvConf::ResolvedUpstream(_) => Some(format!(
                "# Written by k8s-agent at every boot: {}.\napiVersion: kubelet.config.k8s.io/v1beta1\n\
                 kind: KubeletConfiguration\nresolvConf: {RESOLVED_UPSTREAM}\n",
                self.describe()
            )),
            PodResolvConf::Host(_) | PodResolvConf::LoopbackOnly => None,
        }
    }

    /// One sentence for the journal.
    pub fn describe(&self) -> String {
        match self {
            PodResolvConf::Host(servers) => format!(
                "pods resolve through the host's /etc/resolv.conf ({})",
                list(servers)
            ),
            PodResolvConf::ResolvedUpstream(servers) => format!(
                "/etc/resolv.conf names only systemd-resolved's stub, which pods cannot reach: kubelet hands pods \
                 {RESOLVED_UPSTREAM} ({})",
                list(servers)
            ),
            PodResolvConf::LoopbackOnly => format!(
                "/etc/resolv.conf names only loopback servers and {RESOLVED_UPSTREAM} names no other: pods will not \
                 resolve names outside the cluster — hint: give the host a DNS server pods can reach"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUB: &str = "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n\
                        nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch ec2.internal\n";
    const UPSTREAM: &str =
        "# This is /run/systemd/resolve/resolv.conf\nnameserver 10.0.0.2\nsearch ec2.internal\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn a_host_with_a_real_server_keeps_kubelets_default() {
        let choice = choose("nameserver 10.79.0.1\n", Some(UPSTREAM));
        assert_eq!(choice, PodResolvConf::Host(vec![ip("10.79.0.1")]));
        assert_eq!(choice.drop_in(), None);
        // One reachable server among loopback ones is enough: pods use it.
        assert!(matches!(
            choose("nameserver 127.0.0.1\nnameserver 192.0.2.53\n", None),
            PodResolvConf::Host(_)
        ));
    }

    #[test]
    fn the_resolved_stub_switches_kubelet_to_the_upstream_file() {
        let choice = choose(STUB, Some(UPSTREAM));
        assert_eq!(
            choice,
            PodResolvConf::ResolvedUpstream(vec![ip("10.0.0.2")])
        );
        let drop_in = choice.drop_in().unwrap_or_default();
        assert!(drop_in.contains("kind: KubeletConfiguration\n"));
        assert!(drop_in.ends_with("resolvConf: /run/systemd/resolve/resolv.conf\n"));
        assert!(choice.describe().contains("10.0.0.2"));
    }

    #[test]
    fn loopback_everywhere_is_said_not_hidden() {
        for (etc, upstream) in [
            (STUB, None),
            (STUB, Some("nameserver 127.0.0.1\n")),
            ("", Some("")),
            ("nameserver ::1\n", None),
        ] {
            let choice = choose(etc, upstream);
            assert_eq!(choice, PodResolvConf::LoopbackOnly, "{etc:?} {upstream:?}");
            assert_eq!(choice.drop_in(), None);
            assert!(choice.describe().contains("will not resolve names outside"));
        }
    }

    #[test]
    fn nameserver_lines_parse_as_the_c_library_reads_them() {
        assert_eq!(
            nameservers(
                "# comment\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver not-an-ip\n\
                 nameserver\nnameservers 10.0.0.4\nsearch x\n  nameserver 10.0.0.5\nnameserver\t10.0.0.3\n"
            ),
            vec![ip("10.0.0.2"), ip("fe80::1"), ip("10.0.0.3")]
        );
    }
}
