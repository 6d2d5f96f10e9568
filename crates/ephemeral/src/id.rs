//! Operation identity.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The identity of one operation (or of one hand-made signal event).
///
/// Ids are unique within a process by construction: a counter is passed through a reversible
/// 64-bit mixer salted once per process, so ids look random (they make poor hash-flooding
/// targets and leak no counts) yet two ids from one process never collide.
///
/// # Examples
///
/// ```
/// use ephemeral::OperationId;
///
/// let a = OperationId::next();
/// let b = OperationId::next();
/// assert_ne!(a, b);
/// assert_eq!(OperationId::from(a.get()), a);
/// println!("operation {a}");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
// Ids are handed out in blocks per thread (`BLOCK`), so taking one touches no shared cache
// line on the hot path.
pub struct OperationId(u64);

/// Ids reserved per thread at a time.
const BLOCK: u64 = 1024;

static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// (next counter value, end of this thread's block)
    static LOCAL: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn salt() -> u64 {
    static SALT: OnceLock<u64> = OnceLock::new();
    *SALT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // Any value works: the mixer below is a bijection for every salt.
        mix(nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15)
    })
}

/// The splitmix64 finaliser: each step (xor-shift, multiply by an odd constant) is invertible,
/// so the whole function is a bijection on `u64`.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl OperationId {
    /// Takes the next id of this process.
    #[must_use]
    pub fn next() -> Self {
        let counter = LOCAL.with(|local| {
            let (next, end) = local.get();
            if next < end {
                local.set((next + 1, end));
                next
            } else {
                let start = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
                local.set((start + 1, start + BLOCK));
                start
            }
        });
        // `counter ^ salt` is a bijection of the counter, and so is `mix`.
        OperationId(mix(counter ^ salt()))
    }

    /// The raw value.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for OperationId {
    /// Rebuilds an id from [`OperationId::get`] (for example one read back from JSON).
    fn from(raw: u64) -> Self {
        OperationId(raw)
    }
}

impl fmt::Debug for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperationId({:016x})", self.0)
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for OperationId {
    type Err = ParseOperationIdError;

    /// Parses the [`Display`](fmt::Display) form: 16 hexadecimal digits (either case; 1 to
    /// 16 digits are accepted, as `u64::from_str_radix` reads them).
    ///
    /// ```
    /// use ephemeral::OperationId;
    ///
    /// let id = OperationId::next();
    /// let back: OperationId = id.to_string().parse().unwrap();
    /// assert_eq!(back, id);
    /// assert!("not-an-id".parse::<OperationId>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let well_formed =
            !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(ParseOperationIdError { input_len: s.len() });
        }
        u64::from_str_radix(s, 16)
            .map(OperationId)
            .map_err(|_| ParseOperationIdError { input_len: s.len() })
    }
}

/// The text given to [`OperationId`]'s `FromStr` is not 1 to 16 hexadecimal digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseOperationIdError {
    input_len: usize,
}

impl fmt::Display for ParseOperationIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an operation id is 1 to 16 hexadecimal digits (got {} bytes that are not)",
            self.input_len
        )
    }
}

impl std::error::Error for ParseOperationIdError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_never_collide_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..20_000).map(|_| OperationId::next()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(seen.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(seen.len(), 80_000);
    }

    #[test]
    fn display_and_from_str_round_trip() {
        for _ in 0..1000 {
            let id = OperationId::next();
            assert_eq!(id.to_string().parse::<OperationId>(), Ok(id));
            assert_eq!(id.to_string().to_uppercase().parse::<OperationId>(), Ok(id));
        }
        assert_eq!("0".parse::<OperationId>(), Ok(OperationId::from(0)));
        for bad in ["", "+1", "-1", "0x10", "g", " 1", "11111111111111111"] {
            assert!(bad.parse::<OperationId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mixer_is_a_bijection_on_a_sample() {
        let outs: HashSet<u64> = (0..100_000u64).map(mix).collect();
        assert_eq!(outs.len(), 100_000);
    }
}
