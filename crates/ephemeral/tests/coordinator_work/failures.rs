//! Failures, panics and callbacks: counted, reachable, never hanging a drain.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_panicking_body_is_a_failure_and_the_coordinator_goes_on() {
    let c = WorkCoordinator::new(
        |n: u8, _op| async move {
            if n == 1 {
                panic!("boom {n}");
            }
            Ok::<_, Io>(())
        },
        Options::default().max_concurrency(1),
    );
    for n in 0..3 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    c.drain().await;
    assert_eq!((c.total_completed(), c.total_failed()), (2, 1));
    let failed = c.failed();
    let err = failed[0].error().unwrap();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("boom 1"));
}

#[derive(Debug)]
struct Custom(u32);

impl std::fmt::Display for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "custom {}", self.0)
    }
}

impl std::error::Error for Custom {}

#[tokio::test(start_paused = true)]
async fn body_errors_are_reachable_by_downcast() {
    let c = WorkCoordinator::new(
        |n: u32, _op| async move { Err(Custom(n)) },
        Options::default(),
    );
    c.enqueue(42).await.unwrap();
    c.complete();
    c.drain().await;
    let failed = c.failed();
    let err = failed[0].error().unwrap();
    assert_eq!(err.downcast_ref::<Custom>().unwrap().0, 42);
    assert!(!err.is_panic() && !err.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn panicking_callbacks_never_hang_drain() {
    let samples = Arc::new(AtomicUsize::new(0));
    let s = samples.clone();
    let c = WorkCoordinator::new(
        |_: u8, op: Operation| async move {
            op.emit("x");
            op.retract("x");
            Ok::<_, Io>(())
        },
        Options::default()
            .on_sample(move |_| {
                s.fetch_add(1, Ordering::SeqCst);
                panic!("sampler")
            })
            .on_signal(|_| panic!("on_signal"))
            .on_signal_retracted(|_| panic!("on_retracted"))
            .on_signal_async(|_| async { panic!("async handler") as Result<(), Io> }),
    );
    for n in 0..20 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    tokio::time::timeout(Duration::from_secs(5), c.drain())
        .await
        .expect("drain hung");
    assert_eq!(c.total_completed(), 20);
    assert_eq!(
        samples.load(Ordering::SeqCst),
        20,
        "on_sample runs once per finished operation"
    );
}

#[tokio::test(start_paused = true)]
async fn on_sample_sees_the_operation_finished() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let c = WorkCoordinator::new(
        |_: u8, _op| async { Ok::<_, Io>(()) },
        Options::default()
            .max_concurrency(1)
            .on_sample(move |window| {
                let finished = window.iter().filter(|o| !o.is_running()).count();
                s.lock().unwrap().push(finished);
            }),
    );
    for n in 0..4 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    c.drain().await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4]);
}
