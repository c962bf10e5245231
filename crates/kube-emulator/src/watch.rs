//! Watch streams: newline-delimited JSON events over a chunked response, fed from the store's
//! history.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;

use super::registry::ResourceDef;
use super::rules::meta_mut;
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::{EventType, HistoryEvent, Store};

/// A deadline far enough away to mean "never" (about 30 years), small enough to add to any clock.
const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchStart {
    /// `resourceVersion` unset or `"0"`: synthetic ADDED events for every current object, then
    /// changes (the real server's "get state and start at most recent" / "start at any").
    Now,
    /// Only changes after this resourceVersion.
    ///
    /// Deviation: a version newer than the current one is accepted and waits for it, where the
    /// real server answers "Too large resource version" after a few seconds.
    After(u64),
}

/// A parsed watch request.
#[derive(Clone, Debug)]
pub(crate) struct WatchRequest {
    pub def: ResourceDef,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    pub start: WatchStart,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: after the initial ADDED events, a BOOKMARK annotated
    /// `k8s.io/initial-events-end` (streaming lists).
    pub send_initial_events: bool,
    /// `timeoutSeconds`; unset or `0` means the server default, as on a real server.
    ///
    /// Deviation: the real server's default is a random timeout between 30 and 60 minutes; the
    /// emulator uses 30 minutes. Values beyond what a clock can add are treated as "forever".
    pub timeout: Duration,
    /// The client asked for `PartialObjectMetadata` (see `metadata.rs`).
    pub metadata_only: bool,
}

impl WatchRequest {
    /// An object as this watch delivers it: whole, or only its metadata.
    fn shape(&self, object: Value) -> Value {
        if self.metadata_only {
            super::metadata::partial(&object)
        } else {
            object
        }
    }
}

/// What a watch needs from the server.
pub(crate) struct WatchContext {
    pub store: Arc<Mutex<Store>>,
    /// Latest committed resourceVersion; changes on every write.
    pub changes: watch::Receiver<u64>,
    /// Changes on `drop_watches`.
    pub dropped: watch::Receiver<u64>,
    /// Becomes true when the server stops (shutdown or restart).
    pub stop: watch::Receiver<bool>,
    /// Zero disables bookmarks.
    pub bookmark_interval: Duration,
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut buf =
        serde_json::to_vec(&json!({ "type": event_type, "object": object })).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

fn bookmark(req: &WatchRequest, rv: u64, initial_end: bool) -> Bytes {
    let mut object = req.shape(json!({
        "kind": req.def.kind.kind,
        "apiVersion": req.def.kind.api_version(),
        "metadata": { "resourceVersion": rv.to_string() },
    }));
    if initial_end {
        object["metadata"]["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line("BOOKMARK", &object)
}

fn present(def: &ResourceDef, obj: &Value) -> Value {
    let mut out = obj.clone();
    out["apiVersion"] = json!(def.kind.api_version());
    out["kind"] = json!(def.kind.kind);
    out
}

/// The event a watcher sees for a committed change, if any, honouring selector transitions the
/// way the watch cache does: an object that starts matching arrives as ADDED, one that stops
/// matching as DELETED (with its previous content and the new resourceVersion).
pub(crate) fn translate(req: &WatchRequest, ev: &HistoryEvent) -> Option<(EventType, Value)> {
    if ev.storage_key != req.def.storage_key() {
        return None;
    }
    if req
        .namespace
        .as_deref()
        .is_some_and(|ns| ns != ev.namespace)
    {
        return None;
    }
    let now = req.selectors.matches(&ev.object);
    let out = match ev.event_type {
        EventType::Added | EventType::Deleted => now.then(|| (ev.event_type, ev.object.clone())),
        EventType::Modified => {
            let before = ev
                .previous
                .as_ref()
                .is_some_and(|p| req.selectors.matches(p));
            match (before, now) {
                (true, true) => Some((EventType::Modified, ev.object.clone())),
                (false, true) => Some((EventType::Added, ev.object.clone())),
                (true, false) => ev.previous.clone().map(|mut p| {
                    meta_mut(&mut p).insert("resourceVersion".into(), json!(ev.rv.to_string()));
                    (EventType::Deleted, p)
                }),
                (false, false) => None,
            }
        }
    };
    out.map(|(t, o)| (t, req.shape(present(&req.def, &o))))
}

/// Starts streaming; the response is always 200 (a too-old version is reported in-band as an
/// ERROR event carrying a 410 `Expired` Status, as the real server's watch cache does).
pub(crate) fn respond(ctx: WatchContext, req: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(run(ctx, req, tx));
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

type Tx = mpsc::Sender<Result<Bytes, Infallible>>;

/// Sends lines in order; `false` once the client is gone.
///
/// Deviation: a client that keeps the connection open but stops reading parks the task here
/// once the channel is full, so `drop_watches`, a stop or the timeout take effect only when it
/// reads again or disconnects (at the latest when a stop abandons the connection).
async fn send_all(tx: &Tx, lines: Vec<Bytes>) -> bool {
    for l in lines {
        if tx.send(Ok(l)).await.is_err() {
            return false;
        }
    }
    true
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lines for the events after `cursor`, advancing it; `Err` carries the final ERROR line.
fn drain(store: &Mutex<Store>, req: &WatchRequest, cursor: &mut u64) -> Result<Vec<Bytes>, Bytes> {
    drain_locked(&lock(store), req, cursor)
}

/// [`drain`] on an already locked store.
fn drain_locked(store: &Store, req: &WatchRequest, cursor: &mut u64) -> Result<Vec<Bytes>, Bytes> {
    let events = store
        .events_after(*cursor)
        .map_err(|e: ApiError| line("ERROR", &e.to_status()))?;
    let lines = events
        .filter_map(|ev| translate(req, ev))
        .map(|(t, o)| line(t.as_str(), &o))
        .collect();
    *cursor = store.resource_version();
    Ok(lines)
}

/// The initial lines and the cursor to continue from. A watch from a resourceVersion starts
/// with every change committed after it (the backlog), as the watch cache replays it.
fn initial(store: &Mutex<Store>, req: &WatchRequest) -> Result<(Vec<Bytes>, u64), Bytes> {
    let store = lock(store);
    match req.start {
        WatchStart::Now => {
            let rv = store.resource_version();
            let mut lines: Vec<Bytes> = store
                .matching(&req.def, req.namespace.as_deref(), &req.selectors)
                .iter()
                .map(|o| line("ADDED", &req.shape(o.clone())))
                .collect();
            if req.send_initial_events && req.bookmarks {
                lines.push(bookmark(req, rv, true));
            }
            Ok((lines, rv))
        }
        WatchStart::After(rv) => {
            store
                .check_watch_start(rv)
                .map_err(|e| line("ERROR", &e.to_status()))?;
            let mut lines = Vec::new();
            if req.send_initial_events && req.bookmarks {
                // Deviation: with an explicit version, the real server sends the state at that
                // version first; the emulator only marks the end of (no) initial events.
                lines.push(bookmark(req, rv, true));
            }
            let mut cursor = rv;
            lines.extend(drain_locked(&store, req, &mut cursor)?);
            Ok((lines, cursor))
        }
    }
}

async fn run(mut ctx: WatchContext, req: WatchRequest, tx: Tx) {
    if *ctx.stop.borrow_and_update() {
        return;
    }
    ctx.dropped.borrow_and_update();
    ctx.changes.borrow_and_update();
    let start = Instant::now();
    // A timeout too large to add to the clock never fires within the process's life.
    let deadline = tokio::time::sleep_until(
        start
            .checked_add(req.timeout)
            .unwrap_or_else(|| start + FOREVER),
    );
    tokio::pin!(deadline);
    let bookmarks = req.bookmarks && !ctx.bookmark_interval.is_zero();
    // `interval_at` refuses a zero period; with bookmarks disabled the ticks are never polled.
    // A huge interval is capped so that the clock arithmetic cannot overflow.
    let period = ctx
        .bookmark_interval
        .clamp(Duration::from_millis(1), FOREVER);
    let mut ticks = tokio::time::interval_at(start + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let mut cursor = match initial(&ctx.store, &req) {
        Ok((lines, cursor)) => {
            if !send_all(&tx, lines).await {
                return;
            }
            cursor
        }
        Err(error) => {
            let _ = tx.send(Ok(error)).await;
            return;
        }
    };
    loop {
        let send_bookmark = tokio::select! {
            biased;
            _ = ctx.stop.changed() => return,
            _ = ctx.dropped.changed() => return,
            () = &mut deadline => return,
            () = tx.closed() => return,
            changed = ctx.changes.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
            _ = ticks.tick(), if bookmarks => true,
        };
        let mut lines = match drain(&ctx.store, &req, &mut cursor) {
            Ok(lines) => lines,
            Err(error) => {
                let _ = tx.send(Ok(error)).await;
                return;
            }
        };
        if send_bookmark {
            lines.push(bookmark(&req, cursor, false));
        }
        if !send_all(&tx, lines).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::selectors::LabelSelector;

    fn req(selector: &str) -> WatchRequest {
        let reg = Registry::new(&[]);
        WatchRequest {
            def: reg.find("", "v1", "configmaps").unwrap().clone(),
            namespace: Some("ns".into()),
            selectors: Selectors {
                labels: LabelSelector::parse(selector).unwrap(),
                ..Default::default()
            },
            start: WatchStart::Now,
            bookmarks: true,
            send_initial_events: false,
            timeout: Duration::from_secs(5),
            metadata_only: false,
        }
    }

    fn event(t: EventType, prev: Option<&str>, now: &str) -> HistoryEvent {
        let obj = |l: &str| json!({"metadata": {"name": "c", "namespace": "ns", "resourceVersion": "7", "labels": {"l": l}}});
        HistoryEvent {
            rv: 8,
            storage_key: "/configmaps".into(),
            namespace: "ns".into(),
            event_type: t,
            object: obj(now),
            previous: prev.map(obj),
        }
    }

    #[test]
    fn selector_transitions() {
        let r = req("l=a");
        let (t, _) = translate(&r, &event(EventType::Modified, Some("a"), "a")).unwrap();
        assert_eq!(t, EventType::Modified);
        let (t, _) = translate(&r, &event(EventType::Modified, Some("b"), "a")).unwrap();
        assert_eq!(t, EventType::Added);
        let (t, o) = translate(&r, &event(EventType::Modified, Some("a"), "b")).unwrap();
        assert_eq!(t, EventType::Deleted);
        assert_eq!(o["metadata"]["labels"]["l"], "a");
        assert_eq!(o["metadata"]["resourceVersion"], "8");
        assert_eq!(o["kind"], "ConfigMap");
        assert!(translate(&r, &event(EventType::Modified, Some("b"), "b")).is_none());
    }

    #[test]
    fn other_namespaces_and_resources_are_filtered() {
        let r = req("");
        let mut ev = event(EventType::Added, None, "a");
        ev.namespace = "other".into();
        assert!(translate(&r, &ev).is_none());
        let mut ev = event(EventType::Added, None, "a");
        ev.storage_key = "/secrets".into();
        assert!(translate(&r, &ev).is_none());
    }

    #[test]
    fn bookmark_shape() {
        let r = req("");
        let b = bookmark(&r, 12, true);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["type"], "BOOKMARK");
        assert_eq!(v["object"]["metadata"]["resourceVersion"], "12");
        assert_eq!(
            v["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        assert!(b.ends_with(b"\n"));
    }
}
