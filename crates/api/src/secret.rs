//! A value that must never be printed: repository keys, node tokens, passwords.

use std::fmt;

use thiserror::Error;

/// A secret string. `Debug` and `Display` are redacted so a secret can not end
/// up in a log line or an error message by accident; read it with
/// [`Secret::expose`] at the one place that hands it on.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("the key contains control characters")]
    Control,
}

impl Secret {
    pub const MAX_LEN: usize = 1024;

    /// Accepts printable secrets of a sane length (they travel in HTTP headers
    /// and process environments, where control characters do not belong).
    pub fn new(value: impl Into<String>) -> Result<Self, SecretError> {
        let value = value.into();
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        if value.len() > Self::MAX_LEN {
            return Err(SecretError::TooLong { max: Self::MAX_LEN });
        }
        if value.chars().any(char::is_control) {
            return Err(SecretError::Control);
        }
        Ok(Self(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Secrets travel in request bodies (key rotation). Serialising exposes the
/// value: only ever serialise a secret into a request to the agent.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Secret::new(raw).map_err(serde::de::Error::custom)
    }
}

/// OpenAPI: a string sent to the server and never answered back.
impl utoipa::PartialSchema for Secret {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Password,
            )))
            .write_only(Some(true))
            .max_length(Some(Secret::MAX_LEN))
            .into()
    }
}

impl utoipa::ToSchema for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_display() {
        let s = Secret::new("hunter2-hunter2").unwrap();
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn secret_refuses_empty_long_and_control() {
        assert_eq!(Secret::new(""), Err(SecretError::Empty));
        assert!(matches!(
            Secret::new("a".repeat(2000)),
            Err(SecretError::TooLong { .. })
        ));
        assert_eq!(Secret::new("a\nb"), Err(SecretError::Control));
        assert_eq!(Secret::new("a\0b"), Err(SecretError::Control));
    }
}
