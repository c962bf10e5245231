//! [`SettingKey`]: a setting's key as the cached policies hold it, one shared copy per distinct
//! key in the process.
//!
//! Every policy names its keys twice (in `spec.settings` and `status.settingIds`), and
//! thousands of policies name the same few dozen keys of the identity service: as separate
//! strings they were the largest part of a cached policy after its fixed struct (about 500 bytes
//! at five keys). The pool keeps one copy of each key that some live object still holds, and
//! forgets the others whenever it has doubled, so a tenant cycling through invented keys cannot
//! grow it beyond about twice the most keys ever in use at once.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A setting key (e.g. `Auth.Password.DefaultExpirationDays`), spelled as the user wrote it.
/// Reads as a `&str`; equal keys made anywhere in the process share one allocation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SettingKey(Arc<str>);

impl SettingKey {
    /// The key, from the pool.
    pub fn new(key: &str) -> Self {
        SettingKey(POOL.intern(key))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SettingKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SettingKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SettingKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SettingKey {
    fn from(key: &str) -> Self {
        SettingKey::new(key)
    }
}

impl From<String> for SettingKey {
    fn from(key: String) -> Self {
        SettingKey::new(&key)
    }
}

impl From<&String> for SettingKey {
    fn from(key: &String) -> Self {
        SettingKey::new(key)
    }
}

impl From<SettingKey> for String {
    fn from(key: SettingKey) -> Self {
        key.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for SettingKey {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for SettingKey {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for SettingKey {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for SettingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SettingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SettingKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SettingKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SettingKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a setting key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<SettingKey, E> {
                Ok(SettingKey::new(key))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl JsonSchema for SettingKey {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// The process's keys.
static POOL: LazyLock<Pool> = LazyLock::new(Pool::default);

/// One shared copy of each key; keys no object holds any more are dropped when the pool has
/// doubled since it last looked.
#[derive(Default)]
struct Pool {
    inner: Mutex<PoolInner>,
}

#[derive(Default)]
struct PoolInner {
    keys: HashSet<Arc<str>>,
    /// The pool's size after it last dropped unused keys.
    kept: usize,
}

/// Below this many keys the pool never looks for unused ones.
const POOL_FLOOR: usize = 1024;

impl Pool {
    fn intern(&self, key: &str) -> Arc<str> {
        // A poisoned lock only means another thread panicked while holding it; the set is
        // still a valid set.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = inner.keys.get(key) {
            return shared.clone();
        }
        if inner.keys.len() >= POOL_FLOOR.max(inner.kept.saturating_mul(2)) {
            inner.keys.retain(|k| Arc::strong_count(k) > 1);
            inner.kept = inner.keys.len();
            // The table keeps its size after a retain: give back what the next doubling needs not.
            let room = POOL_FLOOR.max(inner.kept.saturating_mul(2));
            inner.keys.shrink_to(room);
        }
        let shared: Arc<str> = Arc::from(key);
        inner.keys.insert(shared.clone());
        shared
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_of_two_policies_share_one_copy() {
        let a: SettingKey = serde_json::from_str(r#""Auth.Password.PreviousUseLimit""#).unwrap();
        let b: SettingKey = serde_json::from_str(r#""Auth.Password.PreviousUseLimit""#).unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "Auth.Password.PreviousUseLimit");
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#""Auth.Password.PreviousUseLimit""#
        );
        // Spelled differently, kept as written.
        let c = SettingKey::new("auth.password.previoususelimit");
        assert!(!Arc::ptr_eq(&a.0, &c.0));
        assert_eq!(c.as_str(), "auth.password.previoususelimit");
    }

    #[test]
    fn keys_nobody_holds_are_forgotten_as_the_pool_grows() {
        let pool = Pool::default();
        let held: Vec<Arc<str>> = (0..10).map(|i| pool.intern(&format!("held.{i}"))).collect();
        // A tenant inventing keys: none of them is kept by anyone.
        for i in 0..100_000 {
            drop(pool.intern(&format!("invented.{i}")));
        }
        assert!(pool.len() <= 2 * POOL_FLOOR, "{} keys pooled", pool.len());
        for (i, key) in held.iter().enumerate() {
            assert!(Arc::ptr_eq(key, &pool.intern(&format!("held.{i}"))));
        }
    }

    #[test]
    fn the_pool_gives_its_memory_back_after_the_keys_are_gone() {
        let pool = Pool::default();
        // 50 000 keys in use at once (a tenant's many policies), then all deleted.
        let held: Vec<Arc<str>> = (0..50_000)
            .map(|i| pool.intern(&format!("many.{i}")))
            .collect();
        drop(held);
        for i in 0..100_000 {
            drop(pool.intern(&format!("later.{i}")));
        }
        let capacity = pool.inner.lock().unwrap().keys.capacity();
        assert!(capacity <= 8 * POOL_FLOOR, "room for {capacity} keys kept");
    }
}
