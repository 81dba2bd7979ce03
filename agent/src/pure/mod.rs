//! The agent's decisions, free of I/O: every function here takes values (role file text, DNS answers, probe
//! outcomes, the clock as a number) and returns values (the next action, a rendered file, an error to show).
//! Nothing in this folder opens a file, a socket or a bus; the edges ([`crate::edge`]) and the executor do.

pub mod addons;
pub mod advertise;
pub mod discovery;
pub mod dns_update;
pub mod health;
pub mod images;
pub mod join_objects;
pub mod kubeconfig;
pub mod metrics;
pub mod node_role;
pub mod pki;
pub mod plan;
pub mod pod_network;
pub mod pod_resolv;
pub mod redact;
pub mod role_file;
pub mod timeline;
pub mod utc;
pub mod weave;
