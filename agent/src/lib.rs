//! `k8s-agent` library: the pieces the on-host agent is made of, and what `imagebuilder` shares with it (the same
//! checks run on a staged tree).
//!
//! The folders say what the code is:
//!
//! | folder | what is in it | touches the host or network? |
//! |---|---|---|
//! | [`pure`] | decisions: the phase machine ([`plan`]), role files ([`role_file`]), the Weave rule ([`weave`]), which units belong to which role ([`node_role`]) | no: values in, values out; tested without a host |
//! | [`edge`] | the seams to the world: DNS ([`dns`]), the HTTPS probe ([`probe`]), systemd over D-Bus ([`systemd`]), being PID 1 ([`pid1`]) | yes: each is a thin adapter that turns I/O into the values `pure` decides on |
//! | top level | [`executor`] (the one loop that carries out the plan's actions with the edges), [`checks`] (rules over a file tree and the live host), [`status`] (the printer), [`image_info`] (the image's lock), the CLI | the executor and checks read and write; the printer does not |
//!
//! The old flat paths (`k8s_agent::plan`, `k8s_agent::dns`, …) are re-exported, so callers need not know the folder.

pub mod checks;
pub mod edge;
pub mod executor;
pub mod image_info;
pub mod pure;
pub mod status;

pub use edge::{dns, pid1, probe, systemd};
pub use pure::{node_role, plan, role_file, weave};
