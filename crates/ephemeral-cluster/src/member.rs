//! A member of the cluster, as this node sees it.

use chitchat::ChitchatId;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A live member of the cluster (this node included).
/// Members order by name, then address, then generation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    name: Arc<str>,
    addr: SocketAddr,
    generation: u64,
    is_self: bool,
}

impl Member {
    pub(crate) fn new(id: &ChitchatId, is_self: bool) -> Self {
        Member {
            name: id.node_id.clone(),
            addr: id.gossip_advertise_addr,
            generation: id.generation_id,
            is_self,
        }
    }

    /// The member's name ([`ClusterConfig::node_name`](crate::ClusterConfig::node_name)).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address it gossips on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Which incarnation this is: a restarted member comes back with a higher generation.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this is the node holding the handle.
    #[must_use]
    pub fn is_self(&self) -> bool {
        self.is_self
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("generation", &self.generation)
            .field("is_self", &self.is_self)
            .finish()
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.addr)
    }
}
