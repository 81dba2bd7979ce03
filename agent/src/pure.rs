//! The agent's decisions, free of I/O: the `k8s-core` crate ([`k8s_core`]), re-exported here under the paths the
//! agent has always used (`crate::pure::plan`, …). Nothing in it opens a file, a socket or a bus; the edges
//! ([`crate::edge`]) and the executor do.

pub use k8s_core::{
    addons, advertise, atomic_file, discovery, dns_update, etcd_cluster, health, images,
    join_objects, kubeconfig, metrics, node_role, pki, plan, pod_network, pod_resolv, redact,
    role_file, timeline, unit_state, utc, weave,
};
