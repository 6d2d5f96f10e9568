//! Propagation limits for signals that cause other signals.

use crate::signal::event::Propagation;
use crate::signal::SignalEvent;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

type OnBlocked = Arc<dyn Fn(&SignalEvent, BlockReason) + Send + Sync>;

/// Why [`SignalConstraints`] refused a caused signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum BlockReason {
    /// The cause was already at the maximum depth.
    MaxDepthExceeded,
    /// The signal's name is already on the cause's path (`A → B → A`, also `A → A`).
    CycleDetected,
    /// The cause's last signal is terminal: nothing may follow it.
    TerminalSignalReached,
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockReason::MaxDepthExceeded => "maximum propagation depth exceeded",
            BlockReason::CycleDetected => "signal cycle detected",
            BlockReason::TerminalSignalReached => "cause is a terminal signal",
        })
    }
}

/// Limits on chains of signals that cause other signals, to stop feedback loops.
///
/// Nothing propagates by itself: a chain exists only where a body emits a signal *caused by*
/// another one, with [`Operation::emit_caused`](crate::Operation::emit_caused) or
/// [`Operation::emit_caused_event`](crate::Operation::emit_caused_event). The cause is a
/// [`SignalEvent`] the body holds: one its operation emitted (returned by
/// [`emit_event`](crate::Operation::emit_event), or read back from
/// [`Operation::signals`](crate::Operation::signals)), or one it reads from a shared
/// [`SignalSink`](crate::SignalSink) or a coordinator's window. (`on_signal` handlers get only
/// the event, not an operation, so they cannot emit; to react to a signal with another, enqueue
/// work whose body does.) The rules, checked in this order:
///
/// 1. a root emission (no cause, or a cause with no propagation) is always allowed and has
///    depth 1, so [`Operation::emit`](crate::Operation::emit) is never blocked;
/// 2. a caused signal is blocked with [`BlockReason::MaxDepthExceeded`] when its cause's depth is
///    at least `max_depth`;
/// 3. then with [`BlockReason::CycleDetected`] when (with `block_cycles`) its name is anywhere on
///    the cause's path;
/// 4. then with [`BlockReason::TerminalSignalReached`] when the cause's last signal is terminal
///    (the terminal signal itself may be emitted; only what it causes is blocked).
///
/// A leaf signal is emitted normally but carries no propagation, so whatever it causes starts a
/// fresh chain. `on_blocked` sees every block, with an event named after the blocked signal
/// whose propagation is the cause's path. Constraints apply to the coordinators they are
/// configured on ([`Options::signal_constraints`](crate::Options::signal_constraints)).
///
/// A body that reacts to a signal it finds on a shared sink, and would set off a loop:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{
///     BlockReason, Operation, Options, SignalConstraints, SignalSink, SignalSource,
///     WorkCoordinator,
/// };
/// use std::sync::{Arc, Mutex};
///
/// let sink = SignalSink::default();
/// let blocked = Arc::new(Mutex::new(Vec::new()));
/// let log = blocked.clone();
/// let constraints = SignalConstraints::default()
///     .on_blocked(move |evt, reason| log.lock().unwrap().push((evt.signal().to_string(), reason)));
///
/// let shared = sink.clone();
/// let c = WorkCoordinator::new(
///     move |step: &'static str, op: Operation| {
///         let sink = shared.clone();
///         async move {
///             if step == "detect" {
///                 op.emit("overload"); // a root: never blocked
///             } else if let Some(cause) = sink.signals_named("overload").pop() {
///                 // React to the cause read from the sink.
///                 let throttle = op.emit_caused_event("throttle", &cause).expect("depth 2");
///                 // Reacting to the reaction by raising the cause again is a cycle.
///                 assert!(!op.emit_caused("overload", &throttle));
///             }
///             Ok::<_, std::io::Error>(())
///         }
///     },
///     Options::default()
///         .max_concurrency(1) // "detect" finishes before "react" starts
///         .signals(sink.clone())
///         .signal_constraints(constraints),
/// );
/// c.enqueue("detect").await.unwrap();
/// c.enqueue("react").await.unwrap();
/// c.complete();
/// c.drain().await;
/// assert_eq!(c.total_failed(), 0); // the assertion in the body held
///
/// let throttle = &sink.signals_named("throttle")[0];
/// assert_eq!(throttle.propagation().len(), 2); // overload → throttle
/// assert_eq!(sink.count_signals("overload"), 1);
/// assert_eq!(*blocked.lock().unwrap(), [("overload".to_string(), BlockReason::CycleDetected)]);
/// # }
/// ```
///
/// The rules can be checked without a coordinator:
///
/// ```
/// use ephemeral::{BlockReason, SignalConstraints};
///
/// let c = SignalConstraints::default()
///     .max_depth(3)
///     .terminal_signals(["completed"])
///     .leaf_signals(["metric"]);
/// let a = c.check("a", None).unwrap();
/// assert_eq!(a.len(), 1);
/// let ab = c.check("b", Some(&a)).unwrap();
/// assert_eq!(c.check("a", Some(&ab)).unwrap_err(), BlockReason::CycleDetected);
/// ```
#[derive(Clone)]
pub struct SignalConstraints {
    max_depth: usize,
    block_cycles: bool,
    terminal: HashSet<Arc<str>>,
    leaf: HashSet<Arc<str>>,
    on_blocked: Option<OnBlocked>,
}

impl Default for SignalConstraints {
    /// Maximum depth 10, cycles blocked, no terminal or leaf signals.
    fn default() -> Self {
        SignalConstraints {
            max_depth: 10,
            block_cycles: true,
            terminal: HashSet::new(),
            leaf: HashSet::new(),
            on_blocked: None,
        }
    }
}

impl SignalConstraints {
    /// Maximum depth 5, cycles blocked.
    #[must_use]
    pub fn strict() -> Self {
        SignalConstraints::default().max_depth(5)
    }

    /// No depth limit, cycles allowed (terminal and leaf sets still apply if set).
    #[must_use]
    pub fn none() -> Self {
        SignalConstraints::default()
            .max_depth(usize::MAX)
            .block_cycles(false)
    }

    /// The deepest chain allowed: a signal caused by an event of this depth is blocked.
    #[must_use]
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Whether a name already on the cause's path is blocked.
    #[must_use]
    pub fn block_cycles(mut self, block: bool) -> Self {
        self.block_cycles = block;
        self
    }

    /// Signals that end a chain: nothing they cause is allowed.
    #[must_use]
    pub fn terminal_signals<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Arc<str>>,
    {
        self.terminal = names.into_iter().map(Into::into).collect();
        self
    }

    /// Signals that are emitted without propagation, so what they cause starts afresh.
    #[must_use]
    pub fn leaf_signals<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Arc<str>>,
    {
        self.leaf = names.into_iter().map(Into::into).collect();
        self
    }

    /// Called with every blocked signal and the reason (a panic in it is contained).
    #[must_use]
    pub fn on_blocked(
        mut self,
        f: impl Fn(&SignalEvent, BlockReason) + Send + Sync + 'static,
    ) -> Self {
        self.on_blocked = Some(Arc::new(f));
        self
    }

    /// Whether `name` is a leaf signal.
    #[must_use]
    pub fn is_leaf(&self, name: &str) -> bool {
        self.leaf.contains(name)
    }

    /// Whether `name` is a terminal signal.
    #[must_use]
    pub fn is_terminal(&self, name: &str) -> bool {
        self.terminal.contains(name)
    }

    /// Checks `signal` caused by a chain with path `cause` (root first), without side effects.
    /// Returns the new event's propagation path (empty for a leaf) or why it is blocked.
    ///
    /// `None` or an empty cause means a root emission, which is always allowed.
    pub fn check(
        &self,
        signal: &str,
        cause: Option<&[Arc<str>]>,
    ) -> Result<Vec<Arc<str>>, BlockReason> {
        let cause = cause.filter(|c| !c.is_empty());
        if let Some(path) = cause {
            self.reason(signal, path).map_or(Ok(()), Err)?;
        }
        if self.is_leaf(signal) {
            return Ok(Vec::new());
        }
        let mut path: Vec<Arc<str>> = cause.map(<[_]>::to_vec).unwrap_or_default();
        path.push(Arc::from(signal));
        Ok(path)
    }

    fn reason(&self, signal: &str, path: &[Arc<str>]) -> Option<BlockReason> {
        if path.len() >= self.max_depth {
            Some(BlockReason::MaxDepthExceeded)
        } else if self.block_cycles && path.iter().any(|s| &**s == signal) {
            Some(BlockReason::CycleDetected)
        } else if !self.terminal.is_empty()
            && path.last().is_some_and(|s| self.terminal.contains(s))
        {
            Some(BlockReason::TerminalSignalReached)
        } else {
            None
        }
    }

    /// The propagation of `signal` caused by `cause`, or `Err` after telling `on_blocked`.
    /// `blocked` builds the event `on_blocked` sees (named after the blocked signal, carrying
    /// the cause's path).
    pub(crate) fn admit(
        &self,
        signal: &Arc<str>,
        cause: Option<&Propagation>,
        blocked: impl FnOnce(Option<Propagation>) -> SignalEvent,
    ) -> Result<Option<Propagation>, BlockReason> {
        let cause = cause.filter(|c| !c.is_empty());
        if let Some(path) = cause {
            if let Some(reason) = self.reason(signal, path) {
                if let Some(cb) = &self.on_blocked {
                    let evt = blocked(Some(path.clone()));
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&evt, reason)));
                }
                return Err(reason);
            }
        }
        if self.leaf.contains(&**signal) {
            return Ok(None);
        }
        Ok(Some(extend(cause, signal)))
    }
}

/// `cause` + `signal` (a root path when there is no cause).
pub(crate) fn extend(cause: Option<&Propagation>, signal: &Arc<str>) -> Propagation {
    match cause {
        Some(path) => path
            .iter()
            .cloned()
            .chain(std::iter::once(signal.clone()))
            .collect(),
        None => Arc::from([signal.clone()]),
    }
}

impl fmt::Debug for SignalConstraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalConstraints")
            .field("max_depth", &self.max_depth)
            .field("block_cycles", &self.block_cycles)
            .field("terminal_signals", &self.terminal)
            .field("leaf_signals", &self.leaf)
            .field("on_blocked", &self.on_blocked.is_some())
            .finish()
    }
}
