-- Schedules at a time of day: "daily at 03:00" or "weekly on Mon and Thu
-- at 21:30", in a time zone. Existing schedules keep running at their
-- interval.
ALTER TABLE restic_policies ADD COLUMN repeat_kind TEXT NOT NULL DEFAULT 'interval';
-- Minutes after local midnight (0 to 1439).
ALTER TABLE restic_policies ADD COLUMN at_minute BIGINT;
-- Monday bit 0 (1) to Sunday bit 6 (64); 127 for daily.
ALTER TABLE restic_policies ADD COLUMN weekdays BIGINT;
-- An IANA time zone name, e.g. Europe/Berlin.
ALTER TABLE restic_policies ADD COLUMN time_zone TEXT;
