//! The restic version, read once at start-up.

use std::fmt;

/// A `major.minor.patch` restic version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// The oldest restic we support (Debian 12 ships it).
    pub const MINIMUM: Version = Version {
        major: 0,
        minor: 14,
        patch: 0,
    };

    /// Reads `restic 0.14.0 compiled with go1.19.8 on linux/amd64` and friends
    /// (development builds print `0.16.4-dev (compiled manually)`).
    pub fn parse_banner(output: &str) -> Option<Version> {
        let word = output
            .split_whitespace()
            .skip_while(|w| *w != "restic")
            .nth(1)?;
        let core = word.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = match parts.next() {
            Some(p) => p.ok()?,
            None => 0,
        };
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    /// Whether `forget` keeps the oldest snapshot while a `--keep-*` rule
    /// still has counts left (0.16+, restic pull request 4366).
    pub fn forget_keeps_oldest(self) -> bool {
        self >= Version {
            major: 0,
            minor: 16,
            patch: 0,
        }
    }

    /// Whether `snapshots --json` carries a per-snapshot `summary` (0.17+).
    pub fn has_snapshot_summary(self) -> bool {
        self >= Version {
            major: 0,
            minor: 17,
            patch: 0,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_and_dev_banners() {
        let v =
            Version::parse_banner("restic 0.14.0 compiled with go1.19.8 on linux/amd64\n").unwrap();
        assert_eq!(v.to_string(), "0.14.0");
        let v = Version::parse_banner(
            "restic 0.16.4-dev (compiled manually) compiled with go1.22 on linux/amd64",
        )
        .unwrap();
        assert_eq!(v.to_string(), "0.16.4");
        assert!(v >= Version::MINIMUM);
        assert!(Version::parse_banner("rustic 0.5.0").is_none());
        assert!(Version::parse_banner("").is_none());
    }

    #[test]
    fn orders_versions_numerically() {
        let old = Version::parse_banner("restic 0.9.6").unwrap();
        let new = Version::parse_banner("restic 0.17.3").unwrap();
        assert!(old < Version::MINIMUM);
        assert!(new > Version::MINIMUM);
        assert!(new.has_snapshot_summary());
        assert!(!Version::MINIMUM.has_snapshot_summary());
    }
}
