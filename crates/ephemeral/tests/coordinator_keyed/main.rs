//! `KeyedWorkCoordinator`: per-key order and caps under stress, no head-of-line blocking,
//! round-robin fairness, fair scheduling, the work-coordinator invariants, and idle keys that
//! cost no memory.

#[path = "../support/mod.rs"]
mod support;
use support::{quiet_deliberate_panics, wait_until};

use ephemeral::{
    EnqueueError, KeyedWorkCoordinator, Operation, OperationId, Options, TryEnqueueError,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

type BodyResult = Result<(), std::io::Error>;

mod fairness;
mod invariants;
mod keys;
mod order;
mod pending_limit;
mod streams;

/// splitmix64: a small deterministic PRNG, so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Timed = (&'static str, u32, u64);

/// A coordinator whose body logs `(key, n, start offset)` and sleeps the item's seconds.
#[allow(clippy::type_complexity)]
fn timed(
    options: Options,
) -> (
    KeyedWorkCoordinator<&'static str, Timed>,
    Arc<Mutex<Vec<(&'static str, u32, Duration)>>>,
) {
    let t0 = Instant::now();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let c = KeyedWorkCoordinator::new(
        |it: &Timed| it.0,
        move |(key, n, secs): Timed, _op: Operation| {
            let l = l.clone();
            async move {
                l.lock().unwrap().push((key, n, t0.elapsed()));
                tokio::time::sleep(Duration::from_secs(secs)).await;
                BodyResult::Ok(())
            }
        },
        options,
    );
    (c, log)
}

fn start_of(log: &[(&'static str, u32, Duration)], key: &str, n: u32) -> (usize, Duration) {
    log.iter()
        .enumerate()
        .find(|(_, (k, m, _))| *k == key && *m == n)
        .map(|(i, (_, _, at))| (i, *at))
        .unwrap_or_else(|| panic!("{key}{n} never started"))
}

fn gated(options: Options) -> (KeyedWorkCoordinator<char, (char, u32)>, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let c = KeyedWorkCoordinator::new(
        |it: &(char, u32)| it.0,
        move |_it: (char, u32), _op: Operation| {
            let g = g.clone();
            async move {
                g.acquire().await.unwrap().forget();
                BodyResult::Ok(())
            }
        },
        options,
    );
    (c, gate)
}
