//! The world the simulated service lives in: a small random source, the weather phases, the
//! items the producers send, and the producers' own counters.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// A small, fast, deterministic random source (xorshift64*): the demo needs variety, not
/// quality, and no dependency.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// How the world outside behaves at a moment of the run: phases that repeat, so a 60 s run
/// shows each of them a few times.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Weather {
    /// The translation upstream throttles (answers `rate-limit:<n>ms` often).
    pub(crate) storm: bool,
    /// The payment gateway is down.
    pub(crate) gateway_down: bool,
    /// A traffic surge: producers send faster.
    pub(crate) surge: bool,
}

impl Weather {
    pub(crate) fn at(elapsed: Duration) -> Self {
        let s = elapsed.as_secs_f64();
        Weather {
            storm: s % 20.0 >= 8.0 && s % 20.0 < 11.0,
            gateway_down: s % 25.0 >= 14.0 && s % 25.0 < 19.0,
            surge: s % 30.0 >= 3.0 && s % 30.0 < 12.0,
        }
    }
}

/// One translation request.
#[derive(Debug)]
pub(crate) struct Translation {
    pub(crate) n: u64,
    pub(crate) lang: &'static str,
}

/// One user command (keyed by user: a user's commands run in order).
#[derive(Debug)]
pub(crate) struct Command {
    pub(crate) user: String,
    pub(crate) seq: u64,
}

/// One payment.
#[derive(Debug)]
pub(crate) struct Payment {
    pub(crate) n: u64,
}

/// Counters of what the producers saw: the coordinators count the rest.
#[derive(Debug, Default)]
pub(crate) struct Shed {
    /// Commands refused because their user had too many pending (`max_pending_per_key`).
    pub(crate) overloaded: AtomicU64,
    /// Payments refused while the circuit was open (`cancel_on_signals`).
    pub(crate) breaker: AtomicU64,
    /// Times the breaker opened.
    pub(crate) breaker_opened: AtomicU64,
    /// Concurrency changes made by the autoscaler.
    pub(crate) scaled: AtomicU64,
}
