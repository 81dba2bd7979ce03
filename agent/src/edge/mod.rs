//! The agent's edges: thin adapters between the world (resolver, API server, systemd, the process table) and the
//! values the pure core ([`crate::pure`]) decides on. Each edge turns its I/O into an observation and never
//! decides what to do next.

pub mod bundle;
pub mod clock;
pub mod dns;
pub mod dns_update;
pub mod etcd;
pub mod health;
pub mod images;
pub mod join;
pub mod kube_api;
pub mod metrics;
pub mod pid1;
pub mod pki_files;
pub mod pod_network;
pub mod probe;
pub mod role_file;
pub mod systemd;
