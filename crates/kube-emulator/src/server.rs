//! The HTTP front: one axum fallback handler that records and counts the request, applies
//! injected faults, routes by path and method, and turns store results into responses; plus the
//! admin route `/_emulator/counters`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::RecordedRequest;
use super::counters::RequestCounters;
use super::discovery;
use super::faults::EmulatorFaults;
use super::patch::{self, PatchKind};
use super::path::{self, Query, ResourcePath, Route};
use super::registry::{Registry, ResourceDef};
use super::rules::Target;
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::status::ApiError;
use super::store::{self, ListOptions, Store, WriteOptions, Written};
use super::watch::{self as watching, WatchContext, WatchRequest, WatchStart};

/// Largest accepted request body.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Default watch duration when `timeoutSeconds` is absent (the real server's minimum).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// State that outlives a restart.
pub(crate) struct Shared {
    pub registry: Registry,
    pub store: Arc<Mutex<Store>>,
    /// Carries the latest resourceVersion to open watches.
    pub changes: watch::Sender<u64>,
    pub requests: Mutex<VecDeque<RecordedRequest>>,
    /// How many recorded requests are kept (the oldest are forgotten first).
    pub request_log_cap: usize,
    /// Requests by verb and resource (kept whatever `request_log_cap` is).
    pub counters: RequestCounters,
    pub faults: EmulatorFaults,
    pub bookmark_interval: Duration,
}

impl Shared {
    fn record(&self, r: RecordedRequest) {
        self.counters.record(&r);
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        if self.request_log_cap == 0 {
            return;
        }
        while requests.len() >= self.request_log_cap {
            requests.pop_front();
        }
        requests.push_back(r);
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes watches if the resourceVersion moved.
    fn notify(&self) {
        let rv = self.store().resource_version();
        self.changes.send_if_modified(|current| {
            let changed = *current != rv;
            *current = rv;
            changed
        });
    }
}

/// State of one serving period (between start/restart and stop).
#[derive(Clone)]
pub(crate) struct RunState {
    pub shared: Arc<Shared>,
    pub stop: watch::Receiver<bool>,
    pub server_address: String,
}

/// The router serving every API path through [`handle`], and the admin route.
pub(crate) fn router(state: RunState) -> Router {
    Router::new()
        .route(COUNTERS_PATH, get(counters_snapshot).delete(counters_reset))
        .fallback(handle)
        .with_state(state)
}

/// The admin route of the request counters (no Kubernetes path starts with `/_`).
pub(crate) const COUNTERS_PATH: &str = "/_emulator/counters";

/// `GET /_emulator/counters`: the counters as JSON. Admin requests are not counted.
async fn counters_snapshot(State(state): State<RunState>) -> Response {
    json_response(StatusCode::OK, &state.shared.counters.snapshot())
}

/// `DELETE /_emulator/counters`: every counter back to zero (204).
async fn counters_reset(State(state): State<RunState>) -> Response {
    state.shared.counters.reset();
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(err: &ApiError) -> Response {
    let code = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(code, &err.to_status());
    if err.code == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn now() -> String {
    let ts = jiff::Timestamp::now();
    jiff::Timestamp::from_second(ts.as_second())
        .unwrap_or(ts)
        .to_string()
}

/// The request verb as Kubernetes audit/RBAC names it.
fn verb(method: &Method, route: Option<&Route>, query: &Query) -> &'static str {
    let (has_name, legacy_watch) = match route {
        Some(Route::Resource(p)) => (p.name.is_some(), p.legacy_watch),
        _ => (true, false),
    };
    match *method {
        // `watch=true` on an object path watches that one object, like the legacy form.
        Method::GET if legacy_watch || query.flag("watch") => "watch",
        Method::GET if has_name => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if has_name => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

fn content_type(req: &Request) -> &str {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Serves one request.
async fn handle(State(state): State<RunState>, req: Request) -> Response {
    let query = Query::parse(req.uri().query());
    let route = path::parse(req.uri().path());
    let verb = verb(req.method(), route.as_ref(), &query);
    let patch_kind = (req.method() == Method::PATCH)
        .then(|| PatchKind::from_content_type(content_type(&req)))
        .flatten();
    let metadata_only = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(super::metadata::requested);
    let mut record = RecordedRequest {
        verb: verb.to_string(),
        group: String::new(),
        version: String::new(),
        resource: String::new(),
        subresource: None,
        namespace: None,
        name: None,
        patch_type: patch_kind.map(|k| k.short_name().to_string()),
        field_manager: query.get("fieldManager").map(str::to_string),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        status: 0,
    };
    match &route {
        Some(Route::Resource(p)) => {
            record.group = p.group.clone();
            record.version = p.version.clone();
            record.resource = p.plural.clone();
            record.subresource = p.subresource.clone();
            record.namespace = p.namespace.clone();
            record.name = p.name.clone();
        }
        Some(Route::ResourceList { group, version }) => {
            record.group = group.clone();
            record.version = version.clone();
        }
        _ => {}
    }
    let response = match state.shared.faults.take_failure(&record.resource) {
        Some(code) => error_response(&ApiError::injected(code)),
        None => {
            let content_type = content_type(&req).to_string();
            let method = req.method().clone();
            let request_path = req.uri().path().to_string();
            match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
                Err(e) => {
                    error_response(&ApiError::bad_request(format!("reading request body: {e}")))
                }
                Ok(body) => {
                    let call = Call {
                        state: &state,
                        method,
                        query: &query,
                        content_type,
                        patch_kind,
                        verb,
                        body,
                        metadata_only,
                    };
                    match route {
                        None => Err(ApiError::unknown_path(&request_path)),
                        Some(route) => call.dispatch(route, &request_path),
                    }
                    .unwrap_or_else(|e| error_response(&e))
                }
            }
        }
    };
    record.status = response.status().as_u16();
    state.shared.record(record);
    response
}

/// One request being served.
struct Call<'a> {
    state: &'a RunState,
    method: Method,
    query: &'a Query,
    content_type: String,
    patch_kind: Option<PatchKind>,
    verb: &'static str,
    body: Bytes,
    /// `Accept` asked for `PartialObjectMetadata` (get, list, watch).
    metadata_only: bool,
}

impl Call<'_> {
    fn dispatch(&self, route: Route, request_path: &str) -> Result<Response, ApiError> {
        let shared = &self.state.shared;
        let discovery = match route {
            Route::Resource(p) => return self.resource(p, request_path),
            Route::Version => discovery::version(),
            Route::CoreVersions => discovery::core_versions(&self.state.server_address),
            Route::Groups => discovery::groups(&shared.registry),
            Route::ResourceList { group, version } => {
                discovery::resource_list(&shared.registry, &group, &version)
                    .ok_or_else(|| ApiError::unknown_path(request_path))?
            }
        };
        if self.method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({request_path})"
            )));
        }
        Ok(json_response(StatusCode::OK, &discovery))
    }

    fn write_options<'n>(&'n self, now: &'n str) -> WriteOptions<'n> {
        WriteOptions {
            now,
            dry_run: self.query.get("dryRun") == Some("All"),
            field_manager: self.query.get("fieldManager"),
        }
    }

    fn selectors(&self, def: &ResourceDef) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(self.query.get("labelSelector").unwrap_or(""))
                .map_err(ApiError::bad_request)?,
            fields: FieldSelector::parse(
                self.query.get("fieldSelector").unwrap_or(""),
                def.extra_field_labels(),
            )
            .map_err(ApiError::bad_request)?,
        })
    }

    /// Requests under a resource path.
    ///
    /// Deviation: the namespace `finalize` subresource is not served (404).
    fn resource(&self, p: ResourcePath, request_path: &str) -> Result<Response, ApiError> {
        let shared = &self.state.shared;
        let unknown = || ApiError::unknown_path(request_path);
        let def = shared
            .registry
            .find(&p.group, &p.version, &p.plural)
            .ok_or_else(unknown)?;
        // Cluster-scoped resources have no namespaced paths; namespaced objects have no
        // cluster-level object paths (only all-namespaces collections).
        if (!def.kind.namespaced && p.namespace.is_some())
            || (def.kind.namespaced && p.namespace.is_none() && p.name.is_some())
        {
            return Err(unknown());
        }
        let target = match p.subresource.as_deref() {
            None => Target::Main,
            Some("status") if def.kind.status_subresource => Target::Status,
            Some(_) => return Err(unknown()),
        };
        let ns = p.namespace.as_deref();
        let not_allowed = || {
            ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({request_path})"
            ))
        };
        let now = now();
        let opts = self.write_options(&now);
        let name = p.name.as_deref();
        let response = match (self.verb, name) {
            ("watch", _) => return self.watch(def, ns, name),
            ("get", Some(name)) => {
                let object = shared.store().get(def, ns, name)?;
                if self.metadata_only {
                    json_response(StatusCode::OK, &super::metadata::partial(&object))
                } else {
                    json_response(StatusCode::OK, &object)
                }
            }
            ("list", None) if target == Target::Main => {
                let limit =
                    match self.query.get("limit").filter(|l| !l.is_empty()) {
                        None => None,
                        // Negative limits mean "no limit", as on the real server.
                        Some(l) => Some(
                            usize::try_from(l.parse::<i64>().map_err(|_| {
                                ApiError::bad_request(format!("invalid limit: {l}"))
                            })?)
                            .unwrap_or(0),
                        ),
                    };
                let opts = ListOptions {
                    namespace: ns.map(str::to_string),
                    selectors: self.selectors(def)?,
                    limit,
                    continue_token: self.query.get("continue").map(str::to_string),
                };
                let list = shared.store().list(def, &opts)?;
                if self.metadata_only {
                    json_response(StatusCode::OK, &super::metadata::partial_list(&list))
                } else {
                    json_response(StatusCode::OK, &list)
                }
            }
            ("create", None)
                if target == Target::Main && (ns.is_some() || !def.kind.namespaced) =>
            {
                let body = patch::parse_json_object(&self.body)?;
                let created = shared.store().create(def, ns, body, opts)?;
                json_response(StatusCode::CREATED, &created)
            }
            ("update", Some(name)) => {
                let body = patch::parse_json_object(&self.body)?;
                let written = shared.store().update(def, ns, name, body, target, opts)?;
                written_response(written)
            }
            ("patch", Some(name)) => {
                let kind = self
                    .patch_kind
                    .ok_or_else(|| ApiError::unsupported_media_type(&self.content_type))?;
                self.check_patch_options(kind)?;
                let written = shared.store().patch(
                    def,
                    ns,
                    name,
                    store::Patching {
                        kind,
                        body: &self.body,
                        target,
                    },
                    opts,
                )?;
                written_response(written)
            }
            ("delete", Some(name)) if target == Target::Main => {
                let options: Value = if self.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&self.body).map_err(|e| {
                        ApiError::bad_request(format!("error decoding DeleteOptions: {e}"))
                    })?
                };
                let opts = WriteOptions {
                    dry_run: opts.dry_run
                        || options["dryRun"]
                            .as_array()
                            .is_some_and(|d| d.iter().any(|v| v == "All")),
                    ..opts
                };
                let outcome = shared.store().delete(def, ns, name, &options, opts)?;
                json_response(StatusCode::OK, &store::delete_response(def, &outcome))
            }
            ("deletecollection", None)
                if target == Target::Main && (ns.is_some() || !def.kind.namespaced) =>
            {
                let selectors = self.selectors(def)?;
                let (items, rv) = {
                    let mut store = shared.store();
                    let items = store.delete_collection(def, ns, &selectors, opts)?;
                    (items, store.resource_version())
                };
                json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": format!("{}List", def.kind.kind),
                        "apiVersion": def.kind.api_version(),
                        "metadata": { "resourceVersion": rv.to_string() },
                        "items": items,
                    }),
                )
            }
            _ => return Err(not_allowed()),
        };
        shared.notify();
        Ok(response)
    }

    /// Patch options the real server validates (`ValidatePatchOptions`).
    fn check_patch_options(&self, kind: PatchKind) -> Result<(), ApiError> {
        let invalid = |field: &str, problem: &str| {
            ApiError::invalid_kind(
                "PatchOptions.meta.k8s.io",
                "meta.k8s.io",
                "PatchOptions",
                "",
                field,
                problem,
            )
        };
        if kind == PatchKind::Apply {
            if self.query.get("fieldManager").is_none_or(str::is_empty) {
                return Err(invalid(
                    "fieldManager",
                    "Required value: is required for apply patch",
                ));
            }
        } else if self.query.get("force").is_some() {
            return Err(invalid(
                "force",
                "Forbidden: may not be specified for non-apply patch",
            ));
        }
        Ok(())
    }

    /// The watch-list rules of `ValidateListOptions`: `sendInitialEvents` (any value) requires
    /// `resourceVersionMatch=NotOlderThan`, and `resourceVersionMatch` requires
    /// `sendInitialEvents`.
    fn check_watch_list_options(&self) -> Result<(), ApiError> {
        let invalid = |field: &str, problem: &str| {
            ApiError::invalid_kind(
                "ListOptions.meta.k8s.io",
                "meta.k8s.io",
                "ListOptions",
                "",
                field,
                problem,
            )
        };
        let rv_match = self.query.get("resourceVersionMatch").unwrap_or("");
        let send_initial = self.query.get("sendInitialEvents").is_some();
        if send_initial && rv_match != "NotOlderThan" {
            return Err(invalid(
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !rv_match.is_empty() && !send_initial {
            return Err(invalid(
                "resourceVersionMatch",
                "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        Ok(())
    }

    fn watch(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Result<Response, ApiError> {
        let shared = &self.state.shared;
        let mut selectors = self.selectors(def)?;
        if let Some(name) = name {
            // `/watch/.../{name}` or `{name}?watch=true` watches one object.
            selectors.fields = FieldSelector::parse(&format!("metadata.name={name}"), &[])
                .map_err(ApiError::bad_request)?;
        }
        let start =
            match self.query.get("resourceVersion").unwrap_or("") {
                "" | "0" => WatchStart::Now,
                rv => WatchStart::After(rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {rv}"))
                })?),
            };
        let timeout = match self.query.get("timeoutSeconds").filter(|t| !t.is_empty()) {
            None => DEFAULT_WATCH_TIMEOUT,
            // Zero and negative values mean "the server default", as on a real server.
            // Deviation: values above i64::MAX are accepted (a real server answers 400).
            Some(t) => match (t.parse::<u64>(), t.parse::<i64>()) {
                (Ok(0), _) | (_, Ok(..0)) => DEFAULT_WATCH_TIMEOUT,
                (Ok(secs), _) => Duration::from_secs(secs),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid timeoutSeconds: {t}"
                    )));
                }
            },
        };
        self.check_watch_list_options()?;
        let req = WatchRequest {
            def: def.clone(),
            namespace: ns.map(str::to_string),
            selectors,
            start,
            bookmarks: self.query.flag("allowWatchBookmarks"),
            send_initial_events: self.query.flag("sendInitialEvents"),
            timeout,
            metadata_only: self.metadata_only,
        };
        let ctx = WatchContext {
            store: shared.store.clone(),
            changes: shared.changes.subscribe(),
            dropped: shared.faults.drop_signal(),
            stop: self.state.stop.clone(),
            bookmark_interval: shared.bookmark_interval,
        };
        Ok(watching::respond(ctx, req))
    }
}

fn written_response(written: Written) -> Response {
    match written {
        Written::Created(o) => json_response(StatusCode::CREATED, &o),
        Written::Updated(o) | Written::Removed(o) => json_response(StatusCode::OK, &o),
    }
}
