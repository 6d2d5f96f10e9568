//! The simulated service: four coordinators, a flaky upstream, a hot user, an autoscaler and
//! a circuit breaker, all steered by signals.

use ephemeral::{
    AnyCoordinator, CancellationToken, EnqueueError, KeyedWorkCoordinator, Operation, OperationId,
    Options, SignalEvent, SignalSink, SignalSource, TryEnqueueError, WorkCoordinator,
};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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

/// The service: its coordinators and the shared sink they raise on.
#[derive(Clone, Debug)]
pub(crate) struct Service {
    pub(crate) sink: SignalSink,
    pub(crate) translator: WorkCoordinator<Translation>,
    pub(crate) commands: KeyedWorkCoordinator<String, Command>,
    pub(crate) payments: WorkCoordinator<Payment>,
    pub(crate) emails: WorkCoordinator<u64>,
    pub(crate) shed: Arc<Shed>,
    pub(crate) started: Instant,
    /// Every signal raised on the sink, counted by kind (the sink itself forgets: ttls, age).
    pub(crate) raised: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
    _counting: Arc<ephemeral::Subscription>,
}

const LANGS: [&str; 6] = ["de", "fr", "es", "ja", "pt", "nl"];
const USERS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];

impl Service {
    /// The service on a sink of its own.
    pub(crate) fn start() -> Self {
        Self::start_on(SignalSink::new(5000, Duration::from_secs(60)))
    }

    /// The service raising on, and reacting to, `sink` (a cluster's local sink in `--cluster`
    /// mode, so that a rate limit met by one instance holds back the others).
    pub(crate) fn start_on(sink: SignalSink) -> Self {
        let started = Instant::now();

        let translator = WorkCoordinator::new(
            move |t: Translation, op: Operation| async move {
                op.set_label(format!("translate #{} → {}", t.n, t.lang));
                let mut rng = Rng::new(t.n.wrapping_mul(0x9E37_79B9) ^ 7);
                let weather = Weather::at(started.elapsed());
                tokio::time::sleep(Duration::from_millis(15 + rng.below(45))).await;
                let throttle = if weather.storm { 0.04 } else { 0.0005 };
                if rng.chance(throttle) {
                    // The upstream says how long to back off: a signal that lasts exactly that.
                    let wait = 150 + rng.below(250);
                    op.emit_for(format!("rate-limit:{wait}ms"), Duration::from_millis(wait));
                    op.emit_for("rate-limit", Duration::from_millis(wait));
                    return Err(format!("upstream answered 429 (retry after {wait} ms)"));
                }
                if rng.chance(0.02) {
                    op.emit("http.error.503");
                    return Err("upstream answered 503 Service Unavailable".to_string());
                }
                if rng.chance(0.01) {
                    op.emit("http.error.500");
                    return Err("upstream answered 500 Internal Server Error".to_string());
                }
                Ok(())
            },
            Options::default()
                .name("translator")
                .max_concurrency(8)
                .dynamic_concurrency(true)
                .max_tracked_operations(500)
                .queue_capacity(400)
                .signals(sink.clone())
                .defer_on_signals(["rate-limit"])
                .max_defer_attempts(20)
                .defer_check_interval(Duration::from_millis(50)),
        );

        let commands = KeyedWorkCoordinator::new(
            |c: &Command| c.user.clone(),
            |c: Command, op: Operation| async move {
                op.set_label(format!("{} #{}", c.user, c.seq));
                let mut rng = Rng::new(c.seq ^ 0x51_7CC1);
                tokio::time::sleep(Duration::from_millis(5 + rng.below(25))).await;
                if rng.chance(0.015) {
                    op.emit("command.conflict");
                    return Err("version conflict: the user's state moved on");
                }
                Ok(())
            },
            Options::default()
                .name("commands")
                .max_concurrency(6)
                .max_concurrency_per_key(1)
                .max_pending_per_key(25)
                .max_tracked_operations(500)
                .queue_capacity(500)
                .signals(sink.clone()),
        );

        let payments = WorkCoordinator::new(
            move |p: Payment, op: Operation| async move {
                op.set_label(format!("payment #{}", p.n));
                let mut rng = Rng::new(p.n ^ 0xBEEF);
                tokio::time::sleep(Duration::from_millis(20 + rng.below(30))).await;
                let down = Weather::at(started.elapsed()).gateway_down;
                if down && rng.chance(0.8) {
                    op.emit("payment.failed");
                    op.emit("http.error.502");
                    return Err("payment gateway answered 502 Bad Gateway");
                }
                Ok(())
            },
            Options::default()
                .name("payments")
                .max_concurrency(4)
                .max_tracked_operations(300)
                .signals(sink.clone())
                .cancel_on_signals(["circuit-open"]),
        );

        let emails = WorkCoordinator::new(
            |n: u64, op: Operation| async move {
                op.set_label(format!("receipt #{n}"));
                tokio::time::sleep(Duration::from_millis(30)).await;
            },
            Options::default().name("emails").max_concurrency(2),
        );

        let raised: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
        let counts = raised.clone();
        let counting = sink.subscribe(move |e| {
            // `rate-limit:250ms` counts as `rate-limit:*`, `scale.to:12` as `scale.to:*`.
            let kind = match e.signal().split_once(':') {
                Some((head, _)) => format!("{head}:*"),
                None => e.signal().to_string(),
            };
            let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
            *counts.entry(kind).or_default() += 1;
        });
        Service {
            raised,
            _counting: Arc::new(counting),
            sink,
            translator,
            commands,
            payments,
            emails,
            shed: Arc::default(),
            started,
        }
    }

    /// The coordinators, by name, as the dashboard sees them.
    pub(crate) fn coordinators(&self) -> Vec<(&'static str, Arc<dyn AnyCoordinator>)> {
        vec![
            ("translator", Arc::new(self.translator.clone())),
            ("commands", Arc::new(self.commands.clone())),
            ("payments", Arc::new(self.payments.clone())),
            ("emails", Arc::new(self.emails.clone())),
        ]
    }

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

    /// Stops intake and waits for the work in flight (bounded by `grace`).
    pub(crate) async fn finish(&self, grace: Duration) {
        let all = self.coordinators();
        for (_, c) in &all {
            c.resume();
        }
        self.translator.complete();
        self.commands.complete();
        self.payments.complete();
        let drained = async {
            self.translator.drain().await;
            self.commands.drain().await;
            self.payments.drain().await;
            // Receipts of the last payments are enqueued by their completion tasks.
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.emails.complete();
            self.emails.drain().await;
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            self.translator.cancel();
            self.commands.cancel();
            self.payments.cancel();
            self.emails.cancel();
        }
    }
}

/// `--many`: a crowd of small coordinators, each fed a few items a second, whose bodies emit
/// signals (about 10,000 a minute in all), to see the dashboard under load.
#[derive(Clone, Debug, Default)]
pub(crate) struct Crowd {
    members: Vec<WorkCoordinator<u64>>,
}

impl Crowd {
    pub(crate) fn start(n: usize, registry: &ephemeral_http::Registry) -> Self {
        let members: Vec<WorkCoordinator<u64>> = (0..n)
            .map(|i| {
                let c = WorkCoordinator::new(
                    move |item: u64, op: Operation| async move {
                        op.set_label(format!("job #{item}"));
                        tokio::time::sleep(Duration::from_millis(5 + item % 20)).await;
                        // Each item emits about 3 signals: 50 members × 1.1 items/s × 3 ≈ 10k/min.
                        op.emit(format!("crowd.step.{}", item % 4));
                        op.emit("crowd.tick");
                        if item % 13 == 0 {
                            op.emit("http.error.503");
                            return Err("upstream answered 503");
                        }
                        op.emit("crowd.done");
                        Ok(())
                    },
                    Options::default()
                        .name(format!("crowd-{i:02}"))
                        .max_concurrency(2)
                        .max_tracked_operations(100),
                );
                registry.register(format!("crowd-{i:02}"), c.clone());
                c
            })
            .collect();
        Crowd { members }
    }

    pub(crate) fn run(&self, stop: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        if self.members.is_empty() {
            return Vec::new();
        }
        let members = self.members.clone();
        let stop = stop.clone();
        vec![tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(18));
            let mut n = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => break,
                }
                n += 1;
                let member = &members[(n as usize) % members.len()];
                let _ = member.try_enqueue(n);
            }
            for m in &members {
                m.complete();
            }
        })]
    }
}
