//! Zip or raw, per artifact id. Learning it costs a download redirect, so each answer is
//! remembered in the cache's metadata (`meta/kinds.json`) and paid once per artifact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cache::DiskCache;
use crate::github::ArtifactKind;

const FILE: &str = "kinds.json";

pub struct Kinds {
    cache: Arc<DiskCache>,
    map: Mutex<HashMap<u64, ArtifactKind>>,
}

impl Kinds {
    /// What the cache remembers from earlier mounts.
    pub fn load(cache: Arc<DiskCache>) -> Kinds {
        let map = cache
            .load_meta(FILE)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Kinds {
            cache,
            map: Mutex::new(map),
        }
    }

    pub fn get(&self, id: u64) -> Option<ArtifactKind> {
        self.map.lock().unwrap().get(&id).cloned()
    }

    /// Remembers (and persists) the kind of artifact `id`.
    pub fn set(&self, id: u64, kind: ArtifactKind) {
        let snapshot = {
            let mut map = self.map.lock().unwrap();
            if map.get(&id) == Some(&kind) {
                return;
            }
            map.insert(id, kind);
            serde_json::to_vec(&*map).unwrap_or_default()
        };
        if let Err(e) = self.cache.store_meta(FILE, &snapshot) {
            tracing::warn!("cache: could not persist artifact kinds: {e}");
        }
    }

    /// Forgets artifact `id` (deleted).
    pub fn forget(&self, id: u64) {
        let snapshot = {
            let mut map = self.map.lock().unwrap();
            if map.remove(&id).is_none() {
                return;
            }
            serde_json::to_vec(&*map).unwrap_or_default()
        };
        let _ = self.cache.store_meta(FILE, &snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_across_reopen_and_forgotten() {
        let d = tempfile::tempdir().unwrap();
        {
            let k = Kinds::load(Arc::new(DiskCache::open(d.path(), 1 << 20).unwrap()));
            k.set(5, ArtifactKind::Zip);
            k.set(6, ArtifactKind::Zip);
        }
        let k = Kinds::load(Arc::new(DiskCache::open(d.path(), 1 << 20).unwrap()));
        assert_eq!(k.get(5), Some(ArtifactKind::Zip));
        k.forget(5);
        assert_eq!(k.get(5), None);
        assert_eq!(k.get(6), Some(ArtifactKind::Zip));
    }
}
