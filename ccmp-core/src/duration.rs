//! Human durations (`30s`, `15m`, `12h`, `7d`) as frontends accept them.

use std::time::Duration;

use crate::error::Error;

/// Parses a human duration such as `7d`, `12h`, `90s` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        Error::InvalidArgument(format!(
            "`{}` is not a duration ({e}); write it like 30s, 15m, 12h or 7d",
            crate::error::escape(text)
        ))
    })
}
