//! Key labels: the `Display` text of a keyed operation's key, as snapshots, signals and
//! [`Operation::key`](crate::Operation::key) show it.
//!
//! A label is made once per activation of a key, so for workloads with many distinct keys it is
//! made about once per item. Short labels (integers, chars, short names: up to
//! [`INLINE`] bytes) are kept inline, so making, copying and dropping one never allocates or
//! touches a shared reference count; longer ones are shared behind an `Arc<str>`.

use std::fmt::{self, Display, Write};
use std::sync::Arc;

/// The longest label kept inline (a `u64` or `i64` needs at most 20 bytes).
pub(crate) const INLINE: usize = 22;

#[derive(Clone)]
pub(crate) struct Label(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

/// Collects `Display` output inline until it no longer fits.
struct Buf {
    len: usize,
    bytes: [u8; INLINE],
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > INLINE {
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Label {
    /// The label of `key`.
    pub(crate) fn of(key: &(impl Display + ?Sized)) -> Self {
        let mut buf = Buf {
            len: 0,
            bytes: [0; INLINE],
        };
        match write!(buf, "{key}") {
            Ok(()) => Label(Repr::Inline {
                // At most INLINE (22) bytes.
                len: buf.len as u8,
                bytes: buf.bytes,
            }),
            Err(_) => Label(Repr::Shared(Arc::from(key.to_string()))),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            // Only whole `&str` pieces are ever written, so the bytes are valid UTF-8.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Shared(s) => s,
        }
    }

    /// The label as a shared string (allocates for inline labels).
    pub(crate) fn to_arc(&self) -> Arc<str> {
        match &self.0 {
            Repr::Inline { .. } => Arc::from(self.as_str()),
            Repr::Shared(s) => s.clone(),
        }
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// What a coordinator records as an operation's key: nothing for plain coordinators (so
/// their records carry no label at all), a [`Label`] for keyed ones.
pub(crate) trait KeyLabel: Clone + Send + Sync + 'static {
    /// The label the operation handle shows.
    fn label(&self) -> Option<Label>;
    /// The label snapshots and signals show.
    fn to_arc(&self) -> Option<Arc<str>>;
}

impl KeyLabel for () {
    fn label(&self) -> Option<Label> {
        None
    }
    fn to_arc(&self) -> Option<Arc<str>> {
        None
    }
}

impl KeyLabel for Label {
    fn label(&self) -> Option<Label> {
        Some(self.clone())
    }
    fn to_arc(&self) -> Option<Arc<str>> {
        Some(Label::to_arc(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_labels_stay_inline_and_long_ones_are_shared() {
        let n = Label::of(&u64::MAX);
        assert_eq!(n.as_str(), "18446744073709551615");
        assert!(matches!(n.0, Repr::Inline { .. }));
        let neg = Label::of(&i64::MIN);
        assert_eq!(neg.as_str(), "-9223372036854775808");
        assert!(matches!(neg.0, Repr::Inline { .. }));
        let exact = "a".repeat(INLINE);
        assert!(matches!(Label::of(&exact).0, Repr::Inline { .. }));
        let long = "é".repeat(INLINE);
        let l = Label::of(&long);
        assert_eq!(l.as_str(), long);
        assert!(matches!(l.0, Repr::Shared(_)));
        assert_eq!(&*l.to_arc(), long);
        assert_eq!(&*Label::of("tenant-7").to_arc(), "tenant-7");
        assert_eq!(Label::of(&'k').as_str(), "k");
        assert_eq!(Label::of("").as_str(), "");
    }
}
