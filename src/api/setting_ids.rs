//! [`SettingIds`]: the identity service's id of each key a policy manages, as
//! `status.settingIds` — a map from key to id, like a Node's `status.capacity`.
//!
//! It was a list of objects (`appliedSettings`, keyed by `key`, with a write time per key). On a
//! real API server every status write pays for each field of the object (field ownership,
//! validation, storage, the watch), and that list was most of the status: at 10 000 new
//! policies the status the operator wrote cost 13 CPU seconds of kube-apiserver and etcd more
//! than a bare `Ready` condition, and this map costs less than half of what the list
//! did (docs/benchmarks.md). The time of the last write is `status.lastAppliedTime`, and each
//! write's keys are in its Event and the `Ready` message.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::key::SettingKey;

/// Key → the identity service's id for this (partition, user, key), sorted by key, each key
/// once: two values that say the same compare equal, whatever order the API server sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingIds(Vec<(SettingKey, i64)>);

impl SettingIds {
    /// The id of `key` (spelled exactly), if known.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1)
    }

    /// The keys that have an id, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &SettingKey> {
        self.0.iter().map(|(k, _)| k)
    }

    /// Each (key, id), sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&SettingKey, i64)> {
        self.0.iter().map(|(k, id)| (k, *id))
    }

    /// How many keys have an id.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No key has an id.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(SettingKey, i64)> for SettingIds {
    /// Sorted by key; of a key given twice, the first id is kept.
    fn from_iter<I: IntoIterator<Item = (SettingKey, i64)>>(pairs: I) -> Self {
        let mut pairs: Vec<(SettingKey, i64)> = pairs.into_iter().collect();
        // Stable: the first of equal keys stays first, and dedup keeps it.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, first| later.0 == first.0);
        pairs.shrink_to_fit();
        SettingIds(pairs)
    }
}

impl Serialize for SettingIds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, id) in &self.0 {
            map.serialize_entry(key, id)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SettingIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdsVisitor;
        impl<'de> Visitor<'de> for IdsVisitor {
            type Value = SettingIds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from setting key to id")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SettingIds, A::Error> {
                // No size hint trusted: the entries are as many as the object holds.
                let mut pairs = Vec::new();
                while let Some((key, id)) = map.next_entry::<SettingKey, i64>()? {
                    pairs.push((key, id));
                }
                Ok(pairs.into_iter().collect())
            }
        }
        deserializer.deserialize_map(IdsVisitor)
    }
}

impl JsonSchema for SettingIds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SettingIds".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "additionalProperties": {"type": "integer", "format": "int64"},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(pairs: &[(&str, i64)]) -> SettingIds {
        pairs
            .iter()
            .map(|(k, id)| (SettingKey::new(k), *id))
            .collect()
    }

    #[test]
    fn the_order_of_the_keys_does_not_matter() {
        let sent_sorted: SettingIds =
            serde_json::from_str(r#"{"A.b": 1, "C": 3, "b": 2}"#).expect("parses");
        let computed = ids(&[("C", 3), ("b", 2), ("A.b", 1)]);
        assert_eq!(sent_sorted, computed);
        assert_eq!(computed.get("b"), Some(2));
        assert_eq!(computed.get("B"), None, "keys are compared as spelled");
        assert_eq!(
            serde_json::to_string(&computed).expect("serializes"),
            r#"{"A.b":1,"C":3,"b":2}"#
        );
    }

    #[test]
    fn a_key_given_twice_keeps_its_first_id() {
        let twice = ids(&[("K", 1), ("J", 5), ("K", 2)]);
        assert_eq!(twice.len(), 2);
        assert_eq!(twice.get("K"), Some(1));
    }

    #[test]
    fn anything_but_a_map_of_integers_is_refused() {
        assert!(serde_json::from_str::<SettingIds>(r#"[{"key": "K", "id": 1}]"#).is_err());
        assert!(serde_json::from_str::<SettingIds>(r#"{"K": "1"}"#).is_err());
    }
}
