//! What a node needs to join: a listen address, a shared secret, and perhaps one member's address.

use crate::error::ClusterError;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The least secret length, in bytes.
pub(crate) const MIN_SECRET: usize = 16;

/// How a node joins a cluster. Only the listen address and the secret are required; every other
/// setting has a default that suits a cluster on one network.
///
/// ```
/// use ephemeral_cluster::ClusterConfig;
/// use std::time::Duration;
///
/// let config = ClusterConfig::new("127.0.0.1:7946".parse().unwrap(), "a long shared secret")
///     .seed("127.0.0.1:7947".parse().unwrap())
///     .node_name("worker-1")
///     .gossip_interval(Duration::from_millis(100))
///     .max_capacity(1000)
///     .max_age(Duration::from_secs(60));
/// assert_eq!(config.listen_addr().port(), 7946);
/// ```
#[derive(Clone)]
pub struct ClusterConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) advertise: Option<SocketAddr>,
    pub(crate) secret: Vec<u8>,
    pub(crate) seeds: Vec<SocketAddr>,
    pub(crate) node_name: Option<String>,
    pub(crate) gossip_interval: Duration,
    pub(crate) max_capacity: usize,
    pub(crate) max_age: Duration,
    pub(crate) replay_window: Duration,
    pub(crate) max_signal_bytes: usize,
    pub(crate) failure_timeout: Option<Duration>,
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("seeds", &self.seeds)
            .field("node_name", &self.node_name)
            .field("gossip_interval", &self.gossip_interval)
            .field("max_capacity", &self.max_capacity)
            .field("max_age", &self.max_age)
            .field("replay_window", &self.replay_window)
            .field("max_signal_bytes", &self.max_signal_bytes)
            .field("failure_timeout", &self.effective_failure_timeout())
            .finish()
    }
}

impl ClusterConfig {
    /// A node listening for gossip on `listen` (UDP; port 0 picks a free port), in the cluster
    /// of every node that holds `secret` (at least 16 bytes; checked by
    /// [`ClusterSink::join`](crate::ClusterSink::join)).
    ///
    /// The secret both names the cluster and authenticates it: nodes with another secret can
    /// neither read nor inject anything. Use a random value of 32 bytes or more.
    #[must_use]
    pub fn new(listen: SocketAddr, secret: impl AsRef<[u8]>) -> Self {
        ClusterConfig {
            listen,
            advertise: None,
            secret: secret.as_ref().to_vec(),
            seeds: Vec::new(),
            node_name: None,
            gossip_interval: Duration::from_millis(100),
            max_capacity: 1000,
            max_age: Duration::from_secs(60),
            replay_window: Duration::from_secs(30),
            max_signal_bytes: 1024,
            failure_timeout: None,
        }
    }

    /// The address of any one member to join through (call again to give more). None for the
    /// first node. An unreachable seed is not an error: the node starts alone and joins when
    /// the seed answers.
    #[must_use]
    pub fn seed(mut self, member: SocketAddr) -> Self {
        self.seeds.push(member);
        self
    }

    /// The node's name as the others list it (default: `node-<advertised address>`). Names
    /// should be unique in a cluster.
    #[must_use]
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = Some(name.into());
        self
    }

    /// The address the other members reach this node at, when it differs from the listen
    /// address (a listen address of `0.0.0.0`, or NAT). Default: the bound listen address.
    #[must_use]
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.advertise = Some(addr);
        self
    }

    /// How often the node gossips with a few peers (default 100 ms). Failure detection and
    /// tombstone lifetimes scale with it.
    #[must_use]
    pub fn gossip_interval(mut self, every: Duration) -> Self {
        self.gossip_interval = every;
        self
    }

    /// The most signals this node's sink holds (default 1000): it bounds what this node
    /// publishes (its own live signals) and the window of the whole cluster's signals it sees.
    #[must_use]
    pub fn max_capacity(mut self, capacity: usize) -> Self {
        self.max_capacity = capacity;
        self
    }

    /// How long a signal counts, from its own timestamp (default one minute).
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// How far a datagram's send time may be from this node's wall clock (default 30 s): older
    /// datagrams are refused as replays. It must exceed the clock skew between machines.
    #[must_use]
    pub fn replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    /// The longest signal name or key, in bytes once escaped as a JSON string (control
    /// characters take six bytes, `"` and `\\` two), that the cluster carries (default 1024, at
    /// most 16,384: a signal then always fits one datagram). Longer ones are refused by [`ClusterSink::try_raise`](crate::ClusterSink::try_raise)
    /// and stay local when raised through [`ClusterSink::local`](crate::ClusterSink::local).
    #[must_use]
    pub fn max_signal_bytes(mut self, bytes: usize) -> Self {
        self.max_signal_bytes = bytes;
        self
    }

    /// How long a member's heartbeat may stand still before the others count it dead and drop
    /// its signals (default: ten gossip intervals, at least one second). Shorter notices a
    /// crash sooner; longer rides out pauses (a stalled machine, a long garbage collection in a
    /// neighbour process) without dropping a live member's signals. Heartbeats reach every
    /// member within a few gossip intervals in clusters of a few dozen members; raise this for
    /// larger ones.
    #[must_use]
    pub fn failure_timeout(mut self, timeout: Duration) -> Self {
        self.failure_timeout = Some(timeout);
        self
    }

    pub(crate) fn effective_failure_timeout(&self) -> Duration {
        self.failure_timeout
            .unwrap_or_else(|| (self.gossip_interval * 10).max(Duration::from_secs(1)))
    }

    /// The listen address.
    #[must_use]
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Checks every setting.
    pub(crate) fn validate(&self) -> Result<(), ClusterError> {
        if self.secret.len() < MIN_SECRET {
            return Err(ClusterError::SecretTooShort {
                len: self.secret.len(),
                min: MIN_SECRET,
            });
        }
        let bad = |what: &str| Err(ClusterError::InvalidConfig(what.to_owned()));
        if self.gossip_interval < Duration::from_millis(1)
            || self.gossip_interval > Duration::from_secs(3600)
        {
            return bad("gossip_interval must be between 1 ms and one hour");
        }
        if self.max_capacity == 0 || self.max_capacity > 100_000 {
            return bad("max_capacity must be between 1 and 100,000");
        }
        if self.max_age.is_zero() || self.max_age > Duration::from_secs(30 * 24 * 3600) {
            return bad("max_age must be above zero and at most 30 days");
        }
        if self.replay_window < Duration::from_secs(1)
            || self.replay_window > Duration::from_secs(24 * 3600)
        {
            return bad("replay_window must be between one second and one day");
        }
        if self.max_signal_bytes == 0 || self.max_signal_bytes > 16_384 {
            return bad("max_signal_bytes must be between 1 and 16,384");
        }
        if let Some(t) = self.failure_timeout {
            if t < self.gossip_interval * 2 || t > Duration::from_secs(3600) {
                return bad(
                    "failure_timeout must be at least two gossip intervals and at most one hour",
                );
            }
        }
        if let Some(name) = &self.node_name {
            if name.is_empty() || name.len() > 256 {
                return bad("node_name must be 1 to 256 bytes");
            }
        }
        Ok(())
    }
}
