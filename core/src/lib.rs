//! `k8s-core`: the node's decisions, free of I/O. Every function here takes values (role file text, DNS answers,
//! probe outcomes, the clock as a number) and returns values (the next action, a rendered file, an error to show).
//! The agent (`k8s-agent`: edges, executor, CLI), the image builder, the checks (`k8s-checks`), the fleet
//! simulator and the fuzz targets all build on it; its dependency tree has no async runtime, no D-Bus, no resolver
//! and no HTTP client.
//!
//! | module | what is in it | touches the host or network? |
//! |---|---|---|
//! | [`plan`] | the phase machine: state, actions, observations, backoff | no |
//! | [`role_file`] | role-file parsing and checking (the file is read by the agent's `edge::role_file`) | no |
//! | [`weave`], [`pod_network`], [`pod_resolv`], [`advertise`], [`node_role`] | the Weave rule, the pod network, the resolver kubelet hands pods, the address to advertise, which units belong to which role | no |
//! | [`pki`], [`kubeconfig`], [`discovery`], [`join_objects`], [`addons`] | certificates and kubeconfigs rendered, the master's discovery answer checked, the API objects a master creates | no |
//! | [`health`], [`images`], [`dns_update`] | what health checks, image imports and DNS updates mean | no |
//! | [`metrics`], [`timeline`], [`redact`], [`utc`] | the metrics file rendered, the boot timeline, secrets redacted, instants as text | no |
//! | [`unit_state`] | a systemd unit's state as plain values | no |
//! | [`image_info`] | the image's lock and SBOM types | reads the lock file in [`image_info::ImageLock::read`] only |

pub mod addons;
pub mod advertise;
pub mod atomic_file;
pub mod discovery;
pub mod dns_update;
pub mod etcd_cluster;
pub mod health;
pub mod image_info;
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
pub mod unit_state;
pub mod utc;
pub mod weave;
