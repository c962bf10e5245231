//! Reads shared by the policies of one read group (one server, organization and user, with the
//! same credentials: see [`super::index::PolicyIndex::read_group`]). The first policy of a group
//! to be checked reads its own keys and the others' in one GET (when they fit one request) and
//! leaves the answer here for a few seconds; the others, told to check now, take their rows
//! from it instead of reading again. So three policies of one organization cost one read per
//! check, not three — which is what Automation Cloud's per-organization limits count.
//!
//! A snapshot is only ever used by a policy of the same group, only while fresh, only when it
//! answered every key the policy asks for, and never after a write to the group.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::identity::types::StoredSetting;

/// How long a shared answer serves the group's other policies.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// The latest shared answer of each read group.
#[derive(Default)]
pub struct SharedReads {
    snapshots: Mutex<HashMap<u64, Snapshot>>,
    /// Bumped by every write (before and after it): an answer read while a write was under way
    /// may predate it, and is not shared.
    writes: AtomicU64,
}

struct Snapshot {
    at: Instant,
    /// The keys asked for, in lower case (a key asked and absent from `rows` has no value).
    asked: HashSet<String>,
    rows: Vec<StoredSetting>,
}

impl SharedReads {
    /// The rows of `keys` from the group's fresh answer, if it asked for every one of them.
    pub fn take(&self, group: u64, keys: &[String]) -> Option<Vec<StoredSetting>> {
        let snapshots = self.lock();
        let snapshot = snapshots.get(&group)?;
        if snapshot.at.elapsed() >= FRESH_FOR {
            return None;
        }
        let wanted: HashSet<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        if !wanted.is_subset(&snapshot.asked) {
            return None;
        }
        Some(
            snapshot
                .rows
                .iter()
                .filter(|r| wanted.contains(&r.key.to_ascii_lowercase()))
                .cloned()
                .collect(),
        )
    }

    /// Where the writes stand: take it before a GET whose answer may be shared.
    pub fn writes_seen(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Leaves a GET's answer (`rows` for `asked`) for the group's other policies — unless a
    /// write began or ended since `writes_seen` was taken before the GET.
    pub fn share(&self, group: u64, writes_seen: u64, asked: &[String], rows: &[StoredSetting]) {
        let mut snapshots = self.lock();
        if self.writes.load(Ordering::SeqCst) != writes_seen {
            return;
        }
        snapshots.insert(
            group,
            Snapshot {
                at: Instant::now(),
                asked: asked.iter().map(|k| k.to_ascii_lowercase()).collect(),
                rows: rows.to_vec(),
            },
        );
    }

    /// A write to the group is about to start, or has ended (call both): its answer is no
    /// longer what the server holds, and no answer read meanwhile is shared.
    pub fn forget(&self, group: u64) {
        let mut snapshots = self.lock();
        self.writes.fetch_add(1, Ordering::SeqCst);
        snapshots.remove(&group);
    }

    /// Drops the answers no longer fresh.
    pub fn prune(&self) {
        self.lock().retain(|_, s| s.at.elapsed() < FRESH_FOR);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Snapshot>> {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What one GET asks for on behalf of a group: `own` keys first, then each other policy's keys
/// whole, as long as they all still fit one request (`fits`). Answers the keys to ask for and
/// the other policies (`T`) the answer covers: only those are told to check now.
pub fn group_read<T>(
    own: &[String],
    others: impl IntoIterator<Item = (T, Vec<String>)>,
    fits: impl Fn(&[String]) -> bool,
) -> (Vec<String>, Vec<T>) {
    let mut asked = own.to_vec();
    let mut seen: HashSet<String> = own.iter().map(|k| k.to_ascii_lowercase()).collect();
    let mut covered = Vec::new();
    for (other, keys) in others {
        let before = asked.len();
        for key in keys {
            if seen.insert(key.to_ascii_lowercase()) {
                asked.push(key);
            }
        }
        if asked.len() > before && !fits(&asked) {
            // Not this one, nor any after it: the request is full.
            for key in asked.drain(before..) {
                seen.remove(&key.to_ascii_lowercase());
            }
            break;
        }
        covered.push(other);
    }
    (asked, covered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, value: &str) -> StoredSetting {
        StoredSetting {
            id: 1,
            key: key.into(),
            value: value.into(),
            partition_global_id: "p".into(),
            user_id: None,
        }
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_fresh_answer_serves_only_keys_it_asked_for_in_its_group() {
        let reads = SharedReads::default();
        let seen = reads.writes_seen();
        reads.share(
            7,
            seen,
            &keys(&["A", "B", "C"]),
            &[row("a", "1"), row("B", "2")],
        );
        let got = reads.take(7, &keys(&["b", "c"])).expect("asked for both");
        assert_eq!(got, [row("B", "2")], "c was asked and has no value");
        assert!(
            reads.take(7, &keys(&["A", "D"])).is_none(),
            "D was not asked"
        );
        assert!(reads.take(8, &keys(&["A"])).is_none(), "another group");
        reads.forget(7);
        assert!(reads.take(7, &keys(&["A"])).is_none(), "written since");
    }

    #[test]
    fn an_answer_read_while_a_write_was_under_way_is_not_shared() {
        let reads = SharedReads::default();
        let seen = reads.writes_seen();
        // Another policy of the group writes while this GET is on its way.
        reads.forget(7);
        reads.share(7, seen, &keys(&["A"]), &[row("A", "old")]);
        assert!(
            reads.take(7, &keys(&["A"])).is_none(),
            "it may predate the write"
        );
    }

    #[test]
    fn a_group_read_adds_whole_policies_while_they_fit_one_request() {
        let fits = |k: &[String]| k.len() <= 4;
        let others = vec![
            ("same-keys", keys(&["a"])),
            ("two", keys(&["B", "C"])),
            ("too-many", keys(&["D", "E"])),
            ("would-fit-but-after", keys(&["F"])),
        ];
        let (asked, covered) = group_read(&keys(&["A"]), others, fits);
        assert_eq!(asked, keys(&["A", "B", "C"]));
        assert_eq!(
            covered,
            ["same-keys", "two"],
            "only policies whose every key is asked are told to check"
        );
    }
}
