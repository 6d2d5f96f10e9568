//! [`ScalingConfig`]: the bounds, patterns, timing and callback of a [`DynamicConcurrency`](super::DynamicConcurrency).

use crate::pattern::Pattern;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

type Adjusted = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// How [`DynamicConcurrency`](super::DynamicConcurrency) scales: the bounds, the patterns, the timing and a callback.
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
    pub(super) min: usize,
    pub(super) max: usize,
    pub(super) up: Pattern,
    pub(super) down: Pattern,
    pub(super) window: Duration,
    pub(super) min_interval: Duration,
    pub(super) sample_interval: Duration,
    pub(super) on_adjusted: Option<Adjusted>,
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
    /// [`DynamicConcurrency::start`](super::DynamicConcurrency::start) panics if it is zero.
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
