//! Everything public is `Send + Sync` (API contract); handles are cheap `Clone`s.

use ephemeral::atoms::{
    BatchingAtom, FixedWorkAtom, KeyedSequentialAtom, RetryAtom, SignalAwareAtom,
};
use ephemeral::patterns::{
    CircuitBreaker, ControlledFanOut, ReactiveFanOut, SignalAnomalyDetector,
};
use ephemeral::*;

fn send_sync<T: Send + Sync>() {}
fn handle<T: Send + Sync + Clone>() {}

#[test]
fn handles_are_send_sync_clone() {
    handle::<WorkCoordinator<u32>>();
    handle::<KeyedWorkCoordinator<String, u32>>();
    handle::<ResultCoordinator<u32, u32>>();
    handle::<SignalSink>();
    handle::<AsyncSignalProcessor>();
    handle::<SignalDispatcher>();
    handle::<Operation>();
    handle::<Options>();
    handle::<CancellationToken>();
}

#[test]
fn values_are_send_sync() {
    send_sync::<OperationSnapshot>();
    send_sync::<OperationError>();
    send_sync::<SignalEvent>();
    send_sync::<SignalRetracted>();
    send_sync::<SignalConstraints>();
    send_sync::<Stats>();
    send_sync::<Completion<u32>>();
    send_sync::<std::sync::Arc<dyn AnyCoordinator>>();
    send_sync::<CoordinatorFactory<u32>>();
    send_sync::<KeyedCoordinatorFactory<String, u32>>();
    send_sync::<EnqueueError<u32>>();
    send_sync::<TryEnqueueError<u32>>();
    send_sync::<OptionsError>();
    send_sync::<Subscription>();
    send_sync::<Pattern>();
}

#[test]
fn atoms_and_patterns_are_send_sync() {
    send_sync::<BatchingAtom<u32>>();
    send_sync::<FixedWorkAtom<u32>>();
    send_sync::<KeyedSequentialAtom<String, u32>>();
    send_sync::<RetryAtom<u32>>();
    send_sync::<SignalAwareAtom<u32>>();
    send_sync::<CircuitBreaker>();
    send_sync::<ControlledFanOut<String, u32>>();
    send_sync::<ReactiveFanOut<u32, u32>>();
    send_sync::<SignalAnomalyDetector>();
}
