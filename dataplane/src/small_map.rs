//! A map for the small tables every session and connection carries (subscriptions, requests in
//! flight, requests awaiting the client). `DashMap` allocates all its shards up front, each
//! padded to a cache line pair: eight shards of 128 bytes on two cores, 64 on sixteen, for
//! every map, even an empty one. These tables hold a handful of entries and see one request
//! at a time, so one mutex over a `HashMap` (no allocation until the first insert) is the
//! right size. The API follows the `DashMap` calls the tables used.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct SmallMap<K, V>(Mutex<HashMap<K, V>>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, V> SmallMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        // A panic while holding the lock cannot leave the map half-updated: recover it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, k: K, v: V) -> Option<V> {
        self.lock().insert(k, v)
    }

    /// The entry under `k`, taken out of the map.
    pub fn remove<Q>(&self, k: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove_entry(k)
    }

    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().contains_key(k)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The keys, copied out so no lock is held while the caller uses them.
    pub fn keys(&self) -> Vec<K>
    where
        K: Clone,
    {
        self.lock().keys().cloned().collect()
    }

    /// Run `f` on every value under the lock (`f` must not touch this map).
    pub fn for_each_value(&self, mut f: impl FnMut(&V)) {
        self.lock().values().for_each(&mut f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map() {
        let m: SmallMap<String, u32> = SmallMap::new();
        assert!(m.is_empty());
        assert_eq!(m.insert("a".into(), 1), None);
        assert_eq!(m.insert("a".into(), 2), Some(1));
        m.insert("b".into(), 3);
        assert!(m.contains_key("a"));
        assert_eq!(m.len(), 2);
        assert_eq!(m.remove("a"), Some(("a".to_string(), 2)));
        assert_eq!(m.remove("a"), None);
        let mut sum = 0;
        m.for_each_value(|v| sum += v);
        assert_eq!(sum, 3);
        assert_eq!(m.keys(), vec!["b".to_string()]);
    }

    #[test]
    fn an_empty_map_is_smaller_than_a_sharded_one() {
        // The point of the type: nothing on the heap until the first insert.
        let m: SmallMap<String, ()> = SmallMap::new();
        assert_eq!(m.0.lock().unwrap().capacity(), 0);
        assert!(std::mem::size_of::<SmallMap<String, ()>>() <= 64);
    }
}
