//! `--many`: a crowd of small coordinators feeding the dashboard.

use ephemeral::{CancellationToken, Operation, Options, WorkCoordinator};
use std::time::Duration;

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
