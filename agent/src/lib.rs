//! `k8s-agent` library: the pieces the on-host agent is made of, kept free of host I/O where they can be so they
//! can be tested without a host, and shared with `imagebuilder` (which runs the same checks on a staged tree).

pub mod checks;
pub mod dns;
pub mod executor;
pub mod image_info;
pub mod node_role;
pub mod pid1;
pub mod plan;
pub mod probe;
pub mod role_file;
pub mod status;
pub mod systemd;
pub mod weave;
