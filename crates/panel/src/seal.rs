//! Sealing secrets for storage: node tokens and server keys are encrypted with
//! the panel's secret key (ChaCha20-Poly1305, a fresh nonce each time), so a
//! database dump alone reveals neither. The sealed form is
//! `v1.<base64url(nonce ‖ ciphertext)>`; the server UUID or node name is bound
//! in as associated data, so a sealed value can not be moved to another row.

use api::Secret;
use api::sealed::SealedBox;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    #[error("the panel secret key must be at least 32 characters")]
    WeakKey,
    #[error(
        "a stored secret could not be opened (wrong panel secret key, or the value was altered)"
    )]
    Open,
}

/// Seals and opens secrets with a key derived from the panel secret.
#[derive(Clone)]
pub struct Sealer {
    sealed: SealedBox,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    pub fn new(panel_secret: &Secret) -> Result<Self, SealError> {
        if panel_secret.expose().len() < 32 {
            return Err(SealError::WeakKey);
        }
        Ok(Self {
            sealed: SealedBox::derive(panel_secret, b"restic-backups panel storage sealing v1"),
        })
    }

    /// Encrypts `secret`, bound to `context` (e.g. `server:<uuid>`).
    pub fn seal(&self, secret: &Secret, context: &str) -> String {
        let sealed = self
            .sealed
            .seal(secret.expose().as_bytes(), context.as_bytes());
        format!("v1.{}", B64.encode(sealed))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret, SealError> {
        let raw = sealed
            .strip_prefix("v1.")
            .and_then(|b| B64.decode(b).ok())
            .ok_or(SealError::Open)?;
        self.sealed
            .open_secret(&raw, context.as_bytes())
            .ok_or(SealError::Open)
    }
}

/// A new random secret of 32 bytes (256 bits), hex-encoded: server keys and
/// node tokens.
pub fn random_secret() -> Secret {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the system random number generator failed");
    let hex = api::hex::encode(&bytes);
    Secret::new(hex).expect("64 hex characters are a valid secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(k: &str) -> Sealer {
        Sealer::new(&Secret::new(k).unwrap()).unwrap()
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let s = sealer("panel-secret-key-0123456789abcdef-xyz");
        let secret = Secret::new("repo-key-abc").unwrap();
        let sealed = s.seal(&secret, "server:1");
        assert!(!sealed.contains("repo-key-abc"));
        assert_ne!(sealed, s.seal(&secret, "server:1"), "fresh nonce each time");
        assert_eq!(s.open(&sealed, "server:1").unwrap(), secret);
        assert_eq!(s.open(&sealed, "server:2"), Err(SealError::Open));
        let other = sealer("another-panel-secret-key-0123456789ab");
        assert_eq!(other.open(&sealed, "server:1"), Err(SealError::Open));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(s.open(&tampered, "server:1"), Err(SealError::Open));
        assert_eq!(s.open("garbage", "server:1"), Err(SealError::Open));
    }

    #[test]
    fn weak_panel_keys_are_refused_and_random_secrets_are_long() {
        assert_eq!(
            Sealer::new(&Secret::new("short").unwrap()).unwrap_err(),
            SealError::WeakKey
        );
        let a = random_secret();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, random_secret());
    }
}
