//! `CoordinatorFactory` and `KeyedCoordinatorFactory`: named configurations, built lazily, one
//! instance per name, and an error listing the known names for an unknown one.

use ephemeral::{
    CoordinatorFactory, KeyedCoordinatorFactory, Operation, Options, TryEnqueueError,
    UnknownCoordinator,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

type BodyResult = Result<(), std::io::Error>;

fn noop_body(_n: u32, _op: Operation) -> futures::future::Ready<BodyResult> {
    futures::future::ready(Ok(()))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn registering_builds_nothing() {
    // No runtime here: building a coordinator would panic, registering must not.
    let built = Arc::new(AtomicUsize::new(0));
    let factory = CoordinatorFactory::new();
    let b = built.clone();
    assert!(factory.register(
        "counting",
        move |_n: u32, _op: Operation| {
            b.fetch_add(1, Ordering::SeqCst);
            async { BodyResult::Ok(()) }
        },
        Options::default(),
    ));
    // Invalid options are only checked when the coordinator is built.
    assert!(factory.register("broken", noop_body, Options::default().max_concurrency(0)));
    assert_eq!(factory.names(), ["broken", "counting"]);
    assert_eq!(built.load(Ordering::SeqCst), 0);

    runtime().block_on(async {
        let c = factory.coordinator("counting").unwrap();
        c.enqueue(1).await.unwrap();
        c.complete();
        c.drain().await;
    });
    assert_eq!(built.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn one_instance_per_name() {
    let factory = CoordinatorFactory::new();
    factory.register("a", noop_body, Options::default().max_concurrency(3));
    factory.register("b", noop_body, Options::default().max_concurrency(5));
    let a1 = factory.coordinator("a").unwrap();
    let a2 = factory.clone().coordinator("a").unwrap();
    let b = factory.coordinator("b").unwrap();
    a1.enqueue(1).await.unwrap();
    a2.enqueue(2).await.unwrap();
    b.enqueue(3).await.unwrap();
    assert_eq!(a1.total_enqueued(), 2);
    assert_eq!(a2.total_enqueued(), 2);
    assert_eq!(b.total_enqueued(), 1);
    assert_eq!((a1.max_concurrency(), b.max_concurrency()), (3, 5));
    // The factory keeps the instance alive: dropping every handle does not complete it.
    a1.complete();
    drop((a1, a2));
    let a3 = factory.coordinator("a").unwrap();
    assert!(a3.is_completed());
    assert_eq!(a3.total_enqueued(), 2);
    drop(b);
    let b2 = factory.coordinator("b").unwrap();
    assert!(
        !b2.is_completed(),
        "dropping handles closed the factory's coordinator"
    );
    b2.enqueue(4).await.unwrap();
    assert_eq!(b2.total_enqueued(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_use_builds_once() {
    for _ in 0..20 {
        let built = Arc::new(AtomicUsize::new(0));
        let factory: CoordinatorFactory<u32> = CoordinatorFactory::new();
        factory.register("shared", noop_body, Options::default());
        let b = built.clone();
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let f = factory.clone();
                let b = b.clone();
                tokio::spawn(async move {
                    let c = f.coordinator("shared").unwrap();
                    b.fetch_add(1, Ordering::SeqCst);
                    c.enqueue(n).await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(built.load(Ordering::SeqCst), 8);
        let c = factory.coordinator("shared").unwrap();
        assert_eq!(c.total_enqueued(), 8, "handles reached different instances");
    }
}

#[tokio::test]
async fn unknown_name_lists_the_known_ones() {
    let empty: CoordinatorFactory<u32> = CoordinatorFactory::default();
    let err = empty.coordinator("x").unwrap_err();
    assert_eq!(err.name(), "x");
    assert!(err.known().is_empty());
    assert!(err.to_string().contains("\"x\""), "{err}");
    assert!(err.to_string().contains("none"), "{err}");

    let factory = CoordinatorFactory::new();
    factory.register("zeta", noop_body, Options::default());
    factory.register("alpha", noop_body, Options::default());
    let err: UnknownCoordinator = factory.coordinator("beta").unwrap_err();
    assert_eq!(err.name(), "beta");
    assert_eq!(err.known(), ["alpha", "zeta"]);
    let msg = err.to_string();
    assert!(
        msg.contains("beta") && msg.contains("alpha") && msg.contains("zeta"),
        "{msg}"
    );
    // Names are case-sensitive and exact.
    assert!(factory.coordinator("Alpha").is_err());
    assert!(factory.coordinator("alpha").is_ok());
    let dbg = format!("{factory:?}");
    assert!(dbg.contains("alpha") && dbg.contains("zeta"), "{dbg}");
}

#[tokio::test]
async fn re_registering_replaces_until_built() {
    let factory = CoordinatorFactory::new();
    assert!(factory.register("n", noop_body, Options::default().max_concurrency(1)));
    assert!(factory.register("n", noop_body, Options::default().max_concurrency(2)));
    assert_eq!(factory.names(), ["n"]);
    let c = factory.coordinator("n").unwrap();
    assert_eq!(c.max_concurrency(), 2);
    assert!(!factory.register("n", noop_body, Options::default().max_concurrency(7)));
    assert_eq!(factory.coordinator("n").unwrap().max_concurrency(), 2);
}

#[test]
fn a_failed_build_does_not_break_the_name() {
    let factory: CoordinatorFactory<u32> = CoordinatorFactory::new();
    factory.register("late", noop_body, Options::default());
    // First use outside a runtime panics (documented) ...
    let err = catch_unwind(AssertUnwindSafe(|| factory.coordinator("late").map(drop)))
        .expect_err("building outside a runtime must panic");
    assert!(
        panic_message(&*err).contains("tokio runtime"),
        "{}",
        panic_message(&*err)
    );
    // ... and the configuration is still there for a use inside one.
    runtime().block_on(async {
        let c = factory.coordinator("late").unwrap();
        c.enqueue(1).await.unwrap();
    });

    // Invalid options panic with the options' message, every time, and can be fixed by
    // registering again.
    factory.register("bad", noop_body, Options::default().max_concurrency(0));
    runtime().block_on(async {
        for _ in 0..2 {
            let err = catch_unwind(AssertUnwindSafe(|| factory.coordinator("bad").map(drop)))
                .expect_err("invalid options must panic");
            assert!(
                panic_message(&*err).contains("max_concurrency must be at least 1"),
                "{}",
                panic_message(&*err)
            );
        }
        assert!(factory.register("bad", noop_body, Options::default().max_concurrency(2)));
        assert_eq!(factory.coordinator("bad").unwrap().max_concurrency(), 2);
    });
}

#[tokio::test]
async fn keyed_factory_builds_keyed_coordinators() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let factory: KeyedCoordinatorFactory<String, (String, u32)> = KeyedCoordinatorFactory::new();
    assert!(factory.register(
        "commands",
        |cmd: &(String, u32)| cmd.0.clone(),
        move |cmd: (String, u32), op: Operation| {
            let l = l.clone();
            async move {
                assert_eq!(op.key(), Some(cmd.0.as_str()));
                l.lock().unwrap().push(cmd);
                BodyResult::Ok(())
            }
        },
        Options::default().max_concurrency(4).max_pending_per_key(2),
    ));
    factory.register(
        "other",
        |cmd: &(String, u32)| cmd.0.clone(),
        |_cmd, _op| async { BodyResult::Ok(()) },
        Options::default(),
    );
    assert_eq!(factory.names(), ["commands", "other"]);
    let err = factory.coordinator("command").unwrap_err();
    assert_eq!(err.known(), ["commands", "other"]);

    let c = factory.coordinator("commands").unwrap();
    let same = factory.clone().coordinator("commands").unwrap();
    c.pause();
    c.try_enqueue(("alice".into(), 0)).unwrap();
    same.try_enqueue(("alice".into(), 1)).unwrap();
    // The options came along: fair scheduling refuses alice's third pending item.
    assert!(matches!(
        same.try_enqueue(("alice".into(), 2)),
        Err(TryEnqueueError::KeyOverloaded(_))
    ));
    c.try_enqueue(("bob".into(), 0)).unwrap();
    assert_eq!(same.pending_count_for_key(&"alice".to_string()), 2);
    assert_eq!(factory.coordinator("other").unwrap().total_enqueued(), 0);
    c.resume();
    c.complete();
    same.drain().await;
    let log = log.lock().unwrap();
    let alice: Vec<u32> = log
        .iter()
        .filter(|(k, _)| k == "alice")
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(alice, [0, 1]);
    assert_eq!(c.total_completed(), 3);
    assert!(!factory.register(
        "commands",
        |cmd: &(String, u32)| cmd.0.clone(),
        |_cmd, _op| async { BodyResult::Ok(()) },
        Options::default(),
    ));
}
