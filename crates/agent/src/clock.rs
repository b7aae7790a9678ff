//! Time formatting in one place.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a valid OffsetDateTime as RFC 3339 fails only for years
    // outside 0..=9999, which restic does not produce.
    t.format(&Rfc3339).unwrap_or_default()
}
