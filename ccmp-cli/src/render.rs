//! Human output: colours (only on a terminal, never with NO_COLOR), ages and heads of text.

use anstyle::{AnsiColor, Style};
use ccmp_core::TaskStatus;
use chrono::{DateTime, Utc};

/// The colour of a state.
pub fn state_style(status: TaskStatus) -> Style {
    let color = match status {
        TaskStatus::Queued | TaskStatus::Parked => AnsiColor::Blue,
        TaskStatus::Running => AnsiColor::Cyan,
        TaskStatus::Succeeded => AnsiColor::Green,
        TaskStatus::Failed | TaskStatus::TimedOut | TaskStatus::Lost => AnsiColor::Red,
        TaskStatus::Cancelled | TaskStatus::Skipped => AnsiColor::Yellow,
        TaskStatus::NeedsApproval => AnsiColor::Magenta,
    };
    Style::new().fg_color(Some(color.into()))
}

/// A state name, coloured.
pub fn state(status: TaskStatus) -> String {
    let style = state_style(status);
    format!("{style}{status}{style:#}")
}

/// Bold text.
pub fn bold(text: &str) -> String {
    let style = Style::new().bold();
    format!("{style}{text}{style:#}")
}

/// Dim text.
pub fn dim(text: &str) -> String {
    let style = Style::new().dimmed();
    format!("{style}{text}{style:#}")
}

pub use ccmp_core::format_duration as duration;

/// How long ago, as `45s`, `3m`, `2h` or `3d`.
pub fn age(time: DateTime<Utc>) -> String {
    let secs = (Utc::now() - time).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// The first line of `text`, at most `max` characters.
pub fn head(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max || text.trim().lines().count() > 1 {
        out.push('…');
    }
    out
}

/// A working dir shown with `~` for the home directory.
pub fn short_path(path: &std::path::Path) -> String {
    if let Some(home) = std::env::var_os("HOME").map(std::path::PathBuf::from)
        && !home.as_os_str().is_empty()
        && let Ok(rest) = path.strip_prefix(&home)
    {
        return if rest.as_os_str().is_empty() {
            "~".to_owned()
        } else {
            format!("~/{}", rest.display())
        };
    }
    path.display().to_string()
}

/// A cost in dollars as people read it: `$0.05`, `$1.24`, `<$0.01`.
pub fn cost(usd: f64) -> String {
    if usd > 0.0 && usd < 0.005 {
        "<$0.01".to_owned()
    } else {
        format!("${usd:.2}")
    }
}

/// How a task ended, in one line: `3f9a1c2e succeeded in 20s · 4 turns · $0.05`, with the
/// reason after a colon when it did not succeed.
pub fn outcome_line(view: &ccmp_core::TaskView) -> String {
    let mut line = format!("{} {}", bold(&view.short_id), state(view.status));
    if let Some(secs) = view.elapsed_s {
        line.push_str(&format!(" in {}", duration(secs.round() as i64)));
    }
    if let Some(turns) = view.num_turns {
        line.push_str(&format!(
            " · {turns} turn{}",
            if turns == 1 { "" } else { "s" }
        ));
    }
    if let Some(usd) = view.cost_usd {
        line.push_str(&format!(" · {}", cost(usd)));
    }
    if !view.status.is_success()
        && let Some(error) = &view.error
    {
        line.push_str(&format!(": {}", head(error, 300)));
    }
    line
}

/// The width to lay tables out in: `COLUMNS` if set (as many tools honour it), else the
/// terminal's; none when stdout is not a terminal.
pub fn terminal_width() -> Option<u16> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or_else(|| terminal_size::terminal_size().map(|(width, _)| width.0))
}
