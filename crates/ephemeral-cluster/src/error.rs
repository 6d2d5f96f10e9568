//! The cluster's errors.

use std::net::SocketAddr;

/// Why a node could not join, or a signal could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The shared secret is shorter than 16 bytes.
    #[error("the cluster secret must be at least {min} bytes long (got {len})")]
    SecretTooShort {
        /// The secret's length.
        len: usize,
        /// The least accepted length.
        min: usize,
    },
    /// A setting is out of range; the message names it.
    #[error("invalid cluster setting: {0}")]
    InvalidConfig(String),
    /// The listen address could not be bound.
    #[error("could not bind the gossip socket on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The gossip engine did not start.
    #[error("the gossip engine did not start: {0}")]
    Start(String),
    /// A signal name or key is longer than the cluster carries
    /// ([`ClusterConfig::max_signal_bytes`](crate::ClusterConfig::max_signal_bytes)).
    #[error("a signal {what} of {len} bytes is over the cluster's limit of {max} bytes")]
    SignalTooLong {
        /// `"name"` or `"key"`.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}
