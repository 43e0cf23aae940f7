//! Signed tokens: the view token in each page's container (which view, at which route, with
//! which server session, until when) and the session cookie. HMAC-SHA256 over a JSON payload,
//! `base64url(payload).base64url(mac)`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::Sha256;

/// `n` random bytes from the operating system.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return buf;
    }
    // Without /dev/urandom: the standard library's randomly seeded hasher.
    use std::hash::{BuildHasher, Hasher};
    for chunk in buf.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        );
        let bytes = h.finish().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    buf
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Not a token of ours.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match (tampered, or signed with another key).
    #[error("invalid token signature")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
}

/// Signs and verifies payloads with the app's secret key.
#[derive(Clone)]
pub(crate) struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Signer {
    /// A signer for one purpose: its key is derived from the app's secret key and the purpose
    /// (HMAC-SHA256(secret, "live-core:" + purpose)), so a token of one kind never verifies
    /// as another kind.
    pub(crate) fn new(secret: &[u8], purpose: &str) -> Self {
        let mut mac = match HmacSha256::new_from_slice(secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(b"live-core:");
        mac.update(purpose.as_bytes());
        Signer {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }

    pub(crate) fn sign<T: Serialize>(&self, value: &T) -> String {
        let payload = serde_json::to_vec(value).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(tag))
    }

    pub(crate) fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let (p, t) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = B64.decode(p).map_err(|_| TokenError::Malformed)?;
        let tag = B64.decode(t).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a page's view token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ViewToken {
    /// The route pattern the view is registered at.
    pub route: String,
    /// Path parameters of the GET.
    pub path_params: BTreeMap<String, String>,
    /// The server session at the GET.
    pub session: Session,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// A random name of the page load (kept assigns are bound to the page they were issued
    /// for: two loads of one URL in one second are two pages).
    #[serde(default)]
    pub nonce: String,
}

impl ViewToken {
    pub(crate) fn new(
        route: String,
        path_params: BTreeMap<String, String>,
        session: Session,
        max_age: Duration,
    ) -> Self {
        use base64::Engine;
        ViewToken {
            route,
            path_params,
            session,
            exp: now_secs() + max_age.as_secs(),
            nonce: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(9)),
        }
    }

    pub(crate) fn check_expiry(&self) -> Result<(), TokenError> {
        if now_secs() > self.exp {
            Err(TokenError::Expired)
        } else {
            Ok(())
        }
    }
}

/// The server-side session: values the server put in a signed cookie (a user id after login,
/// say). A view gets it in `mount`; the browser can read the cookie's JSON but cannot change
/// it, and the websocket join carries it signed inside the page's view token.
///
/// ```
/// use live_core::Session;
/// let mut s = Session::default();
/// s.insert("user_id", 42);
/// assert_eq!(s.get::<i64>("user_id"), Some(42));
/// assert_eq!(s.get::<i64>("missing"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session(BTreeMap<String, serde_json::Value>);

impl Session {
    /// A value, if present and of type `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Sets a value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Serialize) {
        if let Ok(v) = serde_json::to_value(value) {
            self.0.insert(key.into(), v);
        }
    }

    /// Removes a value.
    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// Whether the session is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "live_session";

/// What the session cookie holds: the session and its expiry (seconds since the epoch).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionCookie {
    #[serde(rename = "s")]
    pub session: Session,
    pub exp: u64,
}

/// Reads the signed session cookie `name` from request headers (empty if absent, invalid or
/// expired).
pub(crate) fn session_from_headers(
    headers: &axum::http::HeaderMap,
    signer: &Signer,
    name: &str,
) -> Session {
    for value in headers.get_all(axum::http::header::COOKIE) {
        let Ok(s) = value.to_str() else { continue };
        for part in s.split(';') {
            if let Some((n, val)) = part.trim().split_once('=')
                && n == name
            {
                return match signer.verify::<SessionCookie>(val) {
                    Ok(c) if c.exp >= now_secs() => c.session,
                    Ok(_) => {
                        tracing::info!("expired session cookie ignored");
                        Session::default()
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "session cookie refused");
                        Session::default()
                    }
                };
            }
        }
    }
    Session::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_tamper() {
        let s = Signer::new(b"k1", "a");
        let t = s.sign(&("a", 1));
        assert_eq!(s.verify::<(String, i32)>(&t).unwrap(), ("a".to_string(), 1));
        assert_eq!(
            Signer::new(b"k2", "a")
                .verify::<(String, i32)>(&t)
                .unwrap_err(),
            TokenError::BadSignature
        );
        // Same secret, another purpose: refused.
        assert_eq!(
            Signer::new(b"k1", "b")
                .verify::<(String, i32)>(&t)
                .unwrap_err(),
            TokenError::BadSignature
        );
        let (p, m) = t.split_once('.').unwrap();
        let forged = format!("{}.{m}", B64.encode(br#"["a",2]"#));
        assert_ne!(forged, t);
        assert_eq!(
            s.verify::<(String, i32)>(&forged).unwrap_err(),
            TokenError::BadSignature
        );
        assert_eq!(
            s.verify::<(String, i32)>(p).unwrap_err(),
            TokenError::Malformed
        );
        assert_eq!(
            s.verify::<(String, i32)>("!!.!!").unwrap_err(),
            TokenError::Malformed
        );
    }

    #[test]
    fn session_cookies_expire_and_need_their_own_key() {
        let cookies = Signer::new(b"secret", "session-cookie");
        let pages = Signer::new(b"secret", "page-token");
        let mut s = Session::default();
        s.insert("user", 7);
        let headers = |v: String| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(
                axum::http::header::COOKIE,
                axum::http::HeaderValue::from_str(&format!("other=1; live_session={v}")).unwrap(),
            );
            h
        };
        let fresh = cookies.sign(&SessionCookie {
            session: s.clone(),
            exp: now_secs() + 60,
        });
        assert_eq!(
            session_from_headers(&headers(fresh), &cookies, "live_session"),
            s
        );
        let expired = cookies.sign(&SessionCookie {
            session: s.clone(),
            exp: now_secs() - 1,
        });
        assert!(session_from_headers(&headers(expired), &cookies, "live_session").is_empty());
        // The same payload signed for another purpose is refused.
        let foreign = pages.sign(&SessionCookie {
            session: s,
            exp: now_secs() + 60,
        });
        assert!(session_from_headers(&headers(foreign), &cookies, "live_session").is_empty());
    }

    #[test]
    fn expiry() {
        let mut t = ViewToken::new(
            "/".into(),
            BTreeMap::new(),
            Session::default(),
            Duration::from_secs(60),
        );
        assert!(t.check_expiry().is_ok());
        t.exp = now_secs() - 1;
        assert_eq!(t.check_expiry().unwrap_err(), TokenError::Expired);
    }
}
