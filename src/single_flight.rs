//! At most one computation per key at a time: concurrent callers for the same key wait for
//! the one in flight and share its result (two readers of one archive cause one download).
//! A failed computation is not remembered; the next caller tries again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

pub struct SingleFlight<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            cells: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SingleFlight<K, V> {
    /// The value for `key`, computing it with `init` unless it is known or in flight.
    pub async fn get_or_try_init<E, F, Fut>(&self, key: &K, init: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        let cell = {
            let mut cells = self.cells.lock().unwrap();
            cells.entry(key.clone()).or_default().clone()
        };
        cell.get_or_try_init(init).await.cloned()
    }

    /// The value for `key`, if computed.
    #[cfg(test)]
    pub fn get(&self, key: &K) -> Option<V> {
        self.cells.lock().unwrap().get(key)?.get().cloned()
    }

    /// Forgets `key` (the next caller recomputes).
    pub fn remove(&self, key: &K) {
        self.cells.lock().unwrap().remove(key);
    }

    /// Forgets every key for which `pred` holds.
    pub fn remove_if(&self, pred: impl Fn(&K) -> bool) {
        self.cells.lock().unwrap().retain(|k, _| !pred(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let sf: Arc<SingleFlight<u32, u32>> = Arc::new(SingleFlight::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let sf = sf.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                sf.get_or_try_init(&1, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok::<_, ()>(42)
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(42));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_retried() {
        let sf: SingleFlight<u32, u32> = SingleFlight::default();
        assert_eq!(
            sf.get_or_try_init(&1, || async { Err("no") }).await,
            Err("no")
        );
        assert_eq!(
            sf.get_or_try_init(&1, || async { Ok::<_, &str>(3) }).await,
            Ok(3)
        );
        assert_eq!(sf.get(&1), Some(3));
        sf.remove(&1);
        assert_eq!(sf.get(&1), None);
    }
}
