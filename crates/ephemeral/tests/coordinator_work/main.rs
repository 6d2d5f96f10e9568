//! WorkCoordinator: no loss, the concurrency cap, drain/complete/cancel, the window, signals.

use ephemeral::{
    BlockReason, EnqueueError, Operation, OperationId, Options, SignalConstraints, SignalEvent,
    SignalSink, SignalSource, TryEnqueueError, WorkCoordinator,
};
#[path = "../support/mod.rs"]
mod support;
use support::wait_until;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

type Io = std::io::Error;

mod concurrency;
mod failures;
mod lifecycle;
mod signals;
mod window;

/// Tracks bodies in flight and the highest number seen.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}
