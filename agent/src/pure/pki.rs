//! The control plane's PKI (kubeadm's layout under `/etc/kubernetes/pki`): what to generate, and checks of files a
//! user supplies. (Being written.)
