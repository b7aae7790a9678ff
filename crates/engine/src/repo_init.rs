//! Creating a local repository without starting restic.
//!
//! `restic init` spends about a second and a half on this machine: it
//! tunes scrypt to half a second, then derives the key with it. For a key
//! of 256 random bits that work protects nothing (see
//! [`crate::repo_files::is_machine_key`]), so a local repository for such a
//! key is written here in restic's format: the directories `restic init`
//! makes, a key file with the light work factor, and the encrypted
//! `config` (format version 2, a random ID and a random irreducible chunker
//! polynomial of degree 53, which restic checks again whenever it opens the
//! repository). The repository is built in a temporary folder beside its
//! place and renamed into it when complete, so a crash leaves no half
//! repository where restic would look.

use std::path::Path;

use api::Secret;

use crate::EngineError;
use crate::repo_files::{MasterKey, random_bytes, remove_leftovers, sync_dir, write_new_file};

/// Polynomials over GF(2) as bit sets (bit i is the coefficient of x^i).
mod pol {
    pub fn degree(x: u128) -> i32 {
        127 - x.leading_zeros() as i32
    }

    /// `x mod m`.
    pub fn rem(mut x: u128, m: u128) -> u128 {
        let dm = degree(m);
        while degree(x) >= dm {
            x ^= m << (degree(x) - dm);
        }
        x
    }

    /// `a · b` (carry-less product).
    pub fn product(a: u64, b: u64) -> u128 {
        (0..64)
            .filter(|i| b >> i & 1 == 1)
            .fold(0, |p, i| p ^ (u128::from(a) << i))
    }

    /// `a · b mod m`.
    pub fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
        rem(product(a, b), u128::from(m)) as u64
    }

    pub fn gcd(mut a: u64, mut b: u64) -> u64 {
        while b != 0 {
            let r = rem(u128::from(a), u128::from(b)) as u64;
            a = b;
            b = r;
        }
        a
    }

    /// Ben-Or's test: `f` is irreducible iff gcd(f, x^(2^i) − x mod f) = 1
    /// for every i up to half its degree.
    pub fn irreducible(f: u64) -> bool {
        let half = degree(u128::from(f)) / 2;
        let mut power = 2u64; // x, squared once per step: x^(2^i)
        for _ in 1..=half {
            power = mul_mod(power, power, f);
            if gcd(f, power ^ 2) != 1 {
                return false;
            }
        }
        true
    }
}

/// A random irreducible polynomial of degree 53, as restic's chunker draws
/// them (degree 53, constant term 1); about one in 53 such is irreducible.
fn random_polynomial() -> u64 {
    loop {
        let f = (u64::from_le_bytes(random_bytes()) & ((1 << 54) - 1)) | (1 << 53) | 1;
        if pol::irreducible(f) {
            return f;
        }
    }
}

/// Creates a restic repository (format version 2) at `repo`, which must not
/// exist (see [`crate::Repo::init`] for a folder that does), with one key
/// file for `password` (a 256-bit key, see
/// [`crate::repo_files::is_machine_key`]). Returns its master key.
pub fn init_local(repo: &Path, password: &Secret) -> Result<MasterKey, EngineError> {
    let parent = repo
        .parent()
        .ok_or_else(|| EngineError::Parse("a repository needs a parent folder".into()))?;
    let name = repo
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| EngineError::Parse("repository folder name".into()))?;
    let leftover = format!(".{name}.init-");
    // An attempt that died half-way (power loss) left its temporary folder.
    remove_leftovers(parent, |n| n.starts_with(&leftover))?;
    let temp = parent.join(format!(
        "{leftover}{}",
        api::hex::encode(&random_bytes::<8>())
    ));
    let built = build(&temp, password).and_then(|master| {
        // Fails when `repo` is there and not empty (restic's or anybody's
        // files are never replaced).
        std::fs::rename(&temp, repo).map_err(|e| {
            if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) {
                let what = if crate::repo_exists(repo) {
                    "a repository exists there already"
                } else {
                    "a folder is there that holds no repository; move it away to create one"
                };
                EngineError::Failed {
                    code: None,
                    message: format!("{}: {what}", repo.display()),
                }
            } else {
                e.into()
            }
        })?;
        sync_dir(parent)?;
        Ok(master)
    });
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    built.map_err(|e| match e {
        EngineError::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => {
            EngineError::Store(crate::StoreFailure::Full)
        }
        other => other,
    })
}

fn build(dir: &Path, password: &Secret) -> Result<MasterKey, EngineError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut mkdir = std::fs::DirBuilder::new();
    mkdir.mode(0o700);
    mkdir.create(dir)?;
    for sub in ["data", "index", "keys", "locks", "snapshots"] {
        mkdir.create(dir.join(sub))?;
    }
    for byte in 0..=255u8 {
        mkdir.create(dir.join("data").join(format!("{byte:02x}")))?;
    }
    sync_dir(&dir.join("data"))?;
    let master = MasterKey::random();
    master.add_light_key(dir, password)?;
    let config = serde_json::json!({
        "version": 2,
        "id": api::hex::encode(&random_bytes::<32>()),
        "chunker_polynomial": format!("{:x}", random_polynomial()),
    });
    let config = serde_json::to_vec(&config).map_err(|e| EngineError::Parse(e.to_string()))?;
    write_new_file(&dir.join("config"), &master.seal(&config)?)?;
    sync_dir(dir)?;
    Ok(master)
}

#[cfg(test)]
mod tests {
    use super::pol;

    /// Irreducible by trial division: no polynomial of degree 1..=deg/2
    /// divides `f`.
    fn irreducible_by_division(f: u64) -> bool {
        let d = pol::degree(u128::from(f));
        (2u64..1 << (d / 2 + 1))
            .filter(|g| pol::degree(u128::from(*g)) >= 1)
            .all(|g| pol::rem(u128::from(f), u128::from(g)) != 0)
    }

    #[test]
    fn ben_or_agrees_with_trial_division_for_every_polynomial_up_to_degree_13() {
        let mut irreducible = 0;
        for f in 2u64..1 << 14 {
            let expected = irreducible_by_division(f);
            assert_eq!(pol::irreducible(f), expected, "{f:#b}");
            irreducible += u32::from(expected);
        }
        // Gauss's count of irreducible polynomials of degree 1..=13 over
        // GF(2): 2+1+2+3+6+9+18+30+56+99+186+335+630.
        assert_eq!(irreducible, 1377);
    }

    #[test]
    fn known_degree_53_polynomials() {
        // restic's chunker tests use this one.
        assert!(pol::irreducible(0x3DA3358B4DC173));
        // x^53 + 1 has the root 1.
        assert!(!pol::irreducible((1 << 53) | 1));
        // A product of degree 53: (x^2 + x + 1)(x^51 + x^3 + 1).
        let product = pol::product(0b111, (1 << 51) | (1 << 3) | 1);
        assert_eq!(pol::degree(product), 53);
        assert!(!pol::irreducible(product as u64));
    }

    #[test]
    fn random_polynomials_have_degree_53_and_pass() {
        for _ in 0..20 {
            let f = super::random_polynomial();
            assert_eq!(pol::degree(u128::from(f)), 53);
            assert_eq!(f & 1, 1);
            assert!(pol::irreducible(f));
        }
    }
}
