//! Pure URL handling: validating the configured base URL and joining endpoint paths onto it.

use url::Url;

use super::error::IdentityError;
use super::types::SettingScope;

/// Path of the Setting API below the identity base.
pub const SETTING_PATH: &str = "api/Setting";
/// Path of the OAuth 2.0 token endpoint below the identity base.
pub const TOKEN_PATH: &str = "connect/token";

/// Parses and checks a URL the client will call: absolute, `https` (or `http` when allowed), with
/// a host, without user info (a password in a URL would end up in error messages), without a
/// query or fragment. `what` names the URL in errors ("base URL", "authenticate URL").
pub fn validate(raw: &str, allow_http: bool, what: &'static str) -> Result<Url, IdentityError> {
    let invalid = |reason: String| IdentityError::InvalidUrl {
        what,
        url: display_safe(raw),
        reason,
    };
    let url = Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http && is_loopback(&url) => {}
        "http" => {
            return Err(IdentityError::InsecureUrl {
                what,
                url: display_safe(raw),
            });
        }
        other => return Err(invalid(format!("unsupported scheme {other:?}, use https"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "user info in the URL is not allowed; put credentials in the Secret".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment is not allowed".into()));
    }
    Ok(url)
}

/// Whether the URL's host is this machine: `localhost`, 127.0.0.0/8 or `::1`. Plain http is
/// allowed (with `allow_http`) to these only: anywhere else a token and credentials would
/// cross a network unencrypted.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Joins `path` (relative, like `api/Setting`) onto `base`, with exactly one slash between them
/// whether or not the base ends in a slash. Unlike [`Url::join`], the base's last segment is kept.
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

/// The longest GET URL sent: IIS and many proxies refuse longer ones (a common limit is 2 KB).
pub const MAX_QUERY_URL_LEN: usize = 2048;

/// The GETs that read `keys`: as few `settings_query` URLs as fit [`MAX_QUERY_URL_LEN`] each,
/// keys in order. A key too long to share a URL goes alone.
pub fn settings_queries(base: &Url, scope: &SettingScope, keys: &[String]) -> Vec<Url> {
    let fixed = settings_query(base, scope, &[]).as_str().len();
    // Each key adds `&key=` and its form-encoded text.
    let cost = |key: &String| {
        5 + url::form_urlencoded::byte_serialize(key.as_bytes())
            .map(str::len)
            .sum::<usize>()
    };
    let mut urls = Vec::new();
    let (mut start, mut len) = (0, fixed);
    for (i, key) in keys.iter().enumerate() {
        let more = cost(key);
        if i > start && len + more > MAX_QUERY_URL_LEN {
            urls.push(settings_query(base, scope, &keys[start..i]));
            (start, len) = (i, fixed);
        }
        len += more;
    }
    if start < keys.len() {
        urls.push(settings_query(base, scope, &keys[start..]));
    }
    urls
}

/// `GET {base}/api/Setting?partitionGlobalId=..&userId=..&key=a&key=b`, query-encoded.
pub fn settings_query(base: &Url, scope: &SettingScope, keys: &[String]) -> Url {
    let mut url = join(base, SETTING_PATH);
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("partitionGlobalId", &scope.partition_global_id);
        if let Some(user) = &scope.user_id {
            query.append_pair("userId", user);
        }
        for key in keys {
            query.append_pair("key", key);
        }
    }
    url
}

pub use settings_core::urls::server_identity;

/// A URL as it may appear in an error: parsed URLs lose any password; unparsable text is cut
/// at a bounded length and stripped of anything between `//` and `@`.
pub fn display_safe(raw: &str) -> String {
    if let Ok(mut url) = Url::parse(raw.trim()) {
        if url.password().is_some() {
            let _ = url.set_password(Some("redacted"));
        }
        return url.to_string();
    }
    let text = match (raw.find("//"), raw.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}//…{}", &raw[..start], &raw[at..]),
        _ => raw.to_owned(),
    };
    super::body::sanitize_prefix(&text, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn join_never_doubles_or_drops_a_slash() {
        for base in [
            "https://h/org/tenant/identity_",
            "https://h/org/tenant/identity_/",
            "https://h/org/tenant/identity_//",
        ] {
            assert_eq!(
                join(&url(base), SETTING_PATH).as_str(),
                "https://h/org/tenant/identity_/api/Setting"
            );
            assert_eq!(
                join(&url(base), "/connect/token").as_str(),
                "https://h/org/tenant/identity_/connect/token"
            );
        }
        assert_eq!(
            join(&url("https://h"), TOKEN_PATH).as_str(),
            "https://h/connect/token"
        );
        assert_eq!(
            join(&url("https://h/"), TOKEN_PATH).as_str(),
            "https://h/connect/token"
        );
    }

    #[test]
    fn long_key_lists_are_read_in_urls_of_at_most_2_kb() {
        let base = url("https://cloud.example.com/acme/identity_");
        let scope = SettingScope::organization("3fa85f64-5717-4562-b3fc-2c963f66afa6");
        let keys: Vec<String> = (0..200)
            .map(|i| format!("Auth.Password.Some.Rather.Long.Setting.Key.Number{i:03}"))
            .collect();
        let urls = settings_queries(&base, &scope, &keys);
        assert!(urls.len() > 1);
        assert!(urls.iter().all(|u| u.as_str().len() <= MAX_QUERY_URL_LEN));
        let read: Vec<String> = urls
            .iter()
            .flat_map(|u| {
                u.query_pairs()
                    .filter(|(k, _)| k == "key")
                    .map(|(_, v)| v.into_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(read, keys, "every key once, in order");
        // A short list stays one GET.
        assert_eq!(settings_queries(&base, &scope, &keys[..3]).len(), 1);
        assert!(settings_queries(&base, &scope, &[]).is_empty());
    }

    #[test]
    fn spellings_of_one_server_are_one_server() {
        let one = server_identity("https://cloud.uipath.com/acme/identity_");
        for spelling in [
            "HTTPS://Cloud.UiPath.com:443/acme/identity_/",
            " https://cloud.uipath.com/acme/identity_// ",
            "https://cloud.uipath.com/acme/./identity_",
        ] {
            assert_eq!(server_identity(spelling), one, "{spelling}");
        }
        assert_ne!(
            server_identity("https://cloud.uipath.com/other/identity_"),
            one
        );
        assert_ne!(
            server_identity("https://cloud.uipath.com/Acme/identity_"),
            one
        );
        assert_ne!(
            server_identity("https://cloud.uipath.com:8443/acme/identity_"),
            one
        );
        assert_ne!(
            server_identity("http://cloud.uipath.com/acme/identity_"),
            one
        );
    }

    #[test]
    fn settings_query_encodes_and_repeats_keys() {
        let scope = SettingScope::user("magic 7&x", "u/1");
        let keys = vec!["Email.Smtp.Domain".to_owned(), "a&b=c".to_owned()];
        let u = settings_query(&url("https://h/identity_/"), &scope, &keys);
        assert_eq!(
            u.as_str(),
            "https://h/identity_/api/Setting?partitionGlobalId=magic+7%26x&userId=u%2F1&key=Email.Smtp.Domain&key=a%26b%3Dc"
        );
        let org = settings_query(&url("https://h/i"), &SettingScope::organization("p"), &[]);
        assert_eq!(org.as_str(), "https://h/i/api/Setting?partitionGlobalId=p");
    }

    #[test]
    fn validate_requires_https_unless_http_is_allowed() {
        assert!(validate("https://h/identity_", false, "base URL").is_ok());
        let err = validate("http://h/identity_", false, "base URL").unwrap_err();
        assert!(matches!(err, IdentityError::InsecureUrl { .. }));
        assert!(validate("http://127.0.0.1/identity_", true, "base URL").is_ok());
        for bad in [
            "ftp://h/x",
            "not a url",
            "https://u:pw@h/x",
            "https://h/x?a=b",
            "/relative",
        ] {
            assert!(validate(bad, true, "base URL").is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_is_allowed_to_loopback_only() {
        for ok in [
            "http://127.0.0.1:8080/identity_",
            "http://localhost/i",
            "http://[::1]:9/i",
            "http://127.9.9.9/i",
        ] {
            assert!(validate(ok, true, "base URL").is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1/identity_",
            "http://cloud.uipath.com/acme/identity_",
            "http://localhost.evil.example/i",
            "http://[::ffff:7f00:1]/i",
        ] {
            let err = validate(refused, true, "base URL").unwrap_err();
            assert!(
                matches!(err, IdentityError::InsecureUrl { .. }),
                "{refused}: {err}"
            );
        }
    }
    #[test]
    fn urls_in_errors_lose_passwords() {
        let err = validate("https://u:hunter2@h/x", true, "base URL").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        assert!(!display_safe("garbage//user:hunter2@host").contains("hunter2"));
    }
}
