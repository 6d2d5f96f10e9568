//! Starting a node: bind the gossip socket, pick this node's identity (name, generation,
//! advertised address), derive the wire's keys, configure and spawn chitchat, and build the
//! [`Core`] its task runs on.

use crate::config::ClusterConfig;
use crate::error::ClusterError;
use crate::node::{Core, CoreParts};
use crate::seal::Keys;
use crate::transport::{SealedTransport, Wire};
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatId, FailureDetectorConfig};
use ephemeral::SignalSink;
use std::sync::Arc;
use std::time::Duration;

/// Starts chitchat for `config` and returns the node's core (its task is not started yet).
pub(super) async fn node(config: &ClusterConfig) -> Result<Arc<Core>, ClusterError> {
    config.validate()?;
    let socket = tokio::net::UdpSocket::bind(config.listen)
        .await
        .map_err(|source| ClusterError::Bind {
            addr: config.listen,
            source,
        })?;
    let bound = socket.local_addr().map_err(|source| ClusterError::Bind {
        addr: config.listen,
        source,
    })?;
    let advertise = match config.advertise {
        Some(addr) => addr,
        None if bound.ip().is_unspecified() => {
            return Err(ClusterError::InvalidConfig(format!(
                "listening on {bound} needs an advertise address the others can reach"
            )))
        }
        None => bound,
    };
    let name = config
        .node_name
        .clone()
        .unwrap_or_else(|| format!("node-{advertise}"));
    // The join time: a restarted node comes back as a newer generation.
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let me = ChitchatId::new(name, generation, advertise);
    // Datagrams to this node are sealed for its advertised address (or, from a peer that
    // seeds with it, the bound one).
    let mut addrs = vec![advertise];
    if bound != advertise {
        addrs.push(bound);
    }
    let wire = Arc::new(Wire::new(
        Keys::derive(&config.secret),
        config.replay_window,
        addrs,
    ));
    let every = config.gossip_interval;
    let chitchat_config = ChitchatConfig {
        chitchat_id: me.clone(),
        cluster_id: wire.keys.cluster_id().to_owned(),
        gossip_interval: every,
        listen_addr: bound,
        seed_nodes: config.seeds.iter().map(ToString::to_string).collect(),
        // chitchat's own detector only steers whom it gossips with: membership and signals
        // follow `failure_timeout` (see `mirror`). Its phi is silence over the mean
        // heartbeat interval, and pushes after raises shorten that mean, so it is made
        // lenient here rather than flap after a burst of raises.
        failure_detector_config: FailureDetectorConfig {
            phi_threshold: 40.0,
            sampling_window_size: 1000,
            max_interval: (every * 20).max(Duration::from_secs(2)),
            initial_interval: every,
            dead_node_grace_period: (every * 50).max(Duration::from_secs(5)),
        },
        marked_for_deletion_grace_period: config.max_age.max(every * 50),
        catchup_callback: None,
        extra_liveness_predicate: None,
    };
    let transport = SealedTransport::new(socket, wire.clone());
    let chitchat = spawn_chitchat(chitchat_config, Vec::new(), &transport)
        .await
        .map_err(|e| ClusterError::Start(format!("{e:#}")))?;
    Ok(Core::new(CoreParts {
        local: SignalSink::new(config.max_capacity, config.max_age),
        me,
        chitchat,
        wire,
        gossip_interval: every,
        max_age: config.max_age,
        max_signal_bytes: config.max_signal_bytes,
        failure_timeout: config.effective_failure_timeout(),
        bound,
    }))
}
