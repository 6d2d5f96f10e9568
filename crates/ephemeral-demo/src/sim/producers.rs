//! The service's producers and control loops: traffic for each coordinator, an autoscaler and
//! a circuit breaker, each stopping when its token is cancelled.

use super::world::{Command, Payment, Rng, Translation, Weather};
use super::Service;
use ephemeral::{
    CancellationToken, EnqueueError, OperationId, SignalEvent, SignalSource, TryEnqueueError,
};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

const LANGS: [&str; 6] = ["de", "fr", "es", "ja", "pt", "nl"];
const USERS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];

impl Service {
    /// Starts the producers and control loops; they stop when `stop` is cancelled.
    pub(crate) fn run(&self, stop: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().produce_translations(stop.clone())),
            tokio::spawn(self.clone().produce_commands(stop.clone())),
            tokio::spawn(self.clone().produce_payments(stop.clone())),
            tokio::spawn(self.clone().autoscale(stop.clone())),
            tokio::spawn(self.clone().circuit_breaker(stop.clone())),
        ]
    }

    async fn produce_translations(self, stop: CancellationToken) {
        let mut rng = Rng::new(1);
        let mut n = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while !stop.is_cancelled() {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let burst = if Weather::at(self.started.elapsed()).surge {
                3
            } else {
                1
            };
            for _ in 0..burst {
                n += 1;
                let t = Translation {
                    n,
                    lang: LANGS[rng.below(LANGS.len() as u64) as usize],
                };
                // Waits for queue room: back-pressure reaches the producer.
                tokio::select! {
                    r = self.translator.enqueue(t) => if r.is_err() { return },
                    () = stop.cancelled() => return,
                }
            }
        }
    }

    async fn produce_commands(self, stop: CancellationToken) {
        let mut rng = Rng::new(2);
        let mut seq = 0u64;
        let mut last_shed_signal: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while !stop.is_cancelled() {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            for _ in 0..2 {
                seq += 1;
                // alice is the hot user: 45 % of all commands.
                let user = if rng.chance(0.45) {
                    "alice"
                } else {
                    USERS[1 + rng.below(USERS.len() as u64 - 1) as usize]
                };
                let command = Command {
                    user: user.to_string(),
                    seq,
                };
                match self.commands.try_enqueue(command) {
                    Ok(_) => {}
                    Err(TryEnqueueError::KeyOverloaded(c)) => {
                        // Her queue is full: shed (other users are not held back), and say so
                        // at most every 250 ms.
                        self.shed.overloaded.fetch_add(1, Relaxed);
                        let now = Instant::now();
                        if last_shed_signal.is_none_or(|t| now - t >= Duration::from_millis(250)) {
                            last_shed_signal = Some(now);
                            self.sink.raise_with_key("backpressure.shed", c.user);
                        }
                    }
                    Err(TryEnqueueError::Full(_)) => {
                        self.shed.overloaded.fetch_add(1, Relaxed);
                    }
                    Err(_) => return,
                }
            }
        }
    }

    async fn produce_payments(self, stop: CancellationToken) {
        let mut n = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        while !stop.is_cancelled() {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            n += 1;
            match self.payments.enqueue_with_handle(Payment { n }).await {
                Ok(done) => {
                    // A receipt follows each successful payment.
                    let emails = self.emails.clone();
                    tokio::spawn(async move {
                        if done.await.is_ok() {
                            let _ = emails.try_enqueue(n);
                        }
                    });
                }
                Err(EnqueueError::Rejected(_)) => {
                    self.shed.breaker.fetch_add(1, Relaxed);
                }
                Err(_) => return,
            }
        }
    }

    /// Scales the translator by load: up while work piles up, down when it is quiet, never
    /// while the upstream asks us to back off. Announces each decision as a signal.
    async fn autoscale(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        while !stop.is_cancelled() {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let s = self.translator.stats();
            let limit = s.max_concurrency;
            let throttled = self.sink.has_signal("rate-limit");
            let next = if s.pending > 150 && !throttled {
                self.sink.raise("load.high");
                (limit + 4).min(32)
            } else if s.pending < 20 && s.active * 2 < limit {
                self.sink.raise("load.low");
                limit.saturating_sub(2).max(4)
            } else {
                limit
            };
            if next != limit && self.translator.set_max_concurrency(next).is_ok() {
                self.shed.scaled.fetch_add(1, Relaxed);
                self.sink.raise(format!("scale.to:{next}"));
            }
        }
    }

    /// Opens the circuit when payments keep failing: a `circuit-open` signal with a 3 s ttl
    /// on the sink, which the payments coordinator refuses work on; it closes by itself.
    async fn circuit_breaker(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut open = false;
        while !stop.is_cancelled() {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let is_open = self.sink.has_signal("circuit-open");
            if open && !is_open {
                self.sink.raise("circuit-closed");
            }
            open = is_open;
            if open {
                continue;
            }
            let since = ephemeral::now() - Duration::from_secs(2);
            let recent_failures = self
                .sink
                .signals_since(since)
                .iter()
                .filter(|e| e.is("payment.failed"))
                .count();
            if recent_failures >= 8 {
                let event = SignalEvent::new(
                    "circuit-open",
                    OperationId::next(),
                    Some("payments"),
                    ephemeral::now(),
                )
                .with_ttl(Duration::from_secs(3));
                self.sink.raise_event(event);
                self.shed.breaker_opened.fetch_add(1, Relaxed);
                open = true;
            }
        }
    }
}
