//! Past one machine: cameras spread over the nodes of a cluster, with
//! NATS JetStream as the engine rather than a coordinator of vigil's own.
//!
//! The wanted cameras, the live nodes and who runs what live in JetStream
//! key-value [`buckets`]; each node works out from the same names which
//! cameras are its own ([`place`], weighted rendezvous hashing) and takes
//! them by lease, so no camera is analysed by two nodes at once and a dead
//! node's cameras are taken over once their leases run out.

pub mod agent;
pub mod buckets;
pub mod place;
