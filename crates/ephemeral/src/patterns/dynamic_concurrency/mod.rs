//! [`DynamicConcurrency`]: a coordinator's limit steered by load signals.

mod config;
mod control;

pub use config::ScalingConfig;

use crate::coordinator::AnyCoordinator;
use crate::signal::SignalSink;
use crate::sync::Mutex;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Steers a coordinator's concurrency limit from load signals in a sink.
///
/// At start it sets the coordinator's limit to the config's `min`. Then, every
/// `sample_interval`, among the sink's events matching the up or the down pattern raised
/// within `window`, the newest decides (a tie, or an event matching both, goes to up): up
/// doubles the limit (at most `max`), down halves it (at least `min`). There is at most one
/// change per `min_interval`, and `on_adjusted(previous, new)` is called only when the value
/// changes. So it scales down after a `load.low` even though a `load.high` came first (the
/// original could never scale down once `load.high` had been seen).
///
/// It runs on a tokio task, which [`stop`](Self::stop) ends, and so does dropping the last
/// handle (clones share one controller): no task outlives it.
///
/// **The coordinator:** `start` takes any `C: AnyCoordinator + Clone` (the three coordinators
/// are cheap `Clone` handles) and keeps a clone; [`start_dyn`](Self::start_dyn) takes an
/// `Arc<dyn AnyCoordinator>`.
///
/// ```
/// use ephemeral::patterns::{DynamicConcurrency, ScalingConfig};
/// use ephemeral::{Options, SignalSink, WorkCoordinator};
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let sink = SignalSink::default();
///     let coordinator = WorkCoordinator::new(
///         |_job: u32, _op| async {},
///         Options::default().dynamic_concurrency(true),
///     );
///     let scaler = DynamicConcurrency::start(&coordinator, &sink, ScalingConfig::new(2, 16));
///     assert_eq!(coordinator.max_concurrency(), 2);
///
///     sink.raise("load.high");
///     tokio::time::sleep(Duration::from_millis(300)).await;
///     assert_eq!(coordinator.max_concurrency(), 4);
///
///     tokio::time::sleep(Duration::from_secs(1)).await; // min_interval passes: doubles again
///     assert_eq!(coordinator.max_concurrency(), 8);
///
///     sink.raise("load.low"); // newer than the load.high: halves
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     assert_eq!(coordinator.max_concurrency(), 4);
///     scaler.stop();
/// }
/// ```
#[derive(Clone)]
pub struct DynamicConcurrency {
    handle: Arc<Handle>,
}

struct Handle {
    token: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
    adjustments: Arc<AtomicU64>,
    coordinator: Arc<dyn AnyCoordinator>,
    config: ScalingConfig,
}

impl DynamicConcurrency {
    /// Sets `coordinator` to the config's `min` and starts steering it from `sink`'s signals.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime; if the coordinator was not built with
    /// [`dynamic_concurrency(true)`](crate::Options::dynamic_concurrency); if the config's
    /// `sample_interval` is zero.
    ///
    /// ```
    /// use ephemeral::patterns::{DynamicConcurrency, ScalingConfig};
    /// use ephemeral::{Options, SignalSink, WorkCoordinator};
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let coordinator = WorkCoordinator::new(
    ///         |_job: u32, _op| async {},
    ///         Options::default().dynamic_concurrency(true),
    ///     );
    ///     let scaler = DynamicConcurrency::start(&coordinator, &sink, ScalingConfig::new(4, 8));
    ///     assert_eq!(coordinator.max_concurrency(), 4); // min at start
    ///     sink.raise("load.high");
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    ///     assert_eq!(scaler.current(), 8);
    /// }
    /// ```
    pub fn start<C>(coordinator: &C, sink: &SignalSink, config: ScalingConfig) -> DynamicConcurrency
    where
        C: AnyCoordinator + Clone + 'static,
    {
        Self::start_dyn(Arc::new(coordinator.clone()), sink, config)
    }

    /// [`start`](Self::start) for a coordinator held as `Arc<dyn AnyCoordinator>`.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    ///
    /// ```
    /// use ephemeral::patterns::{DynamicConcurrency, ScalingConfig};
    /// use ephemeral::{AnyCoordinator, Options, SignalSink, WorkCoordinator};
    /// use std::sync::Arc;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let coordinator: Arc<dyn AnyCoordinator> = Arc::new(WorkCoordinator::new(
    ///         |_job: u32, _op| async {},
    ///         Options::default().dynamic_concurrency(true),
    ///     ));
    ///     let _scaler = DynamicConcurrency::start_dyn(coordinator.clone(), &sink, ScalingConfig::new(3, 12));
    ///     assert_eq!(coordinator.max_concurrency(), 3);
    /// }
    /// ```
    pub fn start_dyn(
        coordinator: Arc<dyn AnyCoordinator>,
        sink: &SignalSink,
        config: ScalingConfig,
    ) -> DynamicConcurrency {
        assert!(
            coordinator.is_dynamic(),
            "DynamicConcurrency::start: the coordinator needs Options::dynamic_concurrency(true)"
        );
        assert!(
            !config.sample_interval.is_zero(),
            "DynamicConcurrency::start: sample_interval must not be zero"
        );
        coordinator
            .set_max_concurrency(config.min)
            .expect("a dynamic coordinator accepts a limit of at least 1");
        let token = CancellationToken::new();
        let adjustments = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(control::run(
            coordinator.clone(),
            sink.clone(),
            config.clone(),
            token.clone(),
            adjustments.clone(),
        ));
        DynamicConcurrency {
            handle: Arc::new(Handle {
                token,
                task: Mutex::new(Some(task)),
                stopped: AtomicBool::new(false),
                adjustments,
                coordinator,
                config,
            }),
        }
    }

    /// Stops steering (the limit stays where it is). No change happens after this returns.
    /// Dropping the last handle does the same.
    ///
    /// ```
    /// use ephemeral::patterns::{DynamicConcurrency, ScalingConfig};
    /// use ephemeral::{Options, SignalSink, WorkCoordinator};
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let coordinator = WorkCoordinator::new(
    ///         |_job: u32, _op| async {},
    ///         Options::default().dynamic_concurrency(true),
    ///     );
    ///     let scaler = DynamicConcurrency::start(&coordinator, &sink, ScalingConfig::new(1, 8));
    ///     scaler.stop();
    ///     sink.raise("load.high");
    ///     tokio::time::sleep(Duration::from_secs(5)).await;
    ///     assert_eq!(coordinator.max_concurrency(), 1);
    ///     assert!(scaler.is_stopped());
    /// }
    /// ```
    pub fn stop(&self) {
        self.handle.stop();
    }

    /// Whether [`stop`](Self::stop) was called (on any clone).
    ///
    /// ```
    /// use ephemeral::patterns::{DynamicConcurrency, ScalingConfig};
    /// use ephemeral::{Options, SignalSink, WorkCoordinator};
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let coordinator = WorkCoordinator::new(
    ///         |_job: u32, _op| async {},
    ///         Options::default().dynamic_concurrency(true),
    ///     );
    ///     let config = ScalingConfig::new(1, 8).min_interval(Duration::from_secs(2));
    ///     let scaler = DynamicConcurrency::start(&coordinator, &sink, config);
    ///     assert!(!scaler.is_stopped());
    ///     scaler.clone().stop();
    ///     assert!(scaler.is_stopped());
    /// }
    /// ```
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.handle.stopped.load(Ordering::Acquire)
    }

    /// The coordinator's current limit.
    ///
    /// ```
    /// use ephemeral::patterns::{DynamicConcurrency, ScalingConfig};
    /// use ephemeral::{Options, SignalSink, WorkCoordinator};
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let coordinator = WorkCoordinator::new(
    ///         |_job: u32, _op| async {},
    ///         Options::default().dynamic_concurrency(true),
    ///     );
    ///     let config = ScalingConfig::new(2, 8).window(Duration::from_secs(2));
    ///     let scaler = DynamicConcurrency::start(&coordinator, &sink, config);
    ///     assert_eq!(scaler.current(), coordinator.max_concurrency());
    /// }
    /// ```
    #[must_use]
    pub fn current(&self) -> usize {
        self.handle.coordinator.max_concurrency()
    }

    /// How many changes it has made (not counting the initial set to `min`).
    ///
    /// ```
    /// use ephemeral::patterns::{DynamicConcurrency, ScalingConfig};
    /// use ephemeral::{Options, SignalSink, WorkCoordinator};
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let coordinator = WorkCoordinator::new(
    ///         |_job: u32, _op| async {},
    ///         Options::default().dynamic_concurrency(true),
    ///     );
    ///     let scaler = DynamicConcurrency::start(&coordinator, &sink, ScalingConfig::new(1, 4));
    ///     sink.raise("load.high");
    ///     tokio::time::sleep(Duration::from_secs(3)).await;
    ///     assert_eq!(scaler.adjustments(), 2); // 1 -> 2, then (1 s later) 2 -> 4
    /// }
    /// ```
    #[must_use]
    pub fn adjustments(&self) -> u64 {
        self.handle.adjustments.load(Ordering::Relaxed)
    }
}

impl Handle {
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.token.cancel();
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for DynamicConcurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicConcurrency")
            .field("current", &self.current())
            .field("adjustments", &self.adjustments())
            .field("stopped", &self.is_stopped())
            .field("config", &self.handle.config)
            .finish()
    }
}
