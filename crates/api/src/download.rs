//! One-time download links: a JWT (HS256, signed with the node token, as
//! Pterodactyl signs its backup download links) that the panel hands to the
//! browser, for `GET /download/restic?token=…` on the agent.
//!
//! The agent needs the repository key to run `restic dump`, but keys must
//! never reach a browser. So the key travels inside the token encrypted
//! (ChaCha20-Poly1305, with a key derived from the node token): the browser
//! carries it without being able to read it, and only the agent that shares
//! the node token can.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

use crate::files::SnapshotPath;
use crate::sealed::SealedBox;
use crate::{Secret, ServerUuid, SnapshotRef};

/// How long a link stays valid.
pub const TOKEN_LIFETIME_SECS: i64 = 15 * 60;

/// Archive formats of a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownloadFormat {
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "tar.zst")]
    TarZst,
    #[serde(rename = "zip")]
    Zip,
}

impl DownloadFormat {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "tar.gz" | "tgz" => Some(Self::TarGz),
            "tar.zst" => Some(Self::TarZst),
            "zip" => Some(Self::Zip),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::TarGz => "tar.gz",
            Self::TarZst => "tar.zst",
            Self::Zip => "zip",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::TarGz => "application/gzip",
            Self::TarZst => "application/zstd",
            Self::Zip => "application/zip",
        }
    }
}

/// What a link allows: one snapshot of one server (or one file or folder
/// of it), in one format, until `exp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadGrant {
    pub server: ServerUuid,
    pub snapshot: SnapshotRef,
    pub format: DownloadFormat,
    /// A file or folder of the snapshot; `None`: all of it.
    pub path: Option<SnapshotPath>,
    /// Unix seconds.
    pub exp: i64,
    /// Unique ID, so the agent can refuse a second use.
    pub jti: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    snapshot: String,
    format: DownloadFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<SnapshotPath>,
    iat: i64,
    exp: i64,
    jti: String,
    /// base64url(nonce ‖ ciphertext) of the repository key.
    key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("the download link is malformed")]
    Malformed,
    #[error("the download link's signature is not valid")]
    BadSignature,
    #[error("the download link has expired")]
    Expired,
}

fn mac(node_token: &Secret) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(node_token.expose().as_bytes())
        .expect("HMAC takes keys of any length")
}

/// The box the repository key travels in (the node's token is the secret).
fn key_box(node_token: &Secret) -> SealedBox {
    SealedBox::derive(node_token, b"restic-backups download key encryption v1")
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the system random number generator failed");
    b
}

/// Issues a link token (the panel's side).
pub fn issue(
    node_token: &Secret,
    server: &ServerUuid,
    snapshot: &SnapshotRef,
    format: DownloadFormat,
    path: Option<&SnapshotPath>,
    repo_key: &Secret,
    now_unix: i64,
) -> String {
    let key_field = key_box(node_token).seal(repo_key.expose().as_bytes(), b"");
    let claims = Claims {
        sub: server.to_string(),
        snapshot: snapshot.as_str().to_owned(),
        format,
        path: path.filter(|p| !p.is_root()).cloned(),
        iat: now_unix,
        exp: now_unix + TOKEN_LIFETIME_SECS,
        jti: crate::hex::encode(&random::<16>()),
        key: B64.encode(key_field),
    };
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = B64.encode(serde_json::to_vec(&claims).expect("claims serialise"));
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(node_token);
    m.update(signing_input.as_bytes());
    let sig = B64.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Checks a link token (the agent's side) and returns what it grants and the
/// repository key inside. One-time use is the caller's job (remember `jti`).
pub fn verify(
    node_token: &Secret,
    token: &str,
    now_unix: i64,
) -> Result<(DownloadGrant, Secret), TokenError> {
    // A link naming the longest path is about 6 kB.
    if token.len() > 8192 {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
    let mut m = mac(node_token);
    m.update(header.as_bytes());
    m.update(b".");
    m.update(payload.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    // Signed by us, so the header is ours; still refuse anything but HS256.
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(header).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Malformed);
    }
    let claims: Claims =
        serde_json::from_slice(&B64.decode(payload).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
    if now_unix >= claims.exp {
        return Err(TokenError::Expired);
    }
    let sealed = B64.decode(&claims.key).map_err(|_| TokenError::Malformed)?;
    let key = key_box(node_token)
        .open(&sealed, b"")
        .ok_or(TokenError::BadSignature)?;
    let key = String::from_utf8(key).map_err(|_| TokenError::Malformed)?;
    let key = Secret::new(key).map_err(|_| TokenError::Malformed)?;
    Ok((
        DownloadGrant {
            server: ServerUuid::parse(&claims.sub).map_err(|_| TokenError::Malformed)?,
            snapshot: SnapshotRef::parse(&claims.snapshot).map_err(|_| TokenError::Malformed)?,
            format: claims.format,
            path: claims.path,
            exp: claims.exp,
            jti: claims.jti,
        },
        key,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> (Secret, ServerUuid, SnapshotRef, Secret) {
        (
            Secret::new("node-token-0123456789abcdef").unwrap(),
            ServerUuid::parse("1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap(),
            SnapshotRef::parse(&"ab".repeat(32)).unwrap(),
            Secret::new("the-repo-key").unwrap(),
        )
    }

    #[test]
    fn a_token_round_trips_and_hides_the_key() {
        let (node, server, snap, key) = fixtures();
        let token = issue(
            &node,
            &server,
            &snap,
            DownloadFormat::TarZst,
            None,
            &key,
            1000,
        );
        assert!(!token.contains("the-repo-key"));
        let payload = B64.decode(token.split('.').nth(1).unwrap()).unwrap();
        assert!(!String::from_utf8_lossy(&payload).contains("the-repo-key"));
        let (grant, got) = verify(&node, &token, 1001).unwrap();
        assert_eq!(got.expose(), "the-repo-key");
        assert_eq!(
            (grant.server, grant.snapshot, grant.format),
            (server.clone(), snap.clone(), DownloadFormat::TarZst)
        );
        assert_eq!(grant.exp, 1000 + TOKEN_LIFETIME_SECS);
        assert_eq!(grant.path, None);
        // A link for one path carries it, signed; the longest path fits.
        let long = SnapshotPath::parse(&"n/".repeat(2000)).unwrap();
        for path in [SnapshotPath::parse("world/level.dat").unwrap(), long] {
            let token = issue(
                &node,
                &server,
                &snap,
                DownloadFormat::Zip,
                Some(&path),
                &key,
                1000,
            );
            assert_eq!(verify(&node, &token, 1001).unwrap().0.path, Some(path));
        }
    }

    #[test]
    fn expired_forged_and_garbled_tokens_are_refused() {
        let (node, server, snap, key) = fixtures();
        let token = issue(
            &node,
            &server,
            &snap,
            DownloadFormat::TarGz,
            None,
            &key,
            1000,
        );
        assert_eq!(
            verify(&node, &token, 1000 + TOKEN_LIFETIME_SECS).unwrap_err(),
            TokenError::Expired
        );
        let other = Secret::new("another-node-token-xyz").unwrap();
        assert_eq!(
            verify(&other, &token, 1001).unwrap_err(),
            TokenError::BadSignature
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_payload = B64.encode(br#"{"sub":"x"}"#);
        parts[1] = &forged_payload;
        assert_eq!(
            verify(&node, &parts.join("."), 1001).unwrap_err(),
            TokenError::BadSignature
        );
        for bad in ["", "a.b", "a.b.c.d", "..", &"x".repeat(9000)] {
            assert!(verify(&node, bad, 1001).is_err(), "{bad}");
        }
    }
}
