//! Test support of the `k8s-checks` integration tests.

pub mod tree_fixture;
