//! Small answers remembered across mounts in the cache's metadata (`meta/NAME.json`, never
//! evicted), each paid for once: which artifacts are zips (`kinds.json`: learning it costs a
//! download redirect) and what the blob host said of each log's blob (`log-lengths.json`:
//! its length and `ETag`, which cost a redirect and a request for its first byte).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::DiskCache;

/// A map kept whole in `meta/FILE` (rewritten on each change).
pub struct MetaMap<K, V> {
    cache: Arc<DiskCache>,
    file: &'static str,
    map: Mutex<HashMap<K, V>>,
}

impl<K, V> MetaMap<K, V>
where
    K: Eq + Hash + Serialize + DeserializeOwned,
    V: Clone + PartialEq + Serialize + DeserializeOwned,
{
    /// What the cache remembers from earlier mounts (nothing, if `file` is missing or
    /// unreadable).
    pub fn load(cache: Arc<DiskCache>, file: &'static str) -> MetaMap<K, V> {
        let map = cache
            .load_meta(file)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        MetaMap {
            cache,
            file,
            map: Mutex::new(map),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.map.lock().unwrap().get(key).cloned()
    }

    /// Remembers (and persists) `value` for `key`.
    pub fn set(&self, key: K, value: V) {
        let snapshot = {
            let mut map = self.map.lock().unwrap();
            if map.get(&key) == Some(&value) {
                return;
            }
            map.insert(key, value);
            serde_json::to_vec(&*map).unwrap_or_default()
        };
        if let Err(e) = self.cache.store_meta(self.file, &snapshot) {
            tracing::warn!("cache: could not persist {}: {e}", self.file);
        }
    }

    /// Forgets `key` (an artifact deleted).
    pub fn forget(&self, key: &K) {
        let snapshot = {
            let mut map = self.map.lock().unwrap();
            if map.remove(key).is_none() {
                return;
            }
            serde_json::to_vec(&*map).unwrap_or_default()
        };
        let _ = self.cache.store_meta(self.file, &snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::ArtifactKind;

    #[test]
    fn remembered_across_reopen_and_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let open = || {
            let cache = Arc::new(DiskCache::open(d.path(), 1 << 20).unwrap());
            MetaMap::<u64, ArtifactKind>::load(cache, "kinds.json")
        };
        {
            let k = open();
            k.set(5, ArtifactKind::Zip);
            k.set(6, ArtifactKind::Zip);
        }
        let k = open();
        assert_eq!(k.get(&5), Some(ArtifactKind::Zip));
        k.forget(&5);
        assert_eq!(k.get(&5), None);
        assert_eq!(k.get(&6), Some(ArtifactKind::Zip));
    }
}
