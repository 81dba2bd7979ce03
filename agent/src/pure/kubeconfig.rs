//! Kubeconfig files: rendering the ones the agent writes and parsing the ones it reads. (Being written.)
