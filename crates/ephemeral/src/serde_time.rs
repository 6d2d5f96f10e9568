//! Timestamps on the wire: milliseconds since the Unix epoch.

use std::time::SystemTime;

pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
