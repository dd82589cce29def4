//! Human durations (`30s`, `15m`, `12h`, `7d`) as frontends accept and show them.

use std::time::Duration;

use crate::error::Error;

/// A duration in seconds as `45s`, `3m 12s`, `2h 5m` or `3d 4h`.
pub fn format_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// Parses a human duration such as `7d`, `12h`, `90s` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        Error::InvalidArgument(format!(
            "`{}` is not a duration ({e}); write it like 30s, 15m, 12h or 7d",
            crate::error::escape(text)
        ))
    })
}
