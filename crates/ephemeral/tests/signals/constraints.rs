//! `SignalConstraints::check`: root emissions, depth, cycles, terminal and leaf signals, rule
//! order and presets; and the same rules through an operation's `emit` / `emit_caused` /
//! `emit_event` / `emit_caused_event` on a coordinator (where `on_blocked` is reachable).

use ephemeral::{
    BlockReason, BoxError, Operation, Options, SignalConstraints, SignalEvent, SignalSink,
    SignalSource, WorkCoordinator,
};
use std::future::Future;
use std::sync::{Arc, Mutex};

fn path(names: &[&str]) -> Vec<Arc<str>> {
    names.iter().map(|&n| Arc::from(n)).collect()
}

fn names(path: &[Arc<str>]) -> Vec<&str> {
    path.iter().map(|s| &**s).collect()
}

/// Emits `chain[0]` as a root, then each next name caused by the previous event; returns the
/// last path or the first refusal.
fn chain(c: &SignalConstraints, chain: &[&str]) -> Result<Vec<Arc<str>>, BlockReason> {
    let mut current = c.check(chain[0], None)?;
    for name in &chain[1..] {
        current = c.check(name, Some(&current))?;
    }
    Ok(current)
}

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s{i}")).collect()
}

#[test]
fn a_root_emission_is_always_allowed_with_depth_one() {
    for c in [
        SignalConstraints::default(),
        SignalConstraints::strict(),
        SignalConstraints::none(),
        SignalConstraints::default().max_depth(0),
        SignalConstraints::default().max_depth(1),
        SignalConstraints::default().terminal_signals(["a"]),
    ] {
        let root = c.check("a", None).unwrap();
        assert_eq!(names(&root), ["a"], "{c:?}");
        // An empty cause is a root too.
        assert_eq!(names(&c.check("a", Some(&[])).unwrap()), ["a"], "{c:?}");
    }
}

#[test]
fn a_caused_signal_extends_the_cause_path() {
    let c = SignalConstraints::default();
    let ab = c.check("b", Some(&path(&["a"]))).unwrap();
    assert_eq!(names(&ab), ["a", "b"]);
    assert_eq!(
        names(&chain(&c, &["a", "b", "c"]).unwrap()),
        ["a", "b", "c"]
    );
}

#[test]
fn max_depth_blocks_what_a_cause_at_that_depth_causes() {
    let c = SignalConstraints::default().max_depth(3);
    assert_eq!(
        names(&chain(&c, &["a", "b", "c"]).unwrap()),
        ["a", "b", "c"]
    );
    assert_eq!(
        chain(&c, &["a", "b", "c", "d"]).unwrap_err(),
        BlockReason::MaxDepthExceeded
    );
    assert_eq!(
        c.check("x", Some(&path(&["a", "b", "c", "d", "e"])))
            .unwrap_err(),
        BlockReason::MaxDepthExceeded
    );

    // max_depth 1 (or 0) blocks every caused signal.
    for depth in [0, 1] {
        let c = SignalConstraints::default().max_depth(depth);
        assert_eq!(
            c.check("b", Some(&path(&["a"]))).unwrap_err(),
            BlockReason::MaxDepthExceeded
        );
    }
}

#[test]
fn cycles_are_blocked_anywhere_on_the_cause_path() {
    let c = SignalConstraints::default();
    assert_eq!(
        c.check("a", Some(&path(&["a"]))).unwrap_err(),
        BlockReason::CycleDetected
    );
    assert_eq!(
        chain(&c, &["a", "b", "a"]).unwrap_err(),
        BlockReason::CycleDetected
    );
    assert_eq!(
        chain(&c, &["a", "b", "c", "b"]).unwrap_err(),
        BlockReason::CycleDetected
    );
    // Case matters: names are compared exactly.
    assert!(chain(&c, &["a", "A"]).is_ok());

    let open = SignalConstraints::default().block_cycles(false);
    assert_eq!(names(&chain(&open, &["a", "a"]).unwrap()), ["a", "a"]);
    assert_eq!(
        names(&chain(&open, &["a", "b", "a"]).unwrap()),
        ["a", "b", "a"]
    );
}

#[test]
fn a_terminal_signal_may_be_emitted_but_causes_nothing() {
    let c = SignalConstraints::default().terminal_signals(["done"]);
    assert!(c.is_terminal("done"));
    assert!(!c.is_terminal("a"));
    let done = chain(&c, &["a", "done"]).unwrap();
    assert_eq!(names(&done), ["a", "done"]);
    assert_eq!(
        c.check("x", Some(&done)).unwrap_err(),
        BlockReason::TerminalSignalReached
    );
    assert_eq!(
        c.check("x", Some(&path(&["done"]))).unwrap_err(),
        BlockReason::TerminalSignalReached
    );
    // Only the cause's *last* signal counts.
    assert_eq!(
        names(&c.check("x", Some(&path(&["done", "b"]))).unwrap()),
        ["done", "b", "x"]
    );
}

#[test]
fn the_first_applicable_rule_is_reported() {
    // Depth and cycle: depth wins.
    let c = SignalConstraints::default().max_depth(2);
    assert_eq!(
        c.check("a", Some(&path(&["a", "b"]))).unwrap_err(),
        BlockReason::MaxDepthExceeded
    );
    // Depth and terminal: depth wins.
    let c = SignalConstraints::default()
        .max_depth(2)
        .terminal_signals(["b"]);
    assert_eq!(
        c.check("x", Some(&path(&["a", "b"]))).unwrap_err(),
        BlockReason::MaxDepthExceeded
    );
    // Cycle and terminal: cycle wins.
    let c = SignalConstraints::default().terminal_signals(["b"]);
    assert_eq!(
        c.check("a", Some(&path(&["a", "b"]))).unwrap_err(),
        BlockReason::CycleDetected
    );
    assert_eq!(
        c.check("b", Some(&path(&["b"]))).unwrap_err(),
        BlockReason::CycleDetected
    );
    // Without cycle blocking, the terminal rule applies.
    let c = c.block_cycles(false);
    assert_eq!(
        c.check("a", Some(&path(&["a", "b"]))).unwrap_err(),
        BlockReason::TerminalSignalReached
    );
}

#[test]
fn leaf_signals_carry_no_path_so_what_they_cause_starts_afresh() {
    let c = SignalConstraints::default()
        .max_depth(2)
        .leaf_signals(["metric"]);
    assert!(c.is_leaf("metric"));
    assert!(!c.is_leaf("a"));
    assert!(c.check("metric", None).unwrap().is_empty());
    let leaf = c.check("metric", Some(&path(&["a"]))).unwrap();
    assert!(leaf.is_empty());
    // Caused by the leaf event: a fresh chain of depth 1, even for a name seen before.
    assert_eq!(names(&c.check("a", Some(&leaf)).unwrap()), ["a"]);
    // A leaf that a rule blocks is still blocked (rules come first).
    assert_eq!(
        c.check("metric", Some(&path(&["a", "b"]))).unwrap_err(),
        BlockReason::MaxDepthExceeded
    );
    let c = SignalConstraints::default().leaf_signals(["a"]);
    assert_eq!(
        c.check("a", Some(&path(&["a"]))).unwrap_err(),
        BlockReason::CycleDetected
    );
}

#[test]
fn presets() {
    // Default: depth 10, cycles blocked.
    let c = SignalConstraints::default();
    let ten = numbered(10);
    let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
    assert_eq!(chain(&c, &ten).unwrap().len(), 10);
    let eleven = numbered(11);
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    assert_eq!(
        chain(&c, &eleven).unwrap_err(),
        BlockReason::MaxDepthExceeded
    );
    assert_eq!(
        chain(&c, &["a", "a"]).unwrap_err(),
        BlockReason::CycleDetected
    );

    // Strict: depth 5, cycles blocked.
    let c = SignalConstraints::strict();
    assert_eq!(chain(&c, &ten[..5]).unwrap().len(), 5);
    assert_eq!(
        chain(&c, &ten[..6]).unwrap_err(),
        BlockReason::MaxDepthExceeded
    );
    assert_eq!(
        chain(&c, &["a", "a"]).unwrap_err(),
        BlockReason::CycleDetected
    );

    // None: no depth limit, cycles allowed.
    let c = SignalConstraints::none();
    let many = vec!["x"; 2_000];
    assert_eq!(chain(&c, &many).unwrap().len(), 2_000);
    // Terminal and leaf sets still apply when set on top.
    let c = SignalConstraints::none().terminal_signals(["end"]);
    assert_eq!(
        chain(&c, &["a", "end", "b"]).unwrap_err(),
        BlockReason::TerminalSignalReached
    );
}

#[test]
fn block_reasons_display() {
    for r in [
        BlockReason::MaxDepthExceeded,
        BlockReason::CycleDetected,
        BlockReason::TerminalSignalReached,
    ] {
        assert!(!r.to_string().is_empty());
    }
}

/// Runs `body` once on a fresh coordinator and checks that it returned `Ok` (assertions inside
/// a body fail the operation, not the test).
async fn run_one<F, Fut>(options: Options, body: F) -> WorkCoordinator<()>
where
    F: Fn((), Operation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let c = WorkCoordinator::new(body, options);
    c.enqueue(()).await.unwrap();
    c.complete();
    c.drain().await;
    let failures: Vec<String> = c
        .failed()
        .iter()
        .filter_map(|s| s.error().map(ToString::to_string))
        .collect();
    assert!(failures.is_empty(), "the body failed: {failures:?}");
    assert_eq!(c.total_completed(), 1);
    c
}

type Blocked = Arc<Mutex<Vec<(String, BlockReason)>>>;

fn recording(c: SignalConstraints) -> (SignalConstraints, Blocked) {
    let blocked: Blocked = Arc::default();
    let log = blocked.clone();
    let c = c.on_blocked(move |evt, reason| {
        log.lock().unwrap().push((evt.signal().to_string(), reason));
    });
    (c, blocked)
}

#[tokio::test]
async fn emit_is_never_blocked_even_by_the_strictest_constraints() {
    // Depth 0 blocks every caused signal, "a" is terminal, and "a" repeats: a root passes all.
    let (constraints, blocked) = recording(
        SignalConstraints::strict()
            .max_depth(0)
            .terminal_signals(["a"]),
    );
    let c = run_one(
        Options::default().signal_constraints(constraints),
        |(), op: Operation| async move {
            assert!(op.emit("a"));
            assert!(op.emit("a"));
            let root = op.emit_event("a").expect("a root is never blocked");
            assert_eq!(root.depth(), 1);
            // What the root causes is blocked (depth 0), in both spellings.
            assert!(!op.emit_caused("b", &root));
            assert!(op.emit_caused_event("b", &root).is_none());
            Ok(())
        },
    )
    .await;
    assert_eq!(c.count_signals("a"), 3);
    assert!(!c.has_signal("b"));
    assert_eq!(
        *blocked.lock().unwrap(),
        [
            ("b".to_string(), BlockReason::MaxDepthExceeded),
            ("b".to_string(), BlockReason::MaxDepthExceeded)
        ]
    );
}

#[tokio::test]
async fn emit_event_returns_the_event_that_was_recorded_and_raised() {
    let sink = SignalSink::default();
    let returned: Arc<Mutex<Vec<SignalEvent>>> = Arc::default();
    let out = returned.clone();
    let c = run_one(
        Options::default().signals(sink.clone()),
        move |(), op: Operation| {
            let out = out.clone();
            async move {
                let a = op.emit_event("a").unwrap();
                assert_eq!(op.signals().last(), Some(&a));
                let b = op.emit_caused_event("b", &a).unwrap();
                assert_eq!(op.signals().last(), Some(&b));
                assert_eq!(a.operation_id(), op.id());
                out.lock().unwrap().extend([a, b]);
                Ok(())
            }
        },
    )
    .await;
    let returned = returned.lock().unwrap().clone();
    assert_eq!(names(returned[0].propagation()), ["a"]);
    assert_eq!(names(returned[1].propagation()), ["a", "b"]);
    // The very events (timestamps included) that the window and the sink hold.
    assert_eq!(c.signals(), returned);
    assert_eq!(sink.signals(), returned);
}

#[tokio::test]
async fn a_chain_passes_each_event_to_the_next_step_until_a_rule_blocks_it() {
    let (constraints, blocked) = recording(
        SignalConstraints::default()
            .max_depth(10)
            .terminal_signals(["done"]),
    );
    let sink = SignalSink::default();
    let c = run_one(
        Options::default()
            .signals(sink.clone())
            .signal_constraints(constraints),
        |(), op: Operation| async move {
            let a = op.emit_event("a").unwrap();
            let b = op.emit_caused_event("b", &a).unwrap();
            // A cycle back to "a" is refused and goes nowhere.
            assert!(op.emit_caused_event("a", &b).is_none());
            let done = op.emit_caused_event("done", &b).unwrap();
            assert_eq!(done.depth(), 3);
            // Nothing follows a terminal signal.
            assert!(op.emit_caused_event("after", &done).is_none());
            assert!(!op.emit_caused("after", &done));
            Ok(())
        },
    )
    .await;
    let held: Vec<String> = c.signals().iter().map(|e| e.signal().to_string()).collect();
    assert_eq!(held, ["a", "b", "done"]);
    assert_eq!(sink.len(), 3);
    assert_eq!(
        *blocked.lock().unwrap(),
        [
            ("a".to_string(), BlockReason::CycleDetected),
            ("after".to_string(), BlockReason::TerminalSignalReached),
            ("after".to_string(), BlockReason::TerminalSignalReached),
        ]
    );
}
