//! The snapshot the API serves: read out of Redis into sealed memory and checked
//! ([`load`]), prepared once per version with every response header ([`prepared`]), held
//! and swapped atomically ([`current`]), and kept current from Redis events, reconnects
//! and polling ([`sync`]), a new version fetched at a jittered moment ([`jitter`]). [`body`] is what a response sends: bytes held, or the identity
//! document of a large snapshot decompressed while it is sent.

pub mod body;
pub mod current;
pub mod jitter;
pub mod load;
pub mod prepared;
pub mod sync;

pub use current::CurrentSnapshot;
pub use prepared::Snapshot;
