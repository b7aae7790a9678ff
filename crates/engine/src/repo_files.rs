//! Reading a local repository's snapshot files without starting restic.
//!
//! Every restic run derives the repository's master key from the password
//! (scrypt, tuned by restic to take about half a second): after a backup,
//! asking `restic snapshots` for the new snapshot costs that much again. A
//! [`MasterKey`] is derived once (the same scrypt, from the same key file)
//! and kept in memory by its caller; with it a new snapshot file is read
//! directly: its name checked against its SHA-256, its MAC checked, then
//! decrypted and (repository version 2) decompressed, as restic's design
//! document describes the format. Anything unexpected is an error, and
//! the caller asks restic as before.

use std::path::Path;

use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use api::Secret;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::EngineError;
use crate::output::Snapshot;

/// Largest key or snapshot file read (real ones are a few hundred bytes to
/// a few kilobytes).
const MAX_FILE: u64 = 4 << 20;

fn bad(what: impl Into<String>) -> EngineError {
    EngineError::Parse(what.into())
}

/// Encryption and MAC keys (restic's `crypto.Key`).
#[derive(Clone)]
struct Keys {
    encrypt: [u8; 32],
    mac_k: [u8; 16],
    mac_r: [u8; 16],
}

impl Keys {
    /// Checks the MAC of `nonce ‖ ciphertext ‖ mac` and decrypts it.
    fn open(&self, data: &[u8]) -> Result<Vec<u8>, EngineError> {
        if data.len() < 32 {
            return Err(bad("encrypted file too short"));
        }
        let (nonce, rest) = data.split_at(16);
        let (ciphertext, mac) = rest.split_at(rest.len() - 16);
        // Poly1305-AES: the one-time key is r ‖ AES-128_k(nonce).
        let mut s = aes::cipher::generic_array::GenericArray::clone_from_slice(nonce);
        aes::Aes128::new_from_slice(&self.mac_k)
            .map_err(|_| bad("MAC key"))?
            .encrypt_block(&mut s);
        let mut one_time = [0u8; 32];
        one_time[..16].copy_from_slice(&self.mac_r);
        one_time[16..].copy_from_slice(&s);
        let expected = poly1305::Poly1305::new(&one_time.into()).compute_unpadded(ciphertext);
        let equal = expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !equal {
            return Err(bad("MAC does not match"));
        }
        let mut plain = ciphertext.to_vec();
        ctr::Ctr128BE::<aes::Aes256>::new_from_slices(&self.encrypt, nonce)
            .map_err(|_| bad("encryption key"))?
            .apply_keystream(&mut plain);
        Ok(plain)
    }
}

#[derive(Deserialize)]
struct KeyFile {
    kdf: String,
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
    salt: String,
    data: String,
}

#[derive(Deserialize)]
struct MacJson {
    k: String,
    r: String,
}

#[derive(Deserialize)]
struct MasterJson {
    mac: MacJson,
    encrypt: String,
}

fn b64(raw: &str) -> Result<Vec<u8>, EngineError> {
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| bad("base64"))
}

fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], EngineError> {
    v.try_into().map_err(|_| bad("key length"))
}

/// Reads a plain file of at most [`MAX_FILE`] bytes; a symlink, a FIFO or
/// anything else is refused as opened (no check-then-open race).
fn read_small(path: &Path) -> Result<Vec<u8>, EngineError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(bad("not a small plain file"));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_FILE {
        return Err(bad("not a small plain file"));
    }
    Ok(data)
}

/// Decompresses at most [`MAX_FILE`] bytes of JSON.
fn unzstd(data: &[u8]) -> Result<Vec<u8>, EngineError> {
    use std::io::Read;
    let mut out = Vec::new();
    zstd::stream::Decoder::new(data)
        .map_err(|_| bad("zstd"))?
        .take(MAX_FILE + 1)
        .read_to_end(&mut out)
        .map_err(|_| bad("zstd"))?;
    if out.len() as u64 > MAX_FILE {
        return Err(bad("snapshot too large"));
    }
    Ok(out)
}

/// A repository's master key, opened with its password.
#[derive(Clone)]
pub struct MasterKey(Keys);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// Opens the master key of the local repository at `repo` with
    /// `password`, trying its key files (blocking: scrypt takes as long as
    /// restic's own start).
    pub fn open(repo: &Path, password: &Secret) -> Result<Self, EngineError> {
        let mut names: Vec<_> = std::fs::read_dir(repo.join("keys"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        names.sort();
        for path in names.iter().take(16) {
            if let Ok(key) = Self::open_file(path, password) {
                return Ok(key);
            }
        }
        Err(EngineError::WrongKey)
    }

    fn open_file(path: &Path, password: &Secret) -> Result<Self, EngineError> {
        let file: KeyFile =
            serde_json::from_slice(&read_small(path)?).map_err(|_| bad("key file"))?;
        // restic tunes its keys to about half a second and 60 MiB; a key
        // file asking for much more is left to restic (in its own process)
        // rather than risk the agent's memory: at most 256 MiB and about
        // ten times restic's usual work.
        let (n, r, p) = (file.n, u64::from(file.r), u64::from(file.p));
        if file.kdf != "scrypt" || !n.is_power_of_two() || n < 2 || r == 0 || p == 0 {
            return Err(bad("key file parameters"));
        }
        let memory = n.saturating_mul(r).saturating_mul(128);
        if memory > 256 << 20 || n.saturating_mul(r).saturating_mul(p) > 1 << 23 {
            return Err(bad("key file parameters beyond what is read here"));
        }
        let params = scrypt::Params::new(file.n.ilog2() as u8, file.r, file.p, 64)
            .map_err(|_| bad("key file parameters"))?;
        let mut derived = [0u8; 64];
        scrypt::scrypt(
            password.expose().as_bytes(),
            &b64(&file.salt)?,
            &params,
            &mut derived,
        )
        .map_err(|_| bad("scrypt"))?;
        let user = Keys {
            encrypt: fixed(&derived[..32])?,
            mac_k: fixed(&derived[32..48])?,
            mac_r: fixed(&derived[48..])?,
        };
        let plain = user.open(&b64(&file.data)?)?;
        let master: MasterJson = serde_json::from_slice(&plain).map_err(|_| bad("master key"))?;
        Ok(Self(Keys {
            encrypt: fixed(&b64(&master.encrypt)?)?,
            mac_k: fixed(&b64(&master.mac.k)?)?,
            mac_r: fixed(&b64(&master.mac.r)?)?,
        }))
    }

    /// Reads snapshot `id` (its full ID, the file's name) of the local
    /// repository at `repo`, as `restic snapshots --json` would list it.
    pub fn read_snapshot(&self, repo: &Path, id: &str) -> Result<Snapshot, EngineError> {
        if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("snapshot file name"));
        }
        let data = read_small(&repo.join("snapshots").join(id))?;
        let digest = Sha256::digest(&data);
        if api::hex::encode(&digest) != id {
            return Err(bad("snapshot file does not match its name"));
        }
        let plain = self.0.open(&data)?;
        // Version 2 repositories mark a compressed file with a leading 2;
        // plain JSON starts with `{`.
        let json = match plain.first() {
            Some(b'{') => plain,
            Some(2) => unzstd(&plain[1..])?,
            _ => return Err(bad("snapshot file format")),
        };
        let mut value: serde_json::Value =
            serde_json::from_slice(&json).map_err(|_| bad("snapshot JSON"))?;
        let object = value.as_object_mut().ok_or_else(|| bad("snapshot JSON"))?;
        object.insert("id".into(), id.into());
        object.insert("short_id".into(), id[..8].into());
        crate::output::parse_snapshot_value(value)
    }
}
