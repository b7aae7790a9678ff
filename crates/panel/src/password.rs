//! Password hashing with argon2id (the `argon2` crate's defaults: 19 MiB,
//! 2 iterations, per-hash random salt), in PHC string form.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash};

/// Shortest password accepted for new accounts.
pub const MIN_PASSWORD_LEN: usize = 10;

pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).expect("the system random number generator failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters can not fail")
        .to_string()
}

/// Whether `password` matches the stored hash (constant-time inside argon2).
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Password checks off the async runtime, on a fixed set of threads with a
/// bounded queue. argon2id allocates 19 MiB per check; on the blocking pool
/// every new thread's allocator arena would keep its own 19 MiB, so a flood
/// of logins would grow the process by that much per thread. Here memory is
/// bounded by `threads` checks, and a full queue answers at once.
pub struct VerifyPool {
    queue: std::sync::mpsc::SyncSender<Check>,
}

type Check = (String, String, tokio::sync::oneshot::Sender<bool>);

/// The queue was full: too many logins at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl VerifyPool {
    pub fn new(threads: usize, queue: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Check>(queue);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("password-check-{n}"))
                .spawn(move || {
                    // One work area per thread, reused by every check.
                    let mut memory = Vec::new();
                    loop {
                        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((password, stored, answer)) = next else {
                            return;
                        };
                        let _ = answer.send(verify_in(&password, &stored, &mut memory));
                    }
                })
                .expect("a password-check thread starts");
        }
        Self { queue: tx }
    }

    /// Whether `password` matches `stored`; `Err(Busy)` when the queue is full.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<bool, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue
            .try_send((password.to_owned(), stored.to_owned(), tx))
            .map_err(|_| Busy)?;
        rx.await.map_err(|_| Busy)
    }
}

/// Stored hashes asking for more memory than this are not checked (a
/// tampered row must not make the panel allocate gigabytes).
const MAX_BLOCKS: usize = 256 * 1024;

/// [`verify`] with a caller-kept work area (argon2 blocks of 1 KiB), so
/// repeated checks reuse one allocation instead of asking the allocator
/// for 19 MiB each time.
pub fn verify_in(password: &str, stored: &str, memory: &mut Vec<argon2::Block>) -> bool {
    use argon2::{Algorithm, Params, Version};
    use subtle::ConstantTimeEq;
    let Ok(h) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(alg), Ok(params)) = (Algorithm::try_from(h.algorithm), Params::try_from(&h)) else {
        return false;
    };
    let version = match h.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(alg, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_ok()
        && bool::from(out.ct_eq(expected.as_bytes()))
}

/// A hash to verify against when the account does not exist, so a login for
/// an unknown email takes as long as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password that matches nothing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let h = hash("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert_ne!(h, hash("correct horse battery"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterx", &h));
        assert!(!verify("anything", "not a hash"));
        assert!(!verify("decoy", decoy_hash()));
        let mut memory = Vec::new();
        assert!(verify_in("correct horse battery", &h, &mut memory));
        assert!(!verify_in("correct horse batterx", &h, &mut memory));
        assert!(!verify_in("anything", "not a hash", &mut memory));
        assert_eq!(memory.len(), 19 * 1024, "the default 19 MiB work area");
        // A stored hash asking for 4 GiB is refused, not allocated.
        let greedy = h.replace("m=19456", "m=4194304");
        assert!(!verify_in("correct horse battery", &greedy, &mut memory));
    }
}
