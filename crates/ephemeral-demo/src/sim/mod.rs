//! The simulated service: four coordinators, a flaky upstream, a hot user, an autoscaler and
//! a circuit breaker, all steered by signals.

mod crowd;
mod producers;
mod world;

pub(crate) use crowd::Crowd;
use world::{Command, Payment, Rng, Shed, Translation, Weather};

use ephemeral::{
    AnyCoordinator, KeyedWorkCoordinator, Operation, Options, SignalSink, WorkCoordinator,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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
