//! Which spellings of a base URL are one identity server.

use url::Url;

/// What makes two spellings of a base URL one server, for everything shared per server (the
/// request budget, the per-server reconcile cap, the connection pool): scheme, host and port as
/// the URL parser normalises them (lowercase scheme and host, default port dropped, dot
/// segments resolved), the path without trailing slashes (the operator joins
/// paths the same way with or without one). `HTTPS://Cloud.UiPath.com:443/acme/identity_/` and
/// `https://cloud.uipath.com/acme/identity_` are one server. The path keeps its case: a server
/// may tell `/Acme` from `/acme`, and one spelling's connection serves the others. Text that does
/// not parse is its own key, trimmed.
pub fn server_identity(raw: &str) -> String {
    let Ok(url) = Url::parse(raw.trim()) else {
        return raw.trim().to_owned();
    };
    let mut key = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        key.push_str(&format!(":{port}"));
    }
    key.push_str(url.path().trim_end_matches('/'));
    key
}
