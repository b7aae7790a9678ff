//! The one sealed-box construction: ChaCha20-Poly1305 under a key derived
//! from a secret and a purpose label (HMAC-SHA256), a fresh random nonce per
//! value, sealed bytes `nonce ‖ ciphertext`, optional associated data that a
//! value is bound to. The panel seals stored keys and tokens with it; the
//! download links carry a repository key sealed with it.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Secret;

const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct SealedBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SealedBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedBox(***)")
    }
}

impl SealedBox {
    /// The box for `purpose` under `secret`: different purposes give
    /// unrelated keys.
    pub fn derive(secret: &Secret, purpose: &[u8]) -> Self {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        m.update(purpose);
        let key = m.finalize().into_bytes();
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// `nonce ‖ ciphertext` of `plain`, bound to `bound_to`.
    pub fn seal(&self, plain: &[u8], bound_to: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).expect("the system random number generator failed");
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: bound_to,
                },
            )
            .expect("encrypting a short value can not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// The plain bytes, if `sealed` was sealed by this box and bound to
    /// `bound_to`, and not altered.
    pub fn open(&self, sealed: &[u8], bound_to: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: bound_to,
                },
            )
            .ok()
    }

    /// [`Self::open`] of a sealed [`Secret`].
    pub fn open_secret(&self, sealed: &[u8], bound_to: &[u8]) -> Option<Secret> {
        let text = String::from_utf8(self.open(sealed, bound_to)?).ok()?;
        Secret::new(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_in_its_box_bound_to_the_same_data_and_unaltered() {
        let secret = Secret::new("some-secret-of-any-length").unwrap();
        let a = SealedBox::derive(&secret, b"purpose a");
        let b = SealedBox::derive(&secret, b"purpose b");
        let sealed = a.seal(b"plain", b"row 1");
        assert_ne!(
            sealed,
            a.seal(b"plain", b"row 1"),
            "a fresh nonce each time"
        );
        assert_eq!(a.open(&sealed, b"row 1").as_deref(), Some(&b"plain"[..]));
        assert_eq!(a.open(&sealed, b"row 2"), None);
        assert_eq!(b.open(&sealed, b"row 1"), None);
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(a.open(&altered, b"row 1"), None);
        assert_eq!(a.open(&sealed[..12], b"row 1"), None);
        assert_eq!(a.open(b"", b""), None);
        let key = a.seal(b"repo-key", b"");
        assert_eq!(a.open_secret(&key, b"").unwrap().expose(), "repo-key");
        assert!(a.open_secret(&a.seal(b"bad\nkey", b""), b"").is_none());
    }
}
