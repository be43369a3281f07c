//! The metadata of every snapshot version a scenario saw, so a body served in a version
//! can be checked against that version's stored sizes and hashes even after it was
//! replaced (or while Redis was away).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::snapshot::SnapshotMeta;
use shared::store::SnapshotStore;

use super::lock;
use crate::stack::Stack;

/// Metadata of every version seen, read from its versioned key on first sight (versions
/// stay readable after they are replaced, so a body can be checked after the fact).
pub struct MetaBook {
    store: SnapshotStore,
    known: Mutex<HashMap<String, SnapshotMeta>>,
}

impl MetaBook {
    /// An empty book over `stack`'s store.
    pub fn new(stack: &Stack) -> Arc<Self> {
        Arc::new(Self {
            store: stack.store.clone(),
            known: Mutex::default(),
        })
    }

    pub(super) fn remember(&self, meta: &SnapshotMeta) {
        lock(&self.known)
            .entry(meta.version.clone())
            .or_insert_with(|| meta.clone());
    }

    pub(super) async fn get(&self, version: &str) -> Option<SnapshotMeta> {
        if let Some(meta) = lock(&self.known).get(version) {
            return Some(meta.clone());
        }
        let read =
            tokio::time::timeout(Duration::from_secs(1), self.store.version_meta(version)).await;
        let meta = read.ok()?.ok()??;
        self.remember(&meta);
        Some(meta)
    }
}
