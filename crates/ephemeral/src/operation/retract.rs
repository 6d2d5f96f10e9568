//! Retracting signals from an [`Operation`]: removed from the running operation and passed to
//! the retraction handlers.

use super::Operation;
use crate::label::Label;
use crate::pattern::Pattern;
use crate::signal::{SignalEvent, SignalRetracted};
use crate::time;
use std::sync::Arc;

impl Operation {
    /// Removes the first signal named exactly `signal` from this operation; returns whether
    /// one was there. Fires `on_signal_retracted` / `on_signal_retracted_async`.
    pub fn retract(&self, signal: &str) -> bool {
        let slot = &*self.slot;
        let mut removed = None;
        self.slot.with_running(&mut |id, signals| {
            if id == Some(self.id) {
                if let Some(pos) = signals.iter().position(|e| e.is(signal)) {
                    let e = signals.remove(pos);
                    slot.signal_removed(e.signal());
                    removed = Some(e);
                }
            }
        });
        let Some(removed) = removed else {
            return false;
        };
        slot.retracted(SignalRetracted::new(
            removed.signal_arc().clone(),
            self.id,
            self.key.as_ref().map(Label::to_arc),
            time::system_now(),
            None,
        ));
        true
    }

    /// Removes every signal matching the glob `pattern`; returns how many. Fires one
    /// retraction event per removed signal.
    pub fn retract_matching(&self, pattern: &str) -> usize {
        let p = Pattern::new(pattern);
        let mut removed: Vec<SignalEvent> = Vec::new();
        self.slot.with_running(&mut |id, signals| {
            if id == Some(self.id) {
                let (gone, kept) = std::mem::take(signals)
                    .into_iter()
                    .partition(|e| p.matches(e.signal()));
                *signals = kept;
                removed = gone;
            }
        });
        let slot = &*self.slot;
        let pattern: Arc<str> = Arc::from(pattern);
        let now = time::system_now();
        for e in &removed {
            slot.signal_removed(e.signal());
            slot.retracted(SignalRetracted::new(
                e.signal_arc().clone(),
                self.id,
                self.key.as_ref().map(Label::to_arc),
                now,
                Some(pattern.clone()),
            ));
        }
        removed.len()
    }
}
