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
use std::time::{Duration, Instant};

use crate::identity::types::StoredSetting;

/// How long a shared answer serves the group's other policies.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// The latest shared answer of each read group, and the writes that make parts of it stale.
#[derive(Default)]
pub struct SharedReads {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Numbers every write, so that a read knows which writes came after it began.
    writes: u64,
    groups: HashMap<u64, Group>,
}

#[derive(Default)]
struct Group {
    snapshot: Option<Snapshot>,
    /// Group reads on their way (see [`PendingRead`]).
    reading: usize,
    /// While reads are on their way: the keys written (lower case), with each write's number.
    written: Vec<(u64, String)>,
}

struct Snapshot {
    at: Instant,
    /// The keys asked for, in lower case (a key asked and absent from `rows` has no value).
    asked: HashSet<String>,
    rows: Vec<StoredSetting>,
}

/// A GET of a group on its way: its answer may be shared when it comes, less any key written
/// by the group while it was on its way (that key's answer may predate the write).
pub struct PendingRead<'a> {
    reads: &'a SharedReads,
    group: u64,
    /// The last write numbered before the GET began.
    since: u64,
}

impl SharedReads {
    /// The rows of `keys` from the group's fresh answer, if it asked for every one of them and
    /// none was written since.
    pub fn take(&self, group: u64, keys: &[String]) -> Option<Vec<StoredSetting>> {
        let inner = self.lock();
        let snapshot = inner.groups.get(&group)?.snapshot.as_ref()?;
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

    /// Call before a GET whose answer may be shared; share the answer through what it returns.
    pub fn begin(&self, group: u64) -> PendingRead<'_> {
        let mut inner = self.lock();
        let since = inner.writes;
        inner.groups.entry(group).or_default().reading += 1;
        PendingRead {
            reads: self,
            group,
            since,
        }
    }

    /// A write of `keys` to the group is about to start, or has ended (call both): the shared
    /// answer no longer holds for those keys, nor does any answer read meanwhile. The group's
    /// other keys are untouched (each key has one writer: the claims see to it).
    pub fn written(&self, group: u64, keys: &[String]) {
        let mut inner = self.lock();
        inner.writes = inner.writes.wrapping_add(1);
        let number = inner.writes;
        let Some(entry) = inner.groups.get_mut(&group) else {
            return;
        };
        let lower: Vec<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        if let Some(snapshot) = &mut entry.snapshot {
            for key in &lower {
                snapshot.asked.remove(key);
            }
            snapshot
                .rows
                .retain(|r| !lower.contains(&r.key.to_ascii_lowercase()));
        }
        if entry.reading > 0 {
            entry.written.extend(lower.into_iter().map(|k| (number, k)));
        }
    }

    /// Drops the answers no longer fresh, and groups with nothing left to remember.
    pub fn prune(&self) {
        self.lock().groups.retain(|_, g| {
            if g.snapshot
                .as_ref()
                .is_some_and(|s| s.at.elapsed() >= FRESH_FOR)
            {
                g.snapshot = None;
            }
            g.snapshot.is_some() || g.reading > 0
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PendingRead<'_> {
    /// Leaves the GET's answer (`rows` for `asked`) for the group's other policies, less the
    /// keys the group wrote while it was on its way.
    pub fn share(self, asked: &[String], rows: &[StoredSetting]) {
        let mut inner = self.reads.lock();
        let Some(entry) = inner.groups.get_mut(&self.group) else {
            return;
        };
        let stale: HashSet<&str> = entry
            .written
            .iter()
            .filter(|(number, _)| *number > self.since)
            .map(|(_, key)| key.as_str())
            .collect();
        let asked: HashSet<String> = asked
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .filter(|k| !stale.contains(k.as_str()))
            .collect();
        let rows = rows
            .iter()
            .filter(|r| asked.contains(&r.key.to_ascii_lowercase()))
            .cloned()
            .collect();
        entry.snapshot = Some(Snapshot {
            at: Instant::now(),
            asked,
            rows,
        });
    }
}

impl Drop for PendingRead<'_> {
    fn drop(&mut self) {
        let mut inner = self.reads.lock();
        if let Some(entry) = inner.groups.get_mut(&self.group) {
            entry.reading = entry.reading.saturating_sub(1);
            if entry.reading == 0 {
                entry.written.clear();
            }
        }
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
        reads
            .begin(7)
            .share(&keys(&["A", "B", "C"]), &[row("a", "1"), row("B", "2")]);
        let got = reads.take(7, &keys(&["b", "c"])).expect("asked for both");
        assert_eq!(got, [row("B", "2")], "c was asked and has no value");
        assert!(
            reads.take(7, &keys(&["A", "D"])).is_none(),
            "D was not asked"
        );
        assert!(reads.take(8, &keys(&["A"])).is_none(), "another group");
    }

    #[test]
    fn a_write_makes_only_its_own_keys_stale() {
        let reads = SharedReads::default();
        reads
            .begin(7)
            .share(&keys(&["A", "B"]), &[row("A", "1"), row("B", "2")]);
        // The policy that owns B corrects a drift of it; the policy of A still checks from the
        // shared answer instead of reading again.
        reads.written(7, &keys(&["b"]));
        assert!(
            reads.take(7, &keys(&["B"])).is_none(),
            "B was written since"
        );
        assert_eq!(reads.take(7, &keys(&["A"])), Some(vec![row("A", "1")]));
    }

    #[test]
    fn keys_written_while_a_read_was_under_way_are_not_shared() {
        let reads = SharedReads::default();
        let pending = reads.begin(7);
        // Another policy of the group writes A while this GET is on its way.
        reads.written(7, &keys(&["A"]));
        pending.share(&keys(&["A", "B"]), &[row("A", "old"), row("B", "2")]);
        assert!(
            reads.take(7, &keys(&["A"])).is_none(),
            "it may predate the write"
        );
        assert_eq!(reads.take(7, &keys(&["B"])), Some(vec![row("B", "2")]));
        // A read begun after that write shares A again.
        reads.begin(7).share(&keys(&["A"]), &[row("A", "new")]);
        assert_eq!(reads.take(7, &keys(&["A"])), Some(vec![row("A", "new")]));
    }

    #[test]
    fn pruning_forgets_groups_with_nothing_fresh_or_under_way() {
        let reads = SharedReads::default();
        let pending = reads.begin(7);
        reads.written(7, &keys(&["A"]));
        reads.prune();
        assert_eq!(reads.lock().groups.len(), 1, "a read is under way");
        drop(pending);
        reads.prune();
        assert!(reads.lock().groups.is_empty());
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
