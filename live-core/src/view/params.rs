//! The URL's parameters, and matching a URL against a view's route.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::ViewError;
use crate::token::ViewToken;

/// The URL's parameters: path parameters of the route, then the query string.
///
/// ```
/// use live_core::Params;
/// let p = Params::from_parts([("id", "7")], "/lists/7?filter=active");
/// assert_eq!(p.get("id"), Some("7"));
/// assert_eq!(p.get("filter"), Some("active"));
/// assert_eq!(p.parse::<i64>("id").unwrap(), 7);
/// assert!(p.parse::<i64>("filter").is_err());
/// assert_eq!(p.path(), "/lists/7");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    path_params: BTreeMap<String, String>,
    query: Vec<(String, String)>,
    uri: String,
}

impl Params {
    /// Parameters from path parameters and a URI (path and query).
    pub fn from_parts<K: Into<String>, V: Into<String>>(
        path_params: impl IntoIterator<Item = (K, V)>,
        uri: &str,
    ) -> Self {
        let query = uri
            .split_once('?')
            .map(|(_, q)| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Params {
            path_params: path_params
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            query,
            uri: uri.to_string(),
        }
    }

    /// A path parameter, or else the first query parameter of that name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.path_params.get(name).map(String::as_str).or_else(|| {
            self.query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        })
    }

    /// A parameter parsed with `FromStr`; missing or unparsable is a `BadRequest`.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T, ViewError> {
        self.get(name)
            .ok_or_else(|| ViewError::bad_request(format!("missing parameter {name:?}")))?
            .parse()
            .map_err(|_| ViewError::bad_request(format!("bad parameter {name:?}")))
    }

    /// The path and query.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    #[allow(dead_code)]
    pub(crate) fn path_params(&self) -> &BTreeMap<String, String> {
        &self.path_params
    }
}

/// Whether `to` is a path on this site: it starts with one `/` (not `//` or `/\\`, which
/// browsers read as another host) and has no control characters.
pub(crate) fn is_local_url(to: &str) -> bool {
    let b = to.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && !to.chars().any(|c| c.is_control())
}

/// The path and query of a URL (absolute, or already a path).
fn path_and_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        },
        Err(_) if url.starts_with('/') => url.to_string(),
        Err(_) => String::from("/"),
    }
}

/// The params of a join: the path parameters signed in the page's token (a client cannot join
/// with other ones), and the query of the client's current URL (filters it patched in).
pub(crate) fn join_params(token: &ViewToken, url: &str) -> Params {
    let pq = path_and_query(url);
    let query = pq.split_once('?').map(|(_, q)| q).unwrap_or("");
    let uri = if query.is_empty() {
        pq.split('?').next().unwrap_or("/").to_string()
    } else {
        pq.clone()
    };
    Params::from_parts(token.path_params.clone(), &uri)
}

/// The params of a URL the view navigated to (a live patch): path parameters matched against
/// the view's route (the view's `handle_params` decides whether the session may see them).
pub(crate) fn params_for(route: &str, token: &ViewToken, url: &str) -> Params {
    let path_and_query = path_and_query(url);
    let path = path_and_query.split('?').next().unwrap_or("/");
    let mut router = matchit::Router::new();
    let matched = router
        .insert(route, ())
        .ok()
        .and_then(|_| router.at(path).ok())
        .map(|m| {
            m.params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        });
    match matched {
        Some(pp) => Params::from_parts(pp, &path_and_query),
        None => Params::from_parts(token.path_params.clone(), &path_and_query),
    }
}
