//! Names of every Redis key and channel, derived from `OFERTASWS_PREFIX`.
//!
//! Snapshot keys share the hash tag `{snapshot}` so the atomic switch script can touch
//! them together on a Redis Cluster too. Layout (`P` = prefix):
//!
//! | name | kind | holds |
//! |---|---|---|
//! | `P:{snapshot}:current` | string | JSON [`SnapshotMeta`](crate::snapshot::SnapshotMeta) of the current snapshot |
//! | `P:{snapshot}:seq` | string | counter; every refresh takes the next number |
//! | `P:{snapshot}:versions` | sorted set | retained versions, scored by their sequence number |
//! | `P:{snapshot}:v:VERSION:meta` | string | that version's metadata |
//! | `P:{snapshot}:v:VERSION:gzip` / `:zstd` | string | that version's compressed document |
//! | `P:{snapshot}:v:VERSION:dcz` | hash | its dcz deltas by earlier version ([`crate::delta`]) |
//! | `P:{snapshot}:v:VERSION:deltas` | string | JSON index of those deltas |
//! | `P:lock:refresh` | string | the refresh lock's owner token, with an expiry |
//! | `P:refresh` | channel | refresh requests from operators and the API |
//! | `P:events` | channel | JSON [`Event`](crate::events::Event)s |

use crate::snapshot::Codec;

/// Last part of a version's metadata key.
const VERSION_META: &str = "meta";
/// Last part of the key of a version's dcz bodies.
const VERSION_DCZ: &str = "dcz";
/// Last part of the key of a version's delta index.
const VERSION_DELTAS: &str = "deltas";

/// Key and channel names for one deployment prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix` (the value of `OFERTASWS_PREFIX`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Metadata of the current snapshot.
    pub fn current(&self) -> String {
        format!("{}:{{snapshot}}:current", self.prefix)
    }

    /// Sequence counter handing out snapshot numbers.
    pub fn seq(&self) -> String {
        format!("{}:{{snapshot}}:seq", self.prefix)
    }

    /// Sorted set of retained versions.
    pub fn versions(&self) -> String {
        format!("{}:{{snapshot}}:versions", self.prefix)
    }

    /// Common start of one version's keys: a version's keys are this, the version id and
    /// one of [`Self::version_suffixes`].
    pub fn version_prefix(&self) -> String {
        format!("{}:{{snapshot}}:v:", self.prefix)
    }

    /// What ends each of a version's keys: metadata first, one body per codec, then its
    /// deltas (written later, once it is current). The switch script builds the keys of
    /// retained versions from these, so every key of a version expires with it.
    pub fn version_suffixes() -> Vec<String> {
        std::iter::once(format!(":{VERSION_META}"))
            .chain(Codec::STORED.map(Self::body_suffix))
            .chain([format!(":{VERSION_DCZ}"), format!(":{VERSION_DELTAS}")])
            .collect()
    }

    fn body_suffix(codec: Codec) -> String {
        format!(":{}", codec.name())
    }

    /// Metadata of one version.
    pub fn version_meta(&self, version: &str) -> String {
        format!("{}{version}:{VERSION_META}", self.version_prefix())
    }

    /// Compressed body of one version.
    pub fn version_body(&self, version: &str, codec: Codec) -> String {
        format!(
            "{}{version}{}",
            self.version_prefix(),
            Self::body_suffix(codec)
        )
    }

    /// The keys a version must have before it can be made current: its metadata, then
    /// one body per codec.
    pub fn version_required_keys(&self, version: &str) -> Vec<String> {
        std::iter::once(self.version_meta(version))
            .chain(Codec::STORED.map(|codec| self.version_body(version, codec)))
            .collect()
    }

    /// The dcz bodies of one version, by earlier version (see [`crate::delta`]).
    pub fn version_dcz(&self, version: &str) -> String {
        format!("{}{version}:{VERSION_DCZ}", self.version_prefix())
    }

    /// The index of one version's deltas (see [`crate::delta`]).
    pub fn version_deltas(&self, version: &str) -> String {
        format!("{}{version}:{VERSION_DELTAS}", self.version_prefix())
    }

    /// The lock that keeps one refresh at a time.
    pub fn refresh_lock(&self) -> String {
        format!("{}:lock:refresh", self.prefix)
    }

    /// The outcome event of refresh request `request_id`, kept a few minutes for a waiter
    /// that missed it on the channel.
    pub fn refresh_outcome(&self, request_id: &str) -> String {
        format!("{}:refresh:outcome:{request_id}", self.prefix)
    }

    /// Channel on which refreshes are requested.
    pub fn refresh_channel(&self) -> String {
        format!("{}:refresh", self.prefix)
    }

    /// Channel on which events are published.
    pub fn events_channel(&self) -> String {
        format!("{}:events", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_with_the_prefix_and_share_a_hash_tag() {
        let keys = Keys::new("p1");
        assert_eq!(keys.current(), "p1:{snapshot}:current");
        assert_eq!(
            keys.version_body("7-ab", Codec::Gzip),
            "p1:{snapshot}:v:7-ab:gzip"
        );
        assert_eq!(
            keys.version_body("7-ab", Codec::Zstd),
            "p1:{snapshot}:v:7-ab:zstd"
        );
        assert_eq!(keys.version_meta("7-ab"), "p1:{snapshot}:v:7-ab:meta");
        assert_eq!(
            keys.version_required_keys("7-ab"),
            [
                keys.version_meta("7-ab"),
                keys.version_body("7-ab", Codec::Gzip),
                keys.version_body("7-ab", Codec::Zstd)
            ]
        );
        assert_eq!(
            Keys::version_suffixes(),
            [":meta", ":gzip", ":zstd", ":dcz", ":deltas"]
        );
        assert_eq!(keys.version_dcz("7-ab"), "p1:{snapshot}:v:7-ab:dcz");
        assert_eq!(keys.version_deltas("7-ab"), "p1:{snapshot}:v:7-ab:deltas");
        assert_eq!(keys.refresh_channel(), "p1:refresh");
        assert_eq!(keys.events_channel(), "p1:events");
        assert_eq!(keys.refresh_lock(), "p1:lock:refresh");
    }
}
