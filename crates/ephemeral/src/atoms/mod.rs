//! Atoms: small, ready-made building blocks on top of the coordinators.
//!
//! Each atom wraps one coordinator (reachable through its `coordinator()` accessor, for
//! signals, snapshots and the rest of the coordinator API) and adds one piece of behaviour.
//! Nothing here is a second engine: concurrency, tracking and signals are the coordinator's.
//!
//! | atom | what it is for | wraps |
//! |---|---|---|
//! | [`FixedWorkAtom`] | a queue with a fixed concurrency cap, nothing else to configure | [`WorkCoordinator`](crate::WorkCoordinator) |
//! | [`KeyedSequentialAtom`] | one item at a time per key (user, tenant, account), keys in parallel | [`KeyedWorkCoordinator`](crate::KeyedWorkCoordinator) |
//! | [`SignalAwareAtom`] | refuse or hold work while ambient signals (a [`SignalSink`](crate::SignalSink)) say so; they age out with the sink | [`WorkCoordinator`](crate::WorkCoordinator) |
//! | [`BatchingAtom`] | collect items and hand them to a handler in batches, by size or age, one batch at a time | [`WorkCoordinator`](crate::WorkCoordinator) of batches |
//! | [`RetryAtom`] | run a body up to N times per item with a backoff, emitting `retry:<k>` | [`WorkCoordinator`](crate::WorkCoordinator) |
//!
//! Every atom's `drain` is the coordinator's `complete` followed by its `drain`: it stops
//! intake and waits for the work already accepted. Handles are cheap `Clone`s; constructors
//! need a tokio runtime (they start the coordinator's workers).

mod batching;
mod fixed;
mod keyed_sequential;
mod retry;
mod signal_aware;

pub use batching::{BatchStats, BatchingAtom};
pub use fixed::FixedWorkAtom;
pub use keyed_sequential::KeyedSequentialAtom;
pub use retry::{RetryAtom, RetryPolicy};
pub use signal_aware::SignalAwareAtom;
