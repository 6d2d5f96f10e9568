//! How a signal is written into chitchat's per-node key/value state.
//!
//! Each node publishes its own live signals in a ring of at most `max_capacity` keys,
//! `sig.<slot>`, so its state (values and tombstones) never holds more than `max_capacity`
//! signal keys, however many signals it raises. A value is a small JSON array:
//! `[timestamp in ns since the Unix epoch, "operation id", "name", "key" or null, lifetime in
//! ns]`, where the lifetime is the event's ttl or the origin's `max_age`, whichever is shorter:
//! a receiver with a longer window still drops it when the origin would. The event's
//! propagation path does not travel: a remote event arrives at depth 0.

use ephemeral::{OperationId, SignalEvent};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The prefix of a node's signal keys.
pub(crate) const SIGNAL_PREFIX: &str = "sig.";
/// Set by a node that leaves: the others drop it (and its signals) at once.
pub(crate) const BYE_KEY: &str = "bye";
/// Moves on every retraction: chitchat announces sets but not deletions, so this set wakes the
/// other members to look for the deleted keys at once.
pub(crate) const REMOVALS_KEY: &str = "removals";

/// The chitchat key of ring slot `slot`.
pub(crate) fn slot_key(slot: usize) -> String {
    format!("{SIGNAL_PREFIX}{slot}")
}

/// The slot of a chitchat key written by [`slot_key`].
pub(crate) fn parse_slot_key(key: &str) -> Option<usize> {
    key.strip_prefix(SIGNAL_PREFIX)?.parse().ok()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How many bytes `s` takes once escaped in a JSON string.
pub(crate) fn escaped_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// Writes `event` as a value; `max_age` is the origin's window.
pub(crate) fn encode(event: &SignalEvent, max_age: Duration) -> String {
    let nanos_since_epoch = event
        .timestamp()
        .duration_since(UNIX_EPOCH)
        .map_or(0, nanos);
    let life = event.ttl().map_or(max_age, |ttl| ttl.min(max_age));
    let ttl = nanos(life);
    let nanos = nanos_since_epoch;
    serde_json::json!([
        nanos,
        event.operation_id().to_string(),
        event.signal(),
        event.key(),
        ttl
    ])
    .to_string()
}

/// Reads a value written by [`encode`]; `None` for anything else.
pub(crate) fn decode(value: &str) -> Option<SignalEvent> {
    let Value::Array(parts) = serde_json::from_str::<Value>(value).ok()? else {
        return None;
    };
    let [nanos, id, name, key, ttl] = parts.as_slice() else {
        return None;
    };
    let timestamp = UNIX_EPOCH.checked_add(Duration::from_nanos(nanos.as_u64()?))?;
    let id: OperationId = id.as_str()?.parse().ok()?;
    let name = name.as_str()?;
    let key = match key {
        Value::Null => None,
        Value::String(k) => Some(k.as_str()),
        _ => return None,
    };
    let event = SignalEvent::new(name, id, key, timestamp);
    Some(event.with_ttl(Duration::from_nanos(ttl.as_u64()?)))
}

/// What identifies one event across the cluster: its operation id, timestamp, name and key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    id: OperationId,
    at: SystemTime,
    name: Arc<str>,
    key: Option<Arc<str>>,
}

impl Identity {
    pub(crate) fn of(event: &SignalEvent) -> Self {
        Identity {
            id: event.operation_id(),
            at: event.timestamp(),
            name: event.signal().into(),
            key: event.key().map(Arc::from),
        }
    }

    /// The signal's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether `event` is the one this identifies.
    #[cfg(test)]
    pub(crate) fn is(&self, event: &SignalEvent) -> bool {
        self.id == event.operation_id() && self.at == event.timestamp() && self.same(event)
    }

    fn same(&self, event: &SignalEvent) -> bool {
        *self.name == *event.signal() && self.key.as_deref() == event.key()
    }
}

/// A set of identities that answers "is this event in it?" without allocating.
#[derive(Debug, Default)]
pub(crate) struct IdentitySet {
    by_id: HashMap<(OperationId, SystemTime), Vec<Identity>>,
    len: usize,
}

impl IdentitySet {
    pub(crate) fn insert(&mut self, identity: Identity) -> bool {
        let all = self.by_id.entry((identity.id, identity.at)).or_default();
        if all.contains(&identity) {
            return false;
        }
        all.push(identity);
        self.len += 1;
        true
    }

    pub(crate) fn remove(&mut self, identity: &Identity) -> bool {
        let slot = (identity.id, identity.at);
        let Some(all) = self.by_id.get_mut(&slot) else {
            return false;
        };
        let Some(pos) = all.iter().position(|i| i == identity) else {
            return false;
        };
        all.swap_remove(pos);
        if all.is_empty() {
            self.by_id.remove(&slot);
        }
        self.len -= 1;
        true
    }

    pub(crate) fn contains(&self, event: &SignalEvent) -> bool {
        self.by_id
            .get(&(event.operation_id(), event.timestamp()))
            .is_some_and(|all| all.iter().any(|i| i.same(event)))
    }

    pub(crate) fn contains_identity(&self, identity: &Identity) -> bool {
        self.by_id
            .get(&(identity.id, identity.at))
            .is_some_and(|all| all.contains(identity))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let at = UNIX_EPOCH + Duration::from_nanos(1_733_000_000_123_456_789);
        let plain = SignalEvent::new("rate-limit", OperationId::next(), None, at);
        let keyed = SignalEvent::new(
            "http.error.503",
            OperationId::next(),
            Some("api\t\"x\"\n"),
            at,
        )
        .with_ttl(Duration::from_millis(2500));
        for e in [plain, keyed] {
            let back = decode(&encode(&e, Duration::from_secs(60))).expect("decodes");
            assert_eq!(back.signal(), e.signal());
            assert_eq!(back.key(), e.key());
            assert_eq!(back.operation_id(), e.operation_id());
            assert_eq!(back.timestamp(), e.timestamp());
            assert_eq!(back.ttl(), Some(e.ttl().unwrap_or(Duration::from_secs(60))));
            assert!(Identity::of(&e).is(&back));
        }
    }

    #[test]
    fn non_ascii_and_nul_survive() {
        let e = SignalEvent::new(
            "ünïcødé\0名前",
            OperationId::next(),
            Some("ключ"),
            UNIX_EPOCH,
        );
        let back = decode(&encode(&e, Duration::MAX)).unwrap();
        assert_eq!(back.signal(), "ünïcødé\0名前");
        assert_eq!(back.key(), Some("ключ"));
    }

    #[test]
    fn foreign_values_are_refused() {
        for v in [
            "",
            "[]",
            "{}",
            "[1,\"x\",\"n\",null,null]",
            "[1,\"00\",2,null,null]",
            "nonsense",
            "[-1,\"00000000000000ff\",\"n\",null,null]",
        ] {
            assert!(decode(v).is_none(), "{v}");
        }
    }

    #[test]
    fn the_lifetime_is_the_shorter_of_ttl_and_the_origin_window() {
        let e = SignalEvent::new("x", OperationId::next(), None, UNIX_EPOCH);
        let short = decode(&encode(&e, Duration::from_secs(5))).unwrap();
        assert_eq!(short.ttl(), Some(Duration::from_secs(5)));
        let e = e.with_ttl(Duration::from_secs(2));
        assert_eq!(
            decode(&encode(&e, Duration::from_secs(5))).unwrap().ttl(),
            Some(Duration::from_secs(2))
        );
        let forever = decode(&encode(&e.with_ttl(Duration::MAX), Duration::MAX)).unwrap();
        assert!(forever.ttl().unwrap() > Duration::from_secs(500 * 365 * 24 * 3600));
    }

    #[test]
    fn escaped_length_counts_what_json_adds() {
        assert_eq!(escaped_len("abc"), 3);
        assert_eq!(escaped_len("a\"b"), 4);
        assert_eq!(escaped_len("\u{1}"), 6);
        assert_eq!(escaped_len("é"), 2);
        let nasty = "\u{1}\"\\".repeat(100);
        let e = SignalEvent::new(
            nasty.clone(),
            OperationId::next(),
            Some(nasty.as_str()),
            UNIX_EPOCH,
        );
        let value = encode(&e, Duration::MAX);
        assert!(value.len() >= 2 * escaped_len(&nasty), "{}", value.len());
        assert!(
            value.len() <= 2 * escaped_len(&nasty) + 120,
            "{}",
            value.len()
        );
    }

    #[test]
    fn identity_set_finds_events_without_allocating_a_key() {
        let at = UNIX_EPOCH + Duration::from_secs(5);
        let id = OperationId::next();
        let a = SignalEvent::new("a", id, None, at);
        let b = SignalEvent::new("b", id, None, at);
        let mut set = IdentitySet::default();
        assert!(set.insert(Identity::of(&a)));
        assert!(!set.insert(Identity::of(&a)));
        assert!(set.contains(&a) && !set.contains(&b));
        assert!(set.insert(Identity::of(&b)));
        assert_eq!(set.len(), 2);
        assert!(set.remove(&Identity::of(&a)));
        assert!(!set.remove(&Identity::of(&a)));
        assert!(!set.contains(&a) && set.contains(&b));
        assert!(set.remove(&Identity::of(&b)));
        assert!(set.is_empty());
    }

    #[test]
    fn slot_keys_round_trip() {
        assert_eq!(parse_slot_key(&slot_key(42)), Some(42));
        assert_eq!(parse_slot_key("sig.x"), None);
        assert_eq!(parse_slot_key("bye"), None);
    }
}
