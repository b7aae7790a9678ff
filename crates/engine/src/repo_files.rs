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
use serde::{Deserialize, Serialize};
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
    /// Fresh random keys, as restic's `crypto.NewRandomKey` makes them (the
    /// Poly1305 part `r` stored clamped).
    fn random() -> Self {
        let mut keys = Self::from_derived(&random_bytes());
        for i in [3, 7, 11, 15] {
            keys.mac_r[i] &= 0x0f;
        }
        for i in [4, 8, 12] {
            keys.mac_r[i] &= 0xfc;
        }
        keys
    }

    /// Keys from 64 bytes (scrypt's output): encryption ‖ MAC k ‖ MAC r.
    fn from_derived(raw: &[u8; 64]) -> Self {
        let mut keys = Self {
            encrypt: [0; 32],
            mac_k: [0; 16],
            mac_r: [0; 16],
        };
        keys.encrypt.copy_from_slice(&raw[..32]);
        keys.mac_k.copy_from_slice(&raw[32..48]);
        keys.mac_r.copy_from_slice(&raw[48..]);
        keys
    }

    /// Poly1305-AES of `ciphertext`: the one-time key is r ‖ AES-128_k(nonce).
    fn mac(&self, nonce: &[u8], ciphertext: &[u8]) -> Result<[u8; 16], EngineError> {
        let mut s = aes::cipher::generic_array::GenericArray::clone_from_slice(nonce);
        aes::Aes128::new_from_slice(&self.mac_k)
            .map_err(|_| bad("MAC key"))?
            .encrypt_block(&mut s);
        let mut one_time = [0u8; 32];
        one_time[..16].copy_from_slice(&self.mac_r);
        one_time[16..].copy_from_slice(&s);
        Ok(poly1305::Poly1305::new(&one_time.into())
            .compute_unpadded(ciphertext)
            .into())
    }

    fn keystream(&self, nonce: &[u8], data: &mut [u8]) -> Result<(), EngineError> {
        ctr::Ctr128BE::<aes::Aes256>::new_from_slices(&self.encrypt, nonce)
            .map_err(|_| bad("encryption key"))?
            .apply_keystream(data);
        Ok(())
    }

    /// Encrypts `plain` as restic does: `nonce ‖ AES-256-CTR ‖ MAC`, with a
    /// fresh random nonce.
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, EngineError> {
        let nonce: [u8; 16] = random_bytes();
        let mut out = Vec::with_capacity(plain.len() + 32);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        self.keystream(&nonce, &mut out[16..])?;
        let mac = self.mac(&nonce, &out[16..])?;
        out.extend_from_slice(&mac);
        Ok(out)
    }

    /// Checks the MAC of `nonce ‖ ciphertext ‖ mac` and decrypts it.
    fn open(&self, data: &[u8]) -> Result<Vec<u8>, EngineError> {
        if data.len() < 32 {
            return Err(bad("encrypted file too short"));
        }
        let (nonce, rest) = data.split_at(16);
        let (ciphertext, mac) = rest.split_at(rest.len() - 16);
        let expected = self.mac(nonce, ciphertext)?;
        let equal = expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !equal {
            return Err(bad("MAC does not match"));
        }
        let mut plain = ciphertext.to_vec();
        self.keystream(nonce, &mut plain)?;
        Ok(plain)
    }
}

/// A key file as restic writes it (`repository.Key`, in Go's field order).
#[derive(Deserialize, Serialize)]
struct KeyFile {
    #[serde(default)]
    created: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    hostname: String,
    kdf: String,
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
    salt: String,
    data: String,
}

#[derive(Deserialize, Serialize)]
struct MacJson {
    k: String,
    r: String,
}

#[derive(Deserialize, Serialize)]
struct MasterJson {
    mac: MacJson,
    encrypt: String,
}

/// scrypt's work factor for keys of 256 random bits (see
/// [`is_machine_key`]): N = 2^12, r = 8, p = 1, 4 MiB and a few
/// milliseconds, where restic tunes its own to about half a second.
const LIGHT_LOG_N: u8 = 12;
const LIGHT_R: u32 = 8;
const LIGHT_P: u32 = 1;

/// Whether `password` is a key as the panel makes them (and the original
/// extension did): 64 hexadecimal digits, 256 random bits. scrypt's work
/// factor exists to slow down guessing a password a person chose; nobody
/// guesses 256 random bits, however cheap each guess, so for such keys the
/// key file is written with [`LIGHT_LOG_N`] and every restic run saves
/// restic's half second of key derivation. Any other password keeps
/// restic's own tuning.
pub fn is_machine_key(password: &Secret) -> bool {
    let raw = password.expose().as_bytes();
    raw.len() == 64 && raw.iter().all(u8::is_ascii_hexdigit)
}

fn b64e(raw: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// This machine's name for a key file's `hostname` (as `restic key list`
/// shows it); empty when it can not be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().chars().take(255).collect())
        .unwrap_or_default()
}

/// Writes `data` as a new read-only file `path` (which must not exist),
/// synced to disk.
pub(crate) fn write_new_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// `N` bytes from the system's random number generator.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).expect("the system random number generator failed");
    bytes
}

/// Removes what an interrupted run left in `dir`: each entry whose name
/// `left` accepts (a file, or a folder with what it holds; links are
/// removed, never followed).
pub(crate) fn remove_leftovers(dir: &Path, left: impl Fn(&str) -> bool) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if !left(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let _ = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(entry.path()),
            _ => std::fs::remove_file(entry.path()),
        };
    }
    Ok(())
}

/// Makes a directory's entries durable (after creating or renaming in it).
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
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
        // A key file of another repository (copied in by hand) opens with
        // the password but not this repository's config.
        let config = read_small(&repo.join("config"))?;
        for path in names.iter().take(16) {
            if let Ok(key) = Self::open_file(path, password)
                && key.0.open(&config).is_ok()
            {
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
        let user = Keys::from_derived(&derived);
        let plain = user.open(&b64(&file.data)?)?;
        let master: MasterJson = serde_json::from_slice(&plain).map_err(|_| bad("master key"))?;
        Ok(Self(Keys {
            encrypt: fixed(&b64(&master.encrypt)?)?,
            mac_k: fixed(&b64(&master.mac.k)?)?,
            mac_r: fixed(&b64(&master.mac.r)?)?,
        }))
    }

    /// A new random master key (for a new repository).
    pub(crate) fn random() -> Self {
        Self(Keys::random())
    }

    /// Encrypts `plain` with the master key (restic's format).
    pub(crate) fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, EngineError> {
        self.0.seal(plain)
    }

    /// Adds a key file to the local repository at `repo` that opens this
    /// master key with `password` (one of [`is_machine_key`]), with the
    /// light work factor; returns its ID. The file is written and synced
    /// under a temporary name beside `keys/`, then renamed into it, so
    /// restic never sees half a key.
    pub fn add_light_key(&self, repo: &Path, password: &Secret) -> Result<String, EngineError> {
        if !is_machine_key(password) {
            return Err(bad("a light key file is only written for a 256-bit key"));
        }
        let salt: [u8; 64] = random_bytes();
        let params = scrypt::Params::new(LIGHT_LOG_N, LIGHT_R, LIGHT_P, 64)
            .map_err(|_| bad("key file parameters"))?;
        let mut derived = [0u8; 64];
        scrypt::scrypt(password.expose().as_bytes(), &salt, &params, &mut derived)
            .map_err(|_| bad("scrypt"))?;
        let master = serde_json::to_vec(&MasterJson {
            mac: MacJson {
                k: b64e(&self.0.mac_k),
                r: b64e(&self.0.mac_r),
            },
            encrypt: b64e(&self.0.encrypt),
        })
        .map_err(|_| bad("master key"))?;
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|_| bad("time"))?;
        let file = serde_json::to_vec(&KeyFile {
            created,
            username: "restic-backups".into(),
            hostname: hostname(),
            kdf: "scrypt".into(),
            n: 1 << LIGHT_LOG_N,
            r: LIGHT_R,
            p: LIGHT_P,
            salt: b64e(&salt),
            data: b64e(&Keys::from_derived(&derived).seal(&master)?),
        })
        .map_err(|_| bad("key file"))?;
        let id = api::hex::encode(&Sha256::digest(&file));
        // A key file a crash left under its temporary name: restic never
        // lists it, so no key rotation could remove it.
        remove_leftovers(repo, |name| {
            name.starts_with(".key-") && name.ends_with(".tmp")
        })?;
        let temp = repo.join(format!(
            ".key-{}.tmp",
            api::hex::encode(&random_bytes::<8>())
        ));
        let keys = repo.join("keys");
        let written = write_new_file(&temp, &file)
            .and_then(|()| std::fs::rename(&temp, keys.join(&id)))
            .and_then(|()| sync_dir(&keys));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e.into());
        }
        Ok(id)
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
