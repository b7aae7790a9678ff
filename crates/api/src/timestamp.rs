//! Times in bodies: RFC 3339 text on the wire (as restic and the panel's
//! clients expect), a parsed time inside, so neither side handles a string
//! that only looks like a time.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, written as RFC 3339 (`2026-11-27T17:33:10.123456789Z`,
/// or with the offset it was read with: restic keeps the host's).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }

    /// Unix seconds; `None` out of the representable range.
    pub fn from_unix(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs).ok().map(Self)
    }

    pub fn unix(self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn parse(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339).ok().map(Self)
    }

    pub fn time(self) -> OffsetDateTime {
        self.0
    }
}

/// `?from=&to=` of a list: times at or after `from` and before `to`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl TimeRange {
    /// Reads both bounds (RFC 3339); the error is a message safe to show.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, &'static str> {
        let read = |raw: Option<&str>| match raw.filter(|r| !r.is_empty()) {
            None => Ok(None),
            Some(r) => Timestamp::parse(r)
                .map(Some)
                .ok_or("from and to must be RFC 3339 times, e.g. 2026-11-27T00:00:00Z"),
        };
        let range = Self {
            from: read(from)?,
            to: read(to)?,
        };
        if let (Some(f), Some(t)) = (range.from, range.to)
            && f > t
        {
            return Err("from must not be after to");
        }
        Ok(range)
    }

    pub fn is_all(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// The query pairs that say this range.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(f) = self.from {
            q.push(("from", f.to_string()));
        }
        if let Some(t) = self.to {
            q.push(("to", t.to_string()));
        }
        q
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Years outside 0..=9999 have no RFC 3339 form; such a time is never
        // made here (restic and clocks give none).
        match self.0.format(&Rfc3339) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{}", self.0.unix_timestamp()),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Timestamp::parse(&raw).ok_or_else(|| {
            serde::de::Error::custom("a time must be RFC 3339, such as 2026-11-27T17:33:10Z")
        })
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_write_the_same_text() {
        for text in [
            "2026-11-27T17:33:10Z",
            "2026-11-27T17:33:10.123456789Z",
            "2026-11-27T18:33:10.5+01:00",
        ] {
            let t: Timestamp = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
        }
        let t = Timestamp::from_unix(1_700_000_000).unwrap();
        assert_eq!(t.to_string(), "2023-11-14T22:13:20Z");
        assert_eq!(t.unix(), 1_700_000_000);
        for bad in [
            "\"yesterday\"",
            "\"2026-11-27\"",
            "\"2026-13-01T00:00:00Z\"",
            "17",
        ] {
            let e = serde_json::from_str::<Timestamp>(bad)
                .unwrap_err()
                .to_string();
            assert!(!e.contains("yesterday"), "the value is not echoed: {e}");
        }
        assert!(Timestamp::from_unix(i64::MAX).is_none());
    }

    #[test]
    fn ranges_read_both_bounds_in_order() {
        let r = TimeRange::parse(
            Some("2026-11-01T00:00:00Z"),
            Some("2026-11-02T00:00:00+01:00"),
        )
        .unwrap();
        assert_eq!(r.query()[0], ("from", "2026-11-01T00:00:00Z".to_owned()));
        assert!(TimeRange::parse(None, Some("")).unwrap().is_all());
        assert!(TimeRange::parse(Some("yesterday"), None).is_err());
        assert!(
            TimeRange::parse(Some("2026-11-02T00:00:00Z"), Some("2026-11-01T00:00:00Z")).is_err()
        );
    }
}
