//! The one clock of the crate.
//!
//! Ages, lifetimes, deferral and intervals are measured on tokio's clock
//! ([`tokio::time::Instant`]), so they follow a paused test clock. [`SystemTime`] values only
//! *label* events and snapshots: they are derived from the tokio clock through a fixed anchor
//! taken once per process, which costs one clock read per timestamp instead of two and keeps
//! labels and ages consistent under `start_paused` tests.

use std::sync::OnceLock;
use std::time::SystemTime;
use tokio::time::Instant;

struct Anchor {
    instant: std::time::Instant,
    system: SystemTime,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        instant: std::time::Instant::now(),
        system: SystemTime::now(),
    })
}

/// Now, on tokio's clock.
#[inline]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// The wall-clock label of an instant of tokio's clock.
pub(crate) fn to_system(at: Instant) -> SystemTime {
    let a = anchor();
    let at = at.into_std();
    if at >= a.instant {
        a.system + (at - a.instant)
    } else {
        a.system - (a.instant - at)
    }
}

/// The instant of tokio's clock that a wall-clock label stands for.
pub(crate) fn from_system(at: SystemTime) -> Instant {
    let a = anchor();
    let std_at = match at.duration_since(a.system) {
        Ok(ahead) => a.instant.checked_add(ahead),
        Err(behind) => a.instant.checked_sub(behind.duration()),
    };
    // Far outside the representable range: clamp to the anchor, which only matters for
    // absurd timestamps.
    Instant::from_std(std_at.unwrap_or(a.instant))
}

/// Now, as a wall-clock label (derived from tokio's clock).
#[inline]
pub(crate) fn system_now() -> SystemTime {
    to_system(now())
}
