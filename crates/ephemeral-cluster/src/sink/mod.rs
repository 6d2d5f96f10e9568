//! The public handle: [`ClusterSink`].

mod start;

use crate::config::ClusterConfig;
use crate::error::ClusterError;
use crate::member::Member;
use crate::node::{self, Core};
use ephemeral::{SignalEvent, SignalSink, SignalSource, Subscription};
use std::fmt;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A signal sink shared by every member of a cluster.
///
/// Join with a listen address, a shared secret and (for every node but the first) the address
/// of any one member; the nodes find each other by gossip (chitchat's scuttlebutt, every
/// [`gossip_interval`](ClusterConfig::gossip_interval)), and every member's live signals become
/// visible on every member: [`SignalSource`] queries on a `ClusterSink` see the whole cluster.
///
/// ```no_run
/// use ephemeral::SignalSource;
/// use ephemeral_cluster::{ClusterConfig, ClusterSink};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), ephemeral_cluster::ClusterError> {
/// let secret = std::env::var("CLUSTER_SECRET").expect("a shared secret");
/// let config = ClusterConfig::new("0.0.0.0:7946".parse().unwrap(), secret)
///     .advertise("10.0.0.5:7946".parse().unwrap())
///     .seed("10.0.0.4:7946".parse().unwrap());
/// let cluster = ClusterSink::join(config).await?;
///
/// cluster.raise("rate-limit");                 // seen by every member within milliseconds
/// if cluster.has_signal_matching("maintenance.*") { /* raised on any member */ }
/// # Ok(())
/// # }
/// ```
///
/// # The local sink
///
/// [`local`](Self::local) is this node's [`SignalSink`]. It holds this node's signals and a
/// mirror of every other live member's (with their original timestamps), so a coordinator given
/// it as [`Options::signals`](ephemeral::Options::signals) publishes what its operations emit,
/// and its `cancel_on_signals` / `defer_on_signals` gates react to signals raised anywhere. Its
/// capacity ([`max_capacity`](ClusterConfig::max_capacity)) bounds the window of the whole
/// cluster this node keeps.
///
/// # Time
///
/// A signal ages by its own timestamp, taken on the raising machine's clock
/// ([`ephemeral::now`]): clocks of the members should agree to well within
/// [`max_age`](ClusterConfig::max_age).
///
/// # Stopping
///
/// [`leave`](Self::leave) says goodbye: the other members drop this node and its signals at
/// once. Dropping the last handle stops the node without one, as if it had died: the others
/// notice when its heartbeat has not moved for
/// [`failure_timeout`](ClusterConfig::failure_timeout) (about a second by default) and then
/// drop its signals.
#[derive(Clone)]
pub struct ClusterSink {
    inner: Arc<Shared>,
}

struct Shared {
    core: Arc<Core>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    left: AtomicBool,
    /// The local sink's publisher; dropped with the last handle.
    _publisher: Subscription,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.cancel();
        if !self.left.load(Ordering::Acquire) {
            // No goodbye: stop gossiping at once, as a crashed node would.
            self.core.chitchat.abort();
        }
    }
}

/// Counts of what this node's gossip socket did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Bytes sent (sealed).
    pub bytes_sent: u64,
    /// Datagrams received, accepted or not.
    pub datagrams_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Datagrams refused: not sealed with this cluster's secret, altered, truncated, replayed or
    /// outside the replay window.
    pub rejected: u64,
    /// Datagrams not sent because sealing took them over the UDP limit.
    pub oversized: u64,
    /// Signals raised on the local sink that were too long to publish (they stayed local).
    pub unpublished_signals: u64,
}

impl ClusterSink {
    /// Starts a node and joins the cluster of `config`'s secret through its seed (if any).
    ///
    /// Returns once the node listens; it finds the other members in the background (a member
    /// is listed once it has been heard from twice, about two gossip intervals). An unreachable
    /// seed is not an error: the node runs alone and joins when the seed answers.
    ///
    /// # Errors
    ///
    /// [`ClusterError::SecretTooShort`] for a secret under 16 bytes,
    /// [`ClusterError::InvalidConfig`] for a setting out of range (also a listen address of
    /// `0.0.0.0` without [`advertise`](ClusterConfig::advertise)), [`ClusterError::Bind`] when
    /// the address cannot be bound.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the future before it returns leaves nothing running.
    pub async fn join(config: ClusterConfig) -> Result<ClusterSink, ClusterError> {
        let core = start::node(&config).await?;
        let publisher = core.local.subscribe(Core::publisher(&core));
        let stop = CancellationToken::new();
        let task = tokio::spawn(node::run(core.clone(), stop.clone()));
        Ok(ClusterSink {
            inner: Arc::new(Shared {
                core,
                stop,
                task: Mutex::new(Some(task)),
                left: AtomicBool::new(false),
                _publisher: publisher,
            }),
        })
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    /// Raises a signal on this node; every member sees it. Returns the event.
    ///
    /// # Panics
    ///
    /// If `name` is longer than [`max_signal_bytes`](ClusterConfig::max_signal_bytes); see
    /// [`try_raise`](Self::try_raise) for a fallible raise.
    pub fn raise(&self, name: impl Into<Arc<str>>) -> SignalEvent {
        match self.try_raise(name) {
            Ok(event) => event,
            Err(e) => panic!("ClusterSink::raise: {e}"),
        }
    }

    /// Raises a signal for `key` on this node; every member sees it. Returns the event.
    ///
    /// # Panics
    ///
    /// If `name` or `key` is longer than [`max_signal_bytes`](ClusterConfig::max_signal_bytes);
    /// see [`try_raise_with_key`](Self::try_raise_with_key).
    pub fn raise_with_key(
        &self,
        name: impl Into<Arc<str>>,
        key: impl Into<Arc<str>>,
    ) -> SignalEvent {
        match self.try_raise_with_key(name, key) {
            Ok(event) => event,
            Err(e) => panic!("ClusterSink::raise_with_key: {e}"),
        }
    }

    /// Raises a signal on this node, or refuses a name the cluster cannot carry.
    ///
    /// # Errors
    ///
    /// [`ClusterError::SignalTooLong`] when `name` is longer than
    /// [`max_signal_bytes`](ClusterConfig::max_signal_bytes); nothing is raised.
    pub fn try_raise(&self, name: impl Into<Arc<str>>) -> Result<SignalEvent, ClusterError> {
        let name = name.into();
        self.check(&name, None)?;
        Ok(self.core().local.raise(name))
    }

    /// Raises a signal for `key` on this node, or refuses a name or key the cluster cannot
    /// carry.
    ///
    /// # Errors
    ///
    /// [`ClusterError::SignalTooLong`] when `name` or `key` is longer than
    /// [`max_signal_bytes`](ClusterConfig::max_signal_bytes); nothing is raised.
    pub fn try_raise_with_key(
        &self,
        name: impl Into<Arc<str>>,
        key: impl Into<Arc<str>>,
    ) -> Result<SignalEvent, ClusterError> {
        let (name, key) = (name.into(), key.into());
        self.check(&name, Some(&key))?;
        Ok(self.core().local.raise_with_key(name, key))
    }

    fn check(&self, name: &str, key: Option<&str>) -> Result<(), ClusterError> {
        self.core()
            .check_len(name, key)
            .map_err(|(what, len)| ClusterError::SignalTooLong {
                what,
                len,
                max: self.core().max_signal_bytes,
            })
    }

    /// Retracts every live signal named exactly `name` that this node raised (on any of its
    /// coordinators too): it leaves this node at once and every other member within the
    /// propagation bound. Returns whether there was one. Other members' signals are theirs to
    /// retract.
    pub fn retract(&self, name: &str) -> bool {
        self.core().retract(name)
    }

    /// This node's sink: its own signals and a mirror of every live member's (see the type's
    /// docs). Give it to coordinators as [`Options::signals`](ephemeral::Options::signals).
    #[must_use]
    pub fn local(&self) -> &SignalSink {
        &self.core().local
    }

    /// The live members, this node included, by name.
    #[must_use]
    pub fn members(&self) -> Vec<Member> {
        self.core().members.borrow().clone()
    }

    /// A watch on [`members`](Self::members): `changed().await` wakes on every join and
    /// departure.
    #[must_use]
    pub fn watch_members(&self) -> watch::Receiver<Vec<Member>> {
        self.core().members.subscribe()
    }

    /// This node's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.core().me.node_id
    }

    /// The address the other members reach this node at (with the real port when the listen
    /// address had port 0).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.core().me.gossip_advertise_addr
    }

    /// The address this node's socket is bound to (the listen address, with the real port
    /// when it asked for port 0); differs from [`addr`](Self::addr) when it advertises another.
    #[must_use]
    pub fn bound_addr(&self) -> SocketAddr {
        self.core().bound
    }

    /// How many datagrams were refused (wrong secret, altered, truncated, replayed, too old).
    #[must_use]
    pub fn rejected_datagrams(&self) -> u64 {
        self.traffic().rejected
    }

    /// What this node's gossip socket sent, received and refused so far.
    #[must_use]
    pub fn traffic(&self) -> Traffic {
        let t = &self.core().wire.traffic;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Traffic {
            datagrams_sent: get(&t.sent),
            bytes_sent: get(&t.sent_bytes),
            datagrams_received: get(&t.received),
            bytes_received: get(&t.received_bytes),
            rejected: get(&t.rejected),
            oversized: get(&t.oversized),
            unpublished_signals: get(&self.core().unpublished),
        }
    }

    /// Leaves the cluster with a goodbye: the other members drop this node and its signals at
    /// once (within a round trip), instead of waiting for failure detection. Takes about three
    /// gossip intervals (at most 600 ms), offering the goodbye three times.
    ///
    /// Afterwards the handle is a plain local sink: raises stay on this node, and the mirror
    /// of the other members is emptied. Calling it again does nothing.
    ///
    /// # Cancel safety
    ///
    /// If cancelled, the node may have stopped publishing without having said goodbye; the
    /// others then notice its departure by failure detection.
    pub async fn leave(&self) {
        if self.inner.left.swap(true, Ordering::AcqRel) {
            return;
        }
        let core = &self.inner.core;
        self.inner.stop.cancel();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        core.say_goodbye().await;
        // The goodbye travels in the peers' next exchanges with this node: offer it twice more.
        let pause = core.gossip_interval.min(Duration::from_millis(200));
        for _ in 0..2 {
            tokio::time::sleep(pause).await;
            core.repeat_goodbye();
        }
        tokio::time::sleep(pause).await;
        core.forget_others();
        let _ = core.chitchat.initiate_shutdown();
    }
}

impl SignalSource for ClusterSink {
    fn visit_signals(&self, visit: &mut dyn FnMut(&SignalEvent) -> ControlFlow<()>) {
        self.core().local.visit_signals(visit);
    }

    fn total_signals(&self) -> usize {
        self.core().local.total_signals()
    }
}

impl fmt::Debug for ClusterSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSink")
            .field("name", &self.name())
            .field("addr", &self.addr())
            .field("members", &self.core().members.borrow().len())
            .field("signals", &self.total_signals())
            .finish()
    }
}
