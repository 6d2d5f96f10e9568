//! Checking [`Options`]: [`Options::validate`] and [`OptionsError`].

use super::Options;
use std::fmt;

impl Options {
    /// Checks every limit; coordinators panic with this error's message when it fails.
    ///
    /// # Errors
    ///
    /// An [`OptionsError`] naming the first field that is out of range.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let checks: [(&'static str, bool, &'static str); 8] = [
            (
                "max_concurrency",
                self.max_concurrency > 0,
                "must be at least 1",
            ),
            (
                "max_concurrency_per_key",
                self.max_concurrency_per_key > 0,
                "must be at least 1",
            ),
            (
                "max_tracked_operations",
                self.max_tracked_operations > 0,
                "must be at least 1",
            ),
            (
                "queue_capacity",
                self.effective_queue_capacity() > 0,
                "must be at least 1",
            ),
            (
                "max_concurrent_signal_handlers",
                self.max_concurrent_signal_handlers > 0,
                "must be at least 1",
            ),
            (
                "max_queued_signals",
                self.max_queued_signals > 0,
                "must be at least 1",
            ),
            (
                "fair_scheduling_threshold",
                self.fair_scheduling_threshold > 0,
                "must be at least 1",
            ),
            (
                "max_pending_per_key",
                self.max_pending_per_key != Some(0),
                "must be at least 1",
            ),
        ];
        for (field, ok, why) in checks {
            if !ok {
                return Err(OptionsError { field, reason: why });
            }
        }
        if !self.defer_on_signals.is_empty() && self.defer_check_interval.is_zero() {
            return Err(OptionsError {
                field: "defer_check_interval",
                reason: "must not be zero when defer_on_signals is set",
            });
        }
        Ok(())
    }

    /// Validates, panicking with the error's message (constructors' contract).
    #[track_caller]
    pub(crate) fn validated(self) -> Self {
        if let Err(e) = self.validate() {
            panic!("invalid ephemeral::Options: {e}");
        }
        self
    }
}

/// An [`Options`] value out of range; names the field.
///
/// ```
/// use ephemeral::Options;
///
/// let err = Options::default().max_tracked_operations(0).validate().unwrap_err();
/// assert_eq!(err.field(), "max_tracked_operations");
/// assert_eq!(err.to_string(), "max_tracked_operations must be at least 1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionsError {
    field: &'static str,
    reason: &'static str,
}

impl OptionsError {
    /// The offending setter's name.
    #[must_use]
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

impl std::error::Error for OptionsError {}
