//! [`DynamicConcurrency`]: a coordinator's limit steered by load signals.

use crate::coordinator::AnyCoordinator;
use crate::pattern::Pattern;
use crate::signal::SignalSink;
use crate::sync::Mutex;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type Adjusted = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// How [`DynamicConcurrency`] scales: the bounds, the patterns, the timing and a callback.
///
/// | setter | default |
/// |---|---|
/// | [`up`](Self::up) | `"load.high"` |
/// | [`down`](Self::down) | `"load.low"` |
/// | [`window`](Self::window) | 5 s |
/// | [`min_interval`](Self::min_interval) | 1 s |
/// | [`sample_interval`](Self::sample_interval) | 200 ms |
/// | [`on_adjusted`](Self::on_adjusted) | none |
///
/// ```
/// use ephemeral::patterns::ScalingConfig;
/// use std::time::Duration;
///
/// let config = ScalingConfig::new(2, 32)
///     .up("queue.deep")
///     .down("queue.idle")
///     .window(Duration::from_secs(10))
///     .min_interval(Duration::from_secs(2))
///     .sample_interval(Duration::from_millis(500))
///     .on_adjusted(|previous, new| println!("limit {previous} -> {new}"));
/// println!("{config:?}");
/// ```
#[derive(Clone)]
pub struct ScalingConfig {
    min: usize,
    max: usize,
    up: Pattern,
    down: Pattern,
    window: Duration,
    min_interval: Duration,
    sample_interval: Duration,
    on_adjusted: Option<Adjusted>,
}

impl ScalingConfig {
    /// Limits between `min` and `max`, with the defaults above.
    ///
    /// # Panics
    ///
    /// If `min` is 0 or greater than `max`.
    ///
    /// ```
    /// use ephemeral::patterns::ScalingConfig;
    ///
    /// let config = ScalingConfig::new(1, 8);
    /// println!("{config:?}"); // up "load.high", down "load.low", window 5 s, ...
    /// ```
    #[must_use]
    pub fn new(min: usize, max: usize) -> ScalingConfig {
        assert!(min > 0, "ScalingConfig::new: min must be at least 1");
        assert!(
            min <= max,
            "ScalingConfig::new: min ({min}) must not exceed max ({max})"
        );
        ScalingConfig {
            min,
            max,
            up: Pattern::new("load.high"),
            down: Pattern::new("load.low"),
            window: Duration::from_secs(5),
            min_interval: Duration::from_secs(1),
            sample_interval: Duration::from_millis(200),
            on_adjusted: None,
        }
    }

    /// The pattern of the signals that double the limit (default `"load.high"`).
    ///
    /// ```
    /// use ephemeral::patterns::ScalingConfig;
    ///
    /// let config = ScalingConfig::new(1, 8).up("queue.deep.*");
    /// println!("{config:?}");
    /// ```
    #[must_use]
    pub fn up(mut self, pattern: impl Into<Pattern>) -> Self {
        self.up = pattern.into();
        self
    }

    /// The pattern of the signals that halve the limit (default `"load.low"`).
    ///
    /// ```
    /// use ephemeral::patterns::ScalingConfig;
    ///
    /// let config = ScalingConfig::new(1, 8).down("queue.empty");
    /// println!("{config:?}");
    /// ```
    #[must_use]
    pub fn down(mut self, pattern: impl Into<Pattern>) -> Self {
        self.down = pattern.into();
        self
    }

    /// How old a signal may be and still decide (default 5 s).
    ///
    /// ```
    /// use ephemeral::patterns::ScalingConfig;
    ///
    /// let config = ScalingConfig::new(1, 8).window(std::time::Duration::from_secs(30));
    /// println!("{config:?}");
    /// ```
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The least time between two changes (default 1 s).
    ///
    /// ```
    /// use ephemeral::patterns::ScalingConfig;
    ///
    /// let config = ScalingConfig::new(1, 8).min_interval(std::time::Duration::from_secs(10));
    /// println!("{config:?}");
    /// ```
    #[must_use]
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// How often the sink is read (default 200 ms).
    ///
    /// # Panics
    ///
    /// [`DynamicConcurrency::start`] panics if it is zero.
    ///
    /// ```
    /// use ephemeral::patterns::ScalingConfig;
    ///
    /// let config = ScalingConfig::new(1, 8).sample_interval(std::time::Duration::from_millis(50));
    /// println!("{config:?}");
    /// ```
    #[must_use]
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.sample_interval = interval;
        self
    }

    /// Called with the previous and the new limit after each change (not for the initial set
    /// to `min`); it runs on the control task, and a panic in it is contained.
    ///
    /// ```
    /// use ephemeral::patterns::ScalingConfig;
    ///
    /// let config = ScalingConfig::new(1, 8).on_adjusted(|previous, new| println!("concurrency {previous} -> {new}"));
    /// println!("{config:?}");
    /// ```
    #[must_use]
    pub fn on_adjusted(mut self, f: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        self.on_adjusted = Some(Arc::new(f));
        self
    }
}

impl fmt::Debug for ScalingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScalingConfig")
            .field("min", &self.min)
            .field("max", &self.max)
            .field("up", &self.up)
            .field("down", &self.down)
            .field("window", &self.window)
            .field("min_interval", &self.min_interval)
            .field("sample_interval", &self.sample_interval)
            .field("on_adjusted", &self.on_adjusted.is_some())
            .finish()
    }
}

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
        let task = tokio::spawn(run(
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// The newest up or down event within the window decides; a tie goes to up.
fn decide(sink: &SignalSink, config: &ScalingConfig) -> Option<Direction> {
    let now = crate::now();
    let mut newest: Option<(std::time::SystemTime, Direction)> = None;
    sink.sense(|e| {
        let up = config.up.matches(e.signal());
        if !up && !config.down.matches(e.signal()) {
            return false;
        }
        let at = e.timestamp();
        if now.duration_since(at).unwrap_or(Duration::ZERO) >= config.window {
            return false;
        }
        let dir = if up { Direction::Up } else { Direction::Down };
        newest = match newest {
            Some((t, d)) if t > at || (t == at && d == Direction::Up) => Some((t, d)),
            _ => Some((at, dir)),
        };
        false
    });
    newest.map(|(_, d)| d)
}

async fn run(
    coordinator: Arc<dyn AnyCoordinator>,
    sink: SignalSink,
    config: ScalingConfig,
    token: CancellationToken,
    adjustments: Arc<AtomicU64>,
) {
    let mut ticks = tokio::time::interval(config.sample_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_change: Option<Instant> = None;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(direction) = decide(&sink, &config) else {
            continue;
        };
        let now = Instant::now();
        if last_change.is_some_and(|at| now.duration_since(at) < config.min_interval) {
            continue;
        }
        let current = coordinator.max_concurrency();
        let wanted = match direction {
            Direction::Up => current.saturating_mul(2).min(config.max),
            Direction::Down => (current / 2).max(config.min),
        };
        if wanted == current || token.is_cancelled() {
            continue;
        }
        if coordinator.set_max_concurrency(wanted).is_ok() {
            last_change = Some(now);
            adjustments.fetch_add(1, Ordering::Relaxed);
            if let Some(f) = &config.on_adjusted {
                let _ = catch_unwind(AssertUnwindSafe(|| f(current, wanted)));
            }
        }
    }
}
