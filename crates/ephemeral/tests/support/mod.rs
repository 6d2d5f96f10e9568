//! Helpers shared by the integration tests (each test binary uses a subset).
#![allow(dead_code)]

/// The payload of every deliberate panic in the tests.
pub(crate) const PANIC_MARK: &str = "deliberate test panic";

/// Keeps the deliberate body panics (payload [`PANIC_MARK`]) out of the test output; other
/// panics still print.
pub(crate) fn quiet_deliberate_panics() {
    quiet_panics(|msg| msg == PANIC_MARK);
}

/// Keeps the panics whose message `planned` accepts out of the test output; other panics (and
/// panics without a string message) still print. The first call in a test binary installs the
/// hook; later calls, whatever their predicate, change nothing.
pub(crate) fn quiet_panics(planned: fn(&str) -> bool) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !msg.is_some_and(planned) {
                previous(info);
            }
        }));
    });
}

/// Waits until `cond` holds, yielding to the runtime's other tasks between checks (no clock
/// involved: on the current-thread runtimes these tests use, each yield lets the coordinator's
/// workers run); panics after `tries` rounds.
pub(crate) async fn wait_until(tries: usize, mut cond: impl FnMut() -> bool) {
    for _ in 0..tries {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    assert!(cond(), "condition not reached");
}
