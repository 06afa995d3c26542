//! A least-recently-used map bounded in bytes, shared by the threads of a handle.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

struct Entry<V> {
    value: Arc<V>,
    bytes: usize,
    tick: u64,
}

struct Inner<K, V> {
    map: HashMap<K, Entry<V>>,
    /// Last use tick → key, oldest first.
    order: BTreeMap<u64, K>,
    bytes: usize,
    tick: u64,
}

pub struct ByteLru<K, V> {
    limit: usize,
    inner: Mutex<Inner<K, V>>,
}

impl<K: Eq + Hash + Clone, V> ByteLru<K, V> {
    pub fn new(limit: usize) -> Self {
        ByteLru { limit, inner: Mutex::new(Inner { map: HashMap::new(), order: BTreeMap::new(), bytes: 0, tick: 0 }) }
    }

    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let e = inner.map.get_mut(key)?;
        inner.order.remove(&e.tick);
        e.tick = tick;
        inner.order.insert(tick, key.clone());
        Some(e.value.clone())
    }

    /// Insert (or replace) `key`, then evict the least recently used entries until the total is
    /// within the limit. An entry larger than the whole limit is not kept.
    pub fn insert(&self, key: K, value: Arc<V>, bytes: usize) {
        if bytes > self.limit {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(old) = inner.map.insert(key.clone(), Entry { value, bytes, tick }) {
            inner.order.remove(&old.tick);
            inner.bytes -= old.bytes;
        }
        inner.order.insert(tick, key);
        inner.bytes += bytes;
        while inner.bytes > self.limit {
            let Some((_, k)) = inner.order.pop_first() else { break };
            if let Some(e) = inner.map.remove(&k) {
                inner.bytes -= e.bytes;
            }
        }
    }

    /// Drop `key` if held.
    pub fn remove(&self, key: &K) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        if let Some(e) = inner.map.remove(key) {
            inner.order.remove(&e.tick);
            inner.bytes -= e.bytes;
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }

    pub fn clear(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.map.clear();
        g.order.clear();
        g.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_the_byte_limit() {
        let c = ByteLru::new(100);
        c.insert(1, Arc::new("a"), 40);
        c.insert(2, Arc::new("b"), 40);
        assert!(c.get(&1).is_some()); // 1 is now newer than 2
        c.insert(3, Arc::new("c"), 40);
        assert!(c.get(&2).is_none());
        assert!(c.get(&1).is_some() && c.get(&3).is_some());
        assert_eq!(c.bytes(), 80);
        c.insert(4, Arc::new("huge"), 101);
        assert!(c.get(&4).is_none());
        c.insert(3, Arc::new("c2"), 10);
        assert_eq!(c.bytes(), 50);
        assert_eq!(*c.get(&3).unwrap(), "c2");
    }
}
