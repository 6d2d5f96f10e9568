//! chitchat's `Transport` over a UDP socket whose every datagram is sealed (see [`seal`]).
//!
//! Invariants:
//! - `recv` never returns `Err` for a datagram it refuses, nor for a transient socket error: an
//!   `Err` would end chitchat's gossip loop for good. Each refusal is counted and logged at most
//!   once a second.
//! - `recv` is cancel-safe (chitchat polls it inside `select!`): its only await points are the
//!   socket's `recv_from`, which is cancel-safe, and a back-off sleep that holds no datagram.
//! - The replay guard is asked only after a datagram authenticates, so forged traffic cannot
//!   fill it.
//!
//! [`seal`]: crate::seal

use crate::seal::{self, Keys, Reject, ReplayGuard};
use async_trait::async_trait;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters and keys shared by the transport, its socket and the public handle.
pub(crate) struct Wire {
    pub(crate) keys: Keys,
    /// The addresses datagrams to this node may be sealed for: the advertised one first, then
    /// the bound one when it differs.
    me: Vec<SocketAddr>,
    guard: Mutex<ReplayGuard>,
    pub(crate) traffic: Counters,
    /// Wall-clock second of the last refusal log line.
    last_log: AtomicU64,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("keys", &self.keys)
            .field("me", &self.me)
            .field("traffic", &self.traffic)
            .finish_non_exhaustive()
    }
}

/// What went over the socket.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) oversized: AtomicU64,
}

impl Wire {
    pub(crate) fn new(keys: Keys, replay_window: Duration, me: Vec<SocketAddr>) -> Self {
        Wire {
            keys,
            me,
            guard: Mutex::new(ReplayGuard::new(replay_window, 1 << 16)),
            traffic: Counters::default(),
            last_log: AtomicU64::new(0),
        }
    }

    /// Logs at most once a wall-clock second.
    fn log_limited(&self, log: impl FnOnce()) {
        let second = seal::wall_ms() / 1000;
        let last = self.last_log.load(Ordering::Relaxed);
        if last != second
            && self
                .last_log
                .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log();
        }
    }

    fn refuse(&self, reason: Reject, from: SocketAddr, len: usize) {
        let total = self.traffic.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        self.log_limited(|| {
            tracing::warn!(
                target: "ephemeral_cluster",
                %from, len, %reason, rejected_so_far = total,
                "refused a gossip datagram"
            );
        });
    }

    /// Opens a datagram and turns it into a gossip message, or says why not.
    fn accept(&self, datagram: &[u8], plain: &mut Vec<u8>) -> Result<ChitchatMessage, Reject> {
        let (sent_ms, nonce) = self.keys.open(datagram, &self.me, plain)?;
        self.guard.lock().unwrap_or_else(|e| e.into_inner()).admit(
            seal::wall_ms(),
            sent_ms,
            nonce,
        )?;
        let mut bytes = plain.as_slice();
        ChitchatMessage::deserialize(&mut bytes).map_err(|_| Reject::Malformed)
    }
}

/// Hands chitchat the socket the node bound before starting it (so a port-0 listen address
/// resolves to a real port that can be advertised).
pub(crate) struct SealedTransport {
    socket: Mutex<Option<tokio::net::UdpSocket>>,
    wire: Arc<Wire>,
}

impl SealedTransport {
    pub(crate) fn new(socket: tokio::net::UdpSocket, wire: Arc<Wire>) -> Self {
        SealedTransport {
            socket: Mutex::new(Some(socket)),
            wire,
        }
    }
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, _listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = self
            .socket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| anyhow::anyhow!("the cluster socket was already opened"))?;
        Ok(Box::new(SealedSocket {
            socket,
            wire: self.wire.clone(),
            plain: Vec::with_capacity(seal::MAX_DATAGRAM),
            sealed: Vec::with_capacity(seal::MAX_DATAGRAM),
            buf: vec![0u8; seal::MAX_DATAGRAM + 1].into_boxed_slice(),
        }))
    }
}

struct SealedSocket {
    socket: tokio::net::UdpSocket,
    wire: Arc<Wire>,
    plain: Vec<u8>,
    sealed: Vec<u8>,
    buf: Box<[u8]>,
}

#[async_trait]
impl Socket for SealedSocket {
    async fn send(&mut self, to: SocketAddr, message: ChitchatMessage) -> anyhow::Result<()> {
        self.plain.clear();
        message.serialize(&mut self.plain);
        self.wire
            .keys
            .seal(seal::wall_ms(), to, &self.plain, &mut self.sealed);
        if self.sealed.len() > seal::MAX_DATAGRAM {
            // chitchat sizes deltas for the bare limit; only incompressible state near it can
            // overflow once sealed. The next round sends a new delta.
            let total = self.wire.traffic.oversized.fetch_add(1, Ordering::Relaxed) + 1;
            let len = self.sealed.len();
            self.wire.log_limited(|| {
                tracing::warn!(
                    target: "ephemeral_cluster",
                    %to, len, oversized_so_far = total,
                    "a sealed gossip datagram is over the UDP limit and was not sent"
                );
            });
            return Ok(());
        }
        self.socket.send_to(&self.sealed, to).await?;
        let t = &self.wire.traffic;
        t.sent.fetch_add(1, Ordering::Relaxed);
        t.sent_bytes
            .fetch_add(self.sealed.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            let (len, from) = match self.socket.recv_from(&mut self.buf).await {
                Ok(got) => got,
                Err(err) => {
                    // ICMP "port unreachable" from a peer that is gone surfaces here as
                    // ConnectionRefused; none of these may end the gossip loop.
                    self.wire.log_limited(|| {
                        tracing::warn!(target: "ephemeral_cluster", error = %err, "gossip socket error");
                    });
                    if !matches!(
                        err.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::Interrupted
                            | std::io::ErrorKind::WouldBlock
                    ) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
            };
            let t = &self.wire.traffic;
            t.received.fetch_add(1, Ordering::Relaxed);
            t.received_bytes.fetch_add(len as u64, Ordering::Relaxed);
            if len > seal::MAX_DATAGRAM {
                self.wire.refuse(Reject::Truncated, from, len);
                continue;
            }
            match self.wire.accept(&self.buf[..len], &mut self.plain) {
                Ok(message) => return Ok((from, message)),
                Err(reason) => self.wire.refuse(reason, from, len),
            }
        }
    }
}
