//! Sealing datagrams: keys derived from the shared secret, XChaCha20-Poly1305 with the cluster
//! id and the send time as associated data, and a replay guard.
//!
//! A sealed datagram is `version (1) ‖ send time in ms since the Unix epoch (8, big endian) ‖
//! nonce (24) ‖ ciphertext ‖ tag (16)`. The associated data is the cluster id, the first nine
//! bytes and the recipient's address, so a datagram sealed for another cluster, with its time
//! changed, or captured on its way to one member and replayed to another, does not open. The nonce is random (24 bytes make collisions negligible), so no state is shared
//! between senders.

use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The envelope's format version.
const VERSION: u8 = 1;
const TIME_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Version and time: the authenticated plain header.
const STAMP_LEN: usize = 1 + TIME_LEN;
const HEADER_LEN: usize = STAMP_LEN + NONCE_LEN;
/// What sealing adds to a message.
pub(crate) const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The largest UDP payload over IPv4.
pub(crate) const MAX_DATAGRAM: usize = 65_507;

/// Salt for HKDF: fixes the derivation to this protocol and version.
const SALT: &[u8] = b"ephemeral-cluster/v1";

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Shorter than an envelope.
    Truncated,
    /// An envelope version this node does not speak.
    Version,
    /// The tag did not verify: another secret, another cluster, or altered bytes.
    Forged,
    /// Sealed longer ago (or further ahead) than the replay window.
    Stale,
    /// This exact datagram was already accepted.
    Replayed,
    /// It opened, but is not a gossip message (only a holder of the secret can send one).
    Malformed,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reject::Truncated => "truncated",
            Reject::Version => "unknown envelope version",
            Reject::Forged => "does not authenticate (wrong secret or altered)",
            Reject::Stale => "outside the replay window",
            Reject::Replayed => "replayed",
            Reject::Malformed => "not a gossip message",
        })
    }
}

/// What the secret yields: the cluster id chitchat sees and the datagram key.
pub(crate) struct Keys {
    cluster_id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Keys")
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Derives the cluster id and the AEAD key from `secret` with HKDF-SHA256.
    pub(crate) fn derive(secret: &[u8]) -> Keys {
        let hk = Hkdf::<Sha256>::new(Some(SALT), secret);
        let mut id = [0u8; 16];
        hk.expand(b"cluster-id", &mut id)
            .expect("16 bytes is a valid HKDF-SHA256 output length");
        let mut key = [0u8; 32];
        hk.expand(b"datagram-key", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let cluster_id = format!("ephemeral-{}", hex(&id));
        let cipher = XChaCha20Poly1305::new(&key.into());
        // Best effort: the key also lives inside the cipher.
        key.fill(0);
        std::hint::black_box(&key);
        Keys { cluster_id, cipher }
    }

    /// The chitchat cluster id: public (it travels inside sealed messages), but it only
    /// matches between nodes that share the secret.
    pub(crate) fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The associated data: the cluster id, the envelope's version and time, the recipient.
    fn aad(&self, stamp: &[u8], to: SocketAddr, out: &mut Vec<u8>) {
        use std::io::Write;
        out.clear();
        out.extend_from_slice(self.cluster_id.as_bytes());
        out.extend_from_slice(stamp);
        let _ = write!(out, "{to}");
    }

    /// Seals `plain` for the member at `to` into `out` (cleared first), stamped `now_ms`.
    pub(crate) fn seal(&self, now_ms: u64, to: SocketAddr, plain: &[u8], out: &mut Vec<u8>) {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        out.clear();
        out.reserve(plain.len() + OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&now_ms.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let mut aad = Vec::with_capacity(128);
        self.aad(&out[..STAMP_LEN], to, &mut aad);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce, &aad, &mut out[HEADER_LEN..])
            .expect("XChaCha20-Poly1305 seals any message below 256 GiB");
        out.extend_from_slice(&tag);
    }

    /// Opens `datagram`, sealed for one of the addresses in `me`, into `plain` (cleared first).
    /// Returns the send time and the nonce (for the replay guard); checks neither.
    pub(crate) fn open(
        &self,
        datagram: &[u8],
        me: &[SocketAddr],
        plain: &mut Vec<u8>,
    ) -> Result<(u64, [u8; NONCE_LEN]), Reject> {
        if datagram.len() < OVERHEAD {
            return Err(Reject::Truncated);
        }
        if datagram[0] != VERSION {
            return Err(Reject::Version);
        }
        let stamp = &datagram[..STAMP_LEN];
        let sent_ms = u64::from_be_bytes(
            datagram[1..STAMP_LEN]
                .try_into()
                .expect("the stamp holds eight time bytes"),
        );
        let nonce: [u8; NONCE_LEN] = datagram[STAMP_LEN..HEADER_LEN]
            .try_into()
            .expect("the header holds a whole nonce");
        let body = &datagram[HEADER_LEN..datagram.len() - TAG_LEN];
        let tag = Tag::from_slice(&datagram[datagram.len() - TAG_LEN..]);
        let mut aad = Vec::with_capacity(128);
        for &addr in me {
            plain.clear();
            plain.extend_from_slice(body);
            self.aad(stamp, addr, &mut aad);
            if self
                .cipher
                .decrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, plain, tag)
                .is_ok()
            {
                return Ok((sent_ms, nonce));
            }
        }
        plain.clear();
        Err(Reject::Forged)
    }
}

/// Milliseconds since the Unix epoch on the wall clock (0 before 1970).
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Refuses datagrams sealed outside `window` of this node's wall clock, and any datagram whose
/// nonce was already accepted within the time it could still pass the window check.
///
/// Memory is bounded by `capacity` nonces: past it the oldest are forgotten first, so a replay of
/// one of those could pass until it leaves the window. (At the default capacity that takes more
/// than 65,536 accepted datagrams within twice the window.)
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    seen: HashSet<[u8; NONCE_LEN]>,
    /// Nonces in acceptance order, with the local time they were accepted.
    order: VecDeque<(u64, [u8; NONCE_LEN])>,
}

impl ReplayGuard {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        ReplayGuard {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Accepts (and remembers) a datagram sent at `sent_ms` with `nonce`, or says why not.
    pub(crate) fn admit(
        &mut self,
        now_ms: u64,
        sent_ms: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Result<(), Reject> {
        if now_ms.abs_diff(sent_ms) > self.window_ms {
            return Err(Reject::Stale);
        }
        // A datagram accepted at `t` carries a send time within the window of `t`, so it passes
        // the time check only until `t` plus two windows: past that its nonce can be forgotten.
        let keep = self.window_ms.saturating_mul(2);
        while let Some(&(at, old)) = self.order.front() {
            if now_ms.saturating_sub(at) <= keep {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if self.seen.contains(&nonce) {
            return Err(Reject::Replayed);
        }
        if self.order.len() >= self.capacity {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(nonce);
        self.order.push_back((now_ms, nonce));
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_message_sealed_for_one_member_does_not_open_at_another() {
        let k = Keys::derive(b"0123456789abcdef");
        let mut sealed = Vec::new();
        k.seal(5, addr(7000), b"for 7000", &mut sealed);
        let mut plain = Vec::new();
        assert_eq!(
            k.open(&sealed, &[addr(7001)], &mut plain),
            Err(Reject::Forged)
        );
        assert!(k
            .open(&sealed, &[addr(7001), addr(7000)], &mut plain)
            .is_ok());
        assert_eq!(plain, b"for 7000");
    }

    #[test]
    fn a_sealed_message_opens_with_the_same_secret_only() {
        let a = Keys::derive(b"correct horse battery staple");
        let b = Keys::derive(b"correct horse battery staple");
        let other = Keys::derive(b"correct horse battery stapler");
        assert_eq!(a.cluster_id(), b.cluster_id());
        assert_ne!(a.cluster_id(), other.cluster_id());

        let mut sealed = Vec::new();
        a.seal(1234, addr(1), b"hello gossip", &mut sealed);
        assert_eq!(sealed.len(), b"hello gossip".len() + OVERHEAD);
        let mut plain = Vec::new();
        let (sent, _) = b.open(&sealed, &[addr(1)], &mut plain).unwrap();
        assert_eq!((sent, plain.as_slice()), (1234, &b"hello gossip"[..]));
        assert_eq!(
            other.open(&sealed, &[addr(1)], &mut plain),
            Err(Reject::Forged)
        );
        assert!(plain.is_empty(), "nothing of a refused datagram is kept");
    }

    #[test]
    fn every_altered_byte_and_every_truncation_is_refused() {
        let k = Keys::derive(b"0123456789abcdef");
        let mut sealed = Vec::new();
        k.seal(99, addr(1), b"some message", &mut sealed);
        let mut plain = Vec::new();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let err = k.open(&bad, &[addr(1)], &mut plain).unwrap_err();
            assert!(
                matches!(err, Reject::Forged | Reject::Version),
                "byte {i}: {err:?}"
            );
        }
        for len in 0..sealed.len() {
            let err = k.open(&sealed[..len], &[addr(1)], &mut plain).unwrap_err();
            assert!(
                matches!(err, Reject::Truncated | Reject::Forged),
                "len {len}: {err:?}"
            );
        }
    }

    #[test]
    fn two_seals_of_one_message_differ() {
        let k = Keys::derive(b"0123456789abcdef");
        let (mut x, mut y) = (Vec::new(), Vec::new());
        k.seal(1, addr(1), b"m", &mut x);
        k.seal(1, addr(1), b"m", &mut y);
        assert_ne!(x, y, "fresh nonce per datagram");
    }

    #[test]
    fn debug_output_has_no_key() {
        let k = Keys::derive(b"0123456789abcdef");
        let s = format!("{k:?}");
        assert!(s.contains("cluster_id") && !s.contains("cipher"), "{s}");
    }

    #[test]
    fn replay_guard_refuses_repeats_and_stale_times() {
        let mut g = ReplayGuard::new(Duration::from_secs(10), 100);
        let n = |i: u8| [i; NONCE_LEN];
        assert_eq!(g.admit(100_000, 100_000, n(1)), Ok(()));
        assert_eq!(g.admit(100_001, 100_000, n(1)), Err(Reject::Replayed));
        assert_eq!(g.admit(100_000, 89_999, n(2)), Err(Reject::Stale));
        assert_eq!(g.admit(100_000, 110_001, n(3)), Err(Reject::Stale));
        assert_eq!(g.admit(100_000, 110_000, n(3)), Ok(()));
        // Past two windows the nonce is forgotten, and its time check refuses it anyway.
        assert_eq!(g.admit(130_001, 130_001, n(4)), Ok(()));
        assert_eq!(g.len(), 1);
        assert_eq!(g.admit(130_002, 100_000, n(1)), Err(Reject::Stale));
    }

    #[test]
    fn replay_guard_memory_is_bounded() {
        let mut g = ReplayGuard::new(Duration::from_secs(60), 10);
        for i in 0..50u8 {
            g.admit(1_000, 1_000, [i; NONCE_LEN]).unwrap();
        }
        assert_eq!(g.len(), 10);
        assert_eq!(
            g.admit(1_000, 1_000, [49; NONCE_LEN]),
            Err(Reject::Replayed)
        );
    }
}
