//! `k8s-agent` library: the pieces the on-host agent is made of, and what `imagebuilder` shares with it (the same
//! checks run on a staged tree).
//!
//! The agent is three crates: the decisions in `k8s-core` ([`k8s_core`], re-exported here as [`pure`]), the
//! rules over a file tree and the running kernel in `k8s-checks` ([`k8s_checks`], re-exported as [`checks`]), and
//! this crate — the edges, the executor and the CLI.
//!
//! | module | what is in it | touches the host or network? |
//! |---|---|---|
//! | [`pure`] (`k8s-core`) | decisions: the phase machine ([`plan`]), role-file parsing ([`role_file`]), the Weave rule ([`weave`]), which units belong to which role ([`node_role`]), PKI, kubeconfigs, metrics, the timeline, … | no: values in, values out; tested without a host |
//! | [`checks`] (`k8s-checks`) | the image's rules over a tree rooted at a directory, and the live-kernel rules | reads files under the root and `/proc`, `/sys`; writes nothing |
//! | [`edge`] | the seams to the world: the role file ([`edge::role_file`]), DNS ([`dns`]), the HTTPS probe ([`probe`]), systemd over D-Bus ([`systemd`]), being PID 1 ([`pid1`]), the clock ([`edge::clock`]) | yes: each is a thin adapter that turns I/O into the values `pure` decides on |
//! | [`executor`] | the one loop that carries out the plan's actions with the edges | yes, through the edges |
//! | [`status`] | the `status` printer (state, check results, units → text or JSON) | no |
//!
//! The old flat paths (`k8s_agent::plan`, `k8s_agent::dns`, `k8s_agent::image_info`, …) are re-exported, so
//! callers need not know the crate or the folder.

pub mod edge;
pub mod executor;
pub mod pure;
pub mod status;

pub use edge::{dns, pid1, probe, systemd};
pub use k8s_checks as checks;
pub use k8s_core::image_info;
pub use pure::{node_role, plan, role_file, weave};
