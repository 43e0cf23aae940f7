//! Kept assigns (`#[keep]`): small UI state (the todo being edited, an open panel, a tab)
//! that survives a view being mounted again — after its grace period, on another node, after
//! a deploy. The view sends the client a signed blob of its kept fields whenever they change;
//! a join that mounts anew brings it back, and the fields are restored after `mount`.
//!
//! The blob is signed (HMAC with a key of its own, derived from the app's secret), bound to
//! the page token it was issued for, and expires with it. Its content is readable by the
//! client: never keep secrets. A blob that does not verify, belongs to another page (another
//! session, another view, another page load) or has expired is refused with a reason, logged,
//! and the view mounts plain.

use serde::{Deserialize, Serialize};

use crate::token::Signer;

/// The signed payload.
#[derive(Serialize, Deserialize)]
struct Blob {
    /// The page the blob belongs to ([`page_id`] of its token).
    p: String,
    /// Expiry (Unix seconds).
    exp: u64,
    /// The kept fields, as the view serialized them.
    f: serde_json::Value,
}

/// Why a kept blob was not used (the reason in the join reply's `keep_refused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepRefused {
    /// Not a blob of this app: malformed, tampered, or signed with another key.
    Invalid,
    /// Past its expiry.
    Expired,
    /// Issued for another page (another session, view or page load).
    OtherPage,
    /// The fields do not fit the view's kept assigns (the view changed, say).
    Fields,
}

impl KeepRefused {
    /// The reason as the client reads it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeepRefused::Invalid => "invalid",
            KeepRefused::Expired => "expired",
            KeepRefused::OtherPage => "other_page",
            KeepRefused::Fields => "fields",
        }
    }
}

/// The name a blob is bound to: a digest of the page token as the client holds it (a token
/// names a route, path parameters and a session, and a new one is signed for every page load
/// and every patch to other path parameters).
pub(crate) fn page_id(token: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// Signs `fields` for page `page` until `exp`.
pub(crate) fn seal(signer: &Signer, page: &str, exp: u64, fields: &serde_json::Value) -> String {
    signer.sign(&Blob {
        p: page.to_string(),
        exp,
        f: fields.clone(),
    })
}

/// The fields of `blob` if it verifies, belongs to `page` and has not expired at `now`.
pub(crate) fn open(
    signer: &Signer,
    blob: &str,
    page: &str,
    now: u64,
) -> Result<serde_json::Value, KeepRefused> {
    let b: Blob = signer.verify(blob).map_err(|_| KeepRefused::Invalid)?;
    if b.p != page {
        return Err(KeepRefused::OtherPage);
    }
    if b.exp < now {
        return Err(KeepRefused::Expired);
    }
    Ok(b.f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_blob_opens_only_for_its_page_before_its_expiry_and_untampered() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", "keep-blob");
        let page = page_id("token-a");
        let blob = seal(&signer, &page, 100, &json!({"editing": 7}));
        assert_eq!(open(&signer, &blob, &page, 99), Ok(json!({"editing": 7})));
        assert_eq!(
            open(&signer, &blob, &page_id("token-b"), 99),
            Err(KeepRefused::OtherPage)
        );
        assert_eq!(open(&signer, &blob, &page, 101), Err(KeepRefused::Expired));
        // Any change to the payload or the tag is refused.
        let (payload, tag) = blob.split_once('.').unwrap();
        let mut p: Vec<char> = payload.chars().collect();
        p[3] = if p[3] == 'A' { 'B' } else { 'A' };
        let tampered = format!("{}.{tag}", p.into_iter().collect::<String>());
        assert_eq!(
            open(&signer, &tampered, &page, 99),
            Err(KeepRefused::Invalid)
        );
        assert_eq!(
            open(&signer, "garbage", &page, 99),
            Err(KeepRefused::Invalid)
        );
        // Another purpose's key (a page token signer) does not verify it.
        let other = Signer::new(b"0123456789abcdef0123456789abcdef", "page-token");
        assert_eq!(open(&other, &blob, &page, 99), Err(KeepRefused::Invalid));
    }
}
