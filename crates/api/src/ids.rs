//! Validated identifiers. Everything that arrives from a request is parsed into
//! one of these at the edge, so the inside of the system never handles a raw
//! string that could be a flag (`--password-command=…`), a path (`../`) or noise.

use std::fmt;

use thiserror::Error;

/// Why an identifier was refused. The message is safe to show to a client: it
/// never echoes the rejected value back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("server id must be a UUID such as 1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")]
    ServerUuid,
    #[error("snapshot id must be 8 to 64 hexadecimal characters")]
    Snapshot,
    #[error("job id must be 32 hexadecimal characters")]
    Job,
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A server's UUID in canonical lower-case `8-4-4-4-12` form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerUuid(String);

impl ServerUuid {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let lower = raw.to_ascii_lowercase();
        let groups: Vec<&str> = lower.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        let ok = raw.len() == 36
            && groups.len() == 5
            && groups
                .iter()
                .zip(lens)
                .all(|(g, n)| g.len() == n && is_lower_hex(g));
        if ok {
            Ok(Self(lower))
        } else {
            Err(IdError::ServerUuid)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServerUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUuid({})", self.0)
    }
}

/// A full restic snapshot ID: 64 lower-case hex characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(String);

impl SnapshotId {
    pub const LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let lower = raw.to_ascii_lowercase();
        if lower.len() == Self::LEN && is_lower_hex(&lower) {
            Ok(Self(lower))
        } else {
            Err(IdError::Snapshot)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 8-character form restic prints.
    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotId({})", self.short())
    }
}

/// A snapshot reference from a request: a full ID or a prefix of at least 8 hex
/// characters. It is resolved against the agent's index, never handed to restic.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct SnapshotRef(String);

impl SnapshotRef {
    pub const MIN_LEN: usize = 8;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let lower = raw.to_ascii_lowercase();
        if (Self::MIN_LEN..=SnapshotId::LEN).contains(&lower.len()) && is_lower_hex(&lower) {
            Ok(Self(lower))
        } else {
            Err(IdError::Snapshot)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, id: &SnapshotId) -> bool {
        id.as_str().starts_with(&self.0)
    }
}

/// An agent job ID: 128 random bits in hex.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct JobId(String);

impl JobId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.len() == 32 && is_lower_hex(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::Job)
        }
    }

    /// Builds a job ID from 16 random bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(crate::hex::encode(&bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// IDs travel as their text and are parsed (validated) on the way in, so a
/// body holding one can not carry anything else.
macro_rules! serde_as_text {
    ($($name:ident),*) => {$(
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_text!(ServerUuid, SnapshotId, SnapshotRef, JobId);

/// OpenAPI: each ID is a string of its own pattern.
macro_rules! schema_as_text {
    ($($name:ident => $pattern:literal, $doc:literal;)*) => {$(
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some($pattern))
                    .description(Some($doc))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    )*};
}

schema_as_text! {
    ServerUuid => "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        "A server's UUID (Pterodactyl's), answered in lower case.";
    SnapshotId => "^[0-9a-f]{64}$", "A full restic snapshot ID.";
    SnapshotRef => "^[0-9a-fA-F]{8,64}$", "A snapshot ID or a prefix of at least 8 characters.";
    JobId => "^[0-9a-f]{32}$", "A job's ID.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_uuid_accepts_canonical_and_upper_case() {
        let u = ServerUuid::parse("1F0E2D3C-4B5A-6978-8796-A5B4C3D2E1F0").unwrap();
        assert_eq!(u.as_str(), "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
    }

    #[test]
    fn server_uuid_refuses_paths_flags_and_near_misses() {
        for bad in [
            "",
            "../../etc",
            "--password-command=sh",
            "1f0e2d3c4b5a697887 96a5b4c3d2e1f0",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0a",
            "1f0e2d3c-4b5a-6978-8796a-5b4c3d2e1f0",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
            "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f\u{e9}",
        ] {
            assert!(ServerUuid::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn snapshot_ref_needs_eight_to_sixty_four_hex() {
        assert!(SnapshotRef::parse("deadbeef").is_ok());
        assert!(SnapshotRef::parse(&"a".repeat(64)).is_ok());
        for bad in [
            "deadbee",
            "zz",
            "--password-command=sh",
            "../../etc",
            "deadbeef ",
            "d\u{e9}adbeef",
        ] {
            assert!(SnapshotRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(SnapshotRef::parse(&"a".repeat(200)).is_err());
    }

    #[test]
    fn snapshot_ref_matches_by_prefix() {
        let id = SnapshotId::parse(&format!("deadbeef{}", "0".repeat(56))).unwrap();
        assert!(SnapshotRef::parse("DEADBEEF").unwrap().matches(&id));
        assert!(!SnapshotRef::parse("deadbeee").unwrap().matches(&id));
    }

    #[test]
    fn job_id_round_trips() {
        let id = JobId::from_bytes([0xab; 16]);
        assert_eq!(JobId::parse(id.as_str()).unwrap(), id);
        assert!(JobId::parse("ABAB").is_err());
    }

    #[test]
    fn ids_in_bodies_are_their_text_and_are_checked_on_the_way_in() {
        let job = JobId::from_bytes([7; 16]);
        let json = serde_json::to_string(&job).unwrap();
        assert_eq!(json, format!("\"{}\"", job.as_str()));
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), job);
        let uuid: ServerUuid =
            serde_json::from_str("\"1F0E2D3C-4B5A-6978-8796-A5B4C3D2E1F0\"").unwrap();
        assert_eq!(uuid.as_str(), "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        let accepted: Result<crate::agent::JobAccepted, _> =
            serde_json::from_str(r#"{"job_id":"../../etc/passwd"}"#);
        let e = accepted.unwrap_err().to_string();
        assert!(e.contains("job id must be"), "{e}");
        assert!(!e.contains("passwd"), "the message echoes the value: {e}");
        assert!(serde_json::from_str::<SnapshotId>("\"abc\"").is_err());
        assert!(serde_json::from_str::<SnapshotRef>("12").is_err());
    }
}
