//! HMAC-SHA256 signatures for the data proxy's own upload and download URLs.
//!
//! A token covers the method, the object path, the expiry (unix seconds) and the content MD5
//! the uploader promised, so a URL cannot be reused for another object, another verb, a later
//! time or other content.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// The verb a signed URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedMethod {
    Get,
    Put,
}

impl SignedMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the signed URL expired at {0}; request a new upload location")]
    Expired(DateTime<Utc>),
    #[error("the URL signature is invalid for this path, method, expiry and content MD5")]
    Invalid,
}

/// Signs and verifies URL tokens with one key. Cheap to clone.
#[derive(Clone)]
pub struct UrlSigner {
    key: Arc<[u8]>,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSigner").finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// A signer with `key`; an empty key means a random one (URLs then die with the process).
    pub fn new(key: &[u8]) -> Self {
        let key: Arc<[u8]> = if key.is_empty() {
            let random: [u8; 32] = rand::random();
            Arc::from(&random[..])
        } else {
            Arc::from(key)
        };
        Self { key }
    }

    fn mac(
        &self,
        method: SignedMethod,
        path: &str,
        expires_at: i64,
        content_md5: Option<&[u8; 16]>,
    ) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        let md5 = content_md5.map(|m| STANDARD.encode(m)).unwrap_or_default();
        let path = path.trim_matches('/');
        mac.update(
            format!(
                "flyte-rs-v1\n{}\n{path}\n{expires_at}\n{md5}",
                method.as_str()
            )
            .as_bytes(),
        );
        mac
    }

    /// The token (URL-safe base64) for `method` on `path` until `expires_at`.
    pub fn sign(
        &self,
        method: SignedMethod,
        path: &str,
        expires_at: DateTime<Utc>,
        content_md5: Option<[u8; 16]>,
    ) -> String {
        let mac = self.mac(method, path, expires_at.timestamp(), content_md5.as_ref());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Checks a token against what it claims to cover, at time `now`. Expiry is reported
    /// only for genuine tokens, so a forged URL never learns more than "invalid".
    pub fn verify(
        &self,
        method: SignedMethod,
        path: &str,
        expires_at: i64,
        content_md5: Option<[u8; 16]>,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let sig = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| SignatureError::Invalid)?;
        self.mac(method, path, expires_at, content_md5.as_ref())
            .verify_slice(&sig)
            .map_err(|_| SignatureError::Invalid)?;
        if now.timestamp() > expires_at {
            let at = DateTime::from_timestamp(expires_at, 0).unwrap_or_default();
            return Err(SignatureError::Expired(at));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn sign_then_verify() {
        let signer = UrlSigner::new(b"k");
        let now = Utc::now();
        let exp = now + Duration::minutes(5);
        let md5 = Some([7u8; 16]);
        let token = signer.sign(SignedMethod::Put, "uploads/a/b", exp, md5);
        let ok = |m, p, e, c, t: &str| signer.verify(m, p, e, c, t, now);
        assert_eq!(
            ok(
                SignedMethod::Put,
                "uploads/a/b",
                exp.timestamp(),
                md5,
                &token
            ),
            Ok(())
        );
        assert_eq!(
            ok(
                SignedMethod::Get,
                "uploads/a/b",
                exp.timestamp(),
                md5,
                &token
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            ok(
                SignedMethod::Put,
                "uploads/a/c",
                exp.timestamp(),
                md5,
                &token
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            ok(
                SignedMethod::Put,
                "uploads/a/b",
                exp.timestamp() + 1,
                md5,
                &token
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            ok(
                SignedMethod::Put,
                "uploads/a/b",
                exp.timestamp(),
                None,
                &token
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            ok(SignedMethod::Put, "uploads/a/b", exp.timestamp(), md5, "!!"),
            Err(SignatureError::Invalid)
        );
        // Another key does not verify.
        let other = UrlSigner::new(b"other");
        assert_eq!(
            other.verify(
                SignedMethod::Put,
                "uploads/a/b",
                exp.timestamp(),
                md5,
                &token,
                now
            ),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let signer = UrlSigner::new(b"");
        let exp = Utc::now() - Duration::seconds(10);
        let token = signer.sign(SignedMethod::Get, "x", exp, None);
        assert!(matches!(
            signer.verify(
                SignedMethod::Get,
                "x",
                exp.timestamp(),
                None,
                &token,
                Utc::now()
            ),
            Err(SignatureError::Expired(_))
        ));
    }

    #[test]
    fn empty_keys_are_random() {
        let exp = Utc::now() + Duration::minutes(1);
        let a = UrlSigner::new(b"").sign(SignedMethod::Get, "x", exp, None);
        let b = UrlSigner::new(b"").sign(SignedMethod::Get, "x", exp, None);
        assert_ne!(a, b);
    }
}
