//! The operation handle given to bodies, and what is kept of an operation.

mod error;
mod snapshot;

pub use error::OperationError;
pub use snapshot::OperationSnapshot;
