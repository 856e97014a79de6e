//! Small answers remembered across mounts in the cache's metadata (`meta/NAME.json`, never
//! evicted), each paid for once: which artifacts are zips (`kinds.json`: learning it costs a
//! download redirect) and what the blob host said of each log's blob (`log-lengths.json`:
//! its length and `ETag`, which cost a redirect and a request for its first byte).
//!
//! Each map is bounded: it keeps the `capacity` keys most recently learnt or asked for
//! (artifacts and logs expire, so what falls out is mostly gone from GitHub too), and it is
//! written whole, so a burst of answers (a `find` over thousands of new artifacts) is written
//! once, [`FLUSH_DELAY`] after its first answer, not once per answer. A crash loses at most that
//! last second of answers: each is asked for again when needed.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::DiskCache;

/// How long a change waits for others before the map is written (with a runtime to wait in).
pub const FLUSH_DELAY: Duration = Duration::from_secs(1);

/// A bounded map kept whole in `meta/FILE`, oldest first.
pub struct MetaMap<K, V> {
    cache: Arc<DiskCache>,
    file: &'static str,
    map: Mutex<LruCache<K, V>>,
    /// A change is not written yet.
    dirty: AtomicBool,
    /// A write is scheduled (changes after it was scheduled are in it).
    flush_pending: AtomicBool,
}

impl<K, V> MetaMap<K, V>
where
    K: Eq + Hash + Clone + Serialize + DeserializeOwned + Send + 'static,
    V: Clone + PartialEq + Serialize + DeserializeOwned + Send + 'static,
{
    /// What the cache remembers from earlier mounts (nothing, if `file` is missing or
    /// unreadable), keeping at most `capacity` keys.
    pub fn load(cache: Arc<DiskCache>, file: &'static str, capacity: usize) -> MetaMap<K, V> {
        let mut map = LruCache::new(capacity.try_into().expect("a capacity of at least one"));
        let stored: Vec<(K, V)> = cache
            .load_meta(file)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for (k, v) in stored {
            map.put(k, v);
        }
        MetaMap {
            cache,
            file,
            map: Mutex::new(map),
            dirty: AtomicBool::new(false),
            flush_pending: AtomicBool::new(false),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.map.lock().unwrap().get(key).cloned()
    }

    /// Remembers (and persists) `value` for `key`.
    pub fn set(self: &Arc<Self>, key: K, value: V) {
        {
            let mut map = self.map.lock().unwrap();
            if map.get(&key) == Some(&value) {
                return;
            }
            map.put(key, value);
        }
        self.changed();
    }

    /// Forgets `key` (an artifact deleted).
    pub fn forget(self: &Arc<Self>, key: &K) {
        if self.map.lock().unwrap().pop(key).is_none() {
            return;
        }
        self.changed();
    }

    /// Writes the map now, or schedules one write [`FLUSH_DELAY`] from now when a runtime can
    /// wait for it (one write per burst of changes).
    fn changed(self: &Arc<Self>) {
        self.dirty.store(true, Ordering::SeqCst);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return self.flush();
        };
        if self.flush_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        rt.spawn(async move {
            tokio::time::sleep(FLUSH_DELAY).await;
            me.flush_pending.store(false, Ordering::SeqCst);
            let _ = tokio::task::spawn_blocking(move || me.flush()).await;
        });
    }

    /// Writes the whole map, oldest first (so a load keeps the order), if it changed since it
    /// was last written; also at unmount, so what the last second learnt is kept.
    pub fn flush(&self) {
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return;
        }
        let snapshot = {
            let map = self.map.lock().unwrap();
            let pairs: Vec<(&K, &V)> = map.iter().rev().collect();
            serde_json::to_vec(&pairs).unwrap_or_default()
        };
        if let Err(e) = self.cache.store_meta(self.file, &snapshot) {
            tracing::warn!("cache: could not persist {}: {e}", self.file);
        }
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
            Arc::new(MetaMap::<u64, ArtifactKind>::load(cache, "kinds.json", 2))
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

    #[test]
    fn keeps_the_most_recently_used_keys_across_reopen() {
        let d = tempfile::tempdir().unwrap();
        let open = || {
            let cache = Arc::new(DiskCache::open(d.path(), 1 << 20).unwrap());
            Arc::new(MetaMap::<u64, ArtifactKind>::load(cache, "kinds.json", 2))
        };
        {
            let k = open();
            k.set(1, ArtifactKind::Zip);
            k.set(2, ArtifactKind::Raw { file_name: None });
            assert_eq!(k.get(&1), Some(ArtifactKind::Zip)); // 1 is now the newer
            k.set(3, ArtifactKind::Zip); // 2 falls out; 1 is the oldest now
        }
        let k = open();
        // The order survived the reopen: a new key pushes out 1, not 3.
        k.set(4, ArtifactKind::Raw { file_name: None });
        assert_eq!(
            [1, 2, 3, 4].map(|id| k.get(&id).is_some()),
            [false, false, true, true]
        );
    }

    #[tokio::test]
    async fn a_burst_of_answers_is_written_after_the_delay_not_per_answer() {
        let d = tempfile::tempdir().unwrap();
        let cache = Arc::new(DiskCache::open(d.path(), 1 << 20).unwrap());
        let k = Arc::new(MetaMap::<u64, ArtifactKind>::load(
            cache.clone(),
            "kinds.json",
            100,
        ));
        tokio::time::pause();
        for id in 0..50 {
            k.set(id, ArtifactKind::Zip);
        }
        assert!(
            cache.load_meta("kinds.json").is_none(),
            "nothing written yet"
        );
        tokio::time::sleep(FLUSH_DELAY * 2).await;
        // The write runs on a blocking thread: wait for it by what it leaves.
        let mut stored = None;
        for _ in 0..1000 {
            stored = cache.load_meta("kinds.json");
            if stored.is_some() {
                break;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
        let pairs: Vec<(u64, ArtifactKind)> = serde_json::from_slice(&stored.unwrap()).unwrap();
        assert_eq!(pairs.len(), 50);
        assert_eq!(pairs.first().map(|p| p.0), Some(0), "oldest first");
    }
}
