//! [`FanOutConfig`]: the settings of a [`ReactiveFanOut`](super::ReactiveFanOut).

use crate::SignalSink;
use std::time::Duration;

/// The settings of a [`ReactiveFanOut`](super::ReactiveFanOut).
///
/// ```
/// use ephemeral::patterns::FanOutConfig;
/// use ephemeral::SignalSink;
/// use std::time::Duration;
///
/// let config = FanOutConfig::default()
///     .stage1_max(16)
///     .stage1_min(2)
///     .stage2_max(4)
///     .backpressure_threshold(64)
///     .relief_threshold(16)
///     .cooldown(Duration::from_millis(500))
///     .signals(SignalSink::default());
/// println!("{config:?}");
/// ```
#[derive(Clone, Debug)]
pub struct FanOutConfig {
    pub(super) stage1_max: usize,
    pub(super) stage1_min: usize,
    pub(super) stage2_max: usize,
    pub(super) backpressure_threshold: usize,
    pub(super) relief_threshold: usize,
    pub(super) cooldown: Duration,
    pub(super) signals: Option<SignalSink>,
}

impl Default for FanOutConfig {
    /// Stage 1 between 1 and 8, stage 2 at 4, backpressure at 32 pending, relief at 8,
    /// cooldown 200 ms, a fresh [`SignalSink::default`].
    fn default() -> Self {
        FanOutConfig {
            stage1_max: 8,
            stage1_min: 1,
            stage2_max: 4,
            backpressure_threshold: 32,
            relief_threshold: 8,
            cooldown: Duration::from_millis(200),
            signals: None,
        }
    }
}

impl FanOutConfig {
    /// Stage 1's concurrency without backpressure (default 8).
    #[must_use]
    pub fn stage1_max(mut self, n: usize) -> Self {
        self.stage1_max = n;
        self
    }

    /// Stage 1's concurrency under backpressure (default 1).
    #[must_use]
    pub fn stage1_min(mut self, n: usize) -> Self {
        self.stage1_min = n;
        self
    }

    /// Stage 2's concurrency (default 4).
    #[must_use]
    pub fn stage2_max(mut self, n: usize) -> Self {
        self.stage2_max = n;
        self
    }

    /// Stage-2 pending items at which backpressure starts (default 32).
    #[must_use]
    pub fn backpressure_threshold(mut self, n: usize) -> Self {
        self.backpressure_threshold = n;
        self
    }

    /// Stage-2 pending items at or below which backpressure may end (default 8).
    #[must_use]
    pub fn relief_threshold(mut self, n: usize) -> Self {
        self.relief_threshold = n;
        self
    }

    /// How long backpressure lasts after its last cause (default 200 ms).
    #[must_use]
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The sink both stages raise their signals on (default: a fresh
    /// [`SignalSink::default`] of the fan-out's own).
    #[must_use]
    pub fn signals(mut self, sink: SignalSink) -> Self {
        self.signals = Some(sink);
        self
    }
}
