//! Reading the existing PKI and kubeconfig files under the node's root and writing planned ones atomically.
//! (Being written.)
