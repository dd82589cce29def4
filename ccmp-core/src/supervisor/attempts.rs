//! When a failed run is not the end of its task: a usage limit with a known reset parks the
//! task until then; an API that was overloaded or unavailable is tried again, a few times, with
//! exponential backoff and jitter. Everything else (a bad request, a bad key, max turns, a
//! budget) ends the task, as does a limit whose reset time the agent did not say.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::agent_loop::Continuation;
use crate::settings::Settings;
use crate::task::{ApiFailure, Attempt, Outcome, TaskRecord};

/// What a resumed session is told after a usage limit reset or a retry.
pub(crate) const RESUME_PROMPT: &str = "You were interrupted (a usage limit or an API failure); it has cleared. Continue the task where you left off.";

/// The longest wait before a retry, whatever the backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// A parked task resumes this long after the reset, so that the limit is surely gone.
pub(crate) const RESET_MARGIN: Duration = Duration::from_secs(2);

/// What to do after a run that failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Next {
    /// Park until the usage limit resets, then resume.
    Park {
        until: DateTime<Utc>,
        limit: Option<String>,
    },
    /// Run again after `delay`; this is retry `number` of `of`.
    Retry {
        delay: Duration,
        number: u32,
        of: u32,
    },
}

/// What to do after a run of `record` failed with `outcome`; `None` ends the task.
pub(crate) fn decide(record: &TaskRecord, outcome: &Outcome, settings: &Settings) -> Option<Next> {
    match outcome.api_failure.as_ref()? {
        ApiFailure::UsageLimit {
            resets_at: Some(resets_at),
            limit,
        } => {
            let park = record
                .spec
                .park_on_usage_limit
                .unwrap_or(settings.park_on_usage_limit);
            // A reset already past (a clock skew, a stale record) still waits a moment.
            let until = (*resets_at).max(Utc::now() + chrono::Duration::seconds(5));
            park.then(|| Next::Park {
                until,
                limit: limit.clone(),
            })
        }
        ApiFailure::UsageLimit {
            resets_at: None, ..
        } => None,
        ApiFailure::Transient => {
            let of = record.spec.retries.unwrap_or(settings.retries);
            let used = record
                .attempts
                .iter()
                .filter(|a| !a.parked && !a.asked)
                .count() as u32;
            (used < of).then(|| Next::Retry {
                delay: backoff(settings.retry_backoff_secs, used),
                number: used + 1,
                of,
            })
        }
    }
}

/// The wait before retry `n` (from 0): `base · 2ⁿ`, times a jitter between 0.75 and 1.25, so
/// that tasks failed by the same outage do not all come back at once; at most 15 minutes.
pub(crate) fn backoff(base_secs: f64, n: u32) -> Duration {
    let jitter = 0.75 + (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 2000.0;
    let secs = base_secs.max(0.0) * 2f64.powi(n.min(20) as i32) * jitter;
    Duration::from_secs_f64(secs).min(MAX_BACKOFF)
}

/// The run that ended `record`'s agent without ending the task, for its record.
pub(crate) fn attempt(record: &TaskRecord, outcome: &Outcome, parked: bool) -> Attempt {
    Attempt {
        started_at: record.started_at,
        ended_at: Utc::now(),
        why: outcome
            .error
            .clone()
            .unwrap_or_else(|| "the model API failed".to_owned()),
        session_id: record.session_id.clone(),
        cost_usd: outcome.cost_usd,
        num_turns: outcome.num_turns,
        parked,
        asked: false,
    }
}

/// How the next run goes on: it resumes the session the task has, with a word that it was
/// interrupted; a task that never got a session starts again from its prompt.
pub(crate) fn continuation(record: &TaskRecord) -> Continuation {
    match &record.session_id {
        Some(session) => Continuation {
            prompt: RESUME_PROMPT.to_owned(),
            session: Some(session.clone()),
        },
        None => Continuation {
            prompt: record.spec.prompt.clone(),
            session: record.spec.resume_session.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for n in 0..4 {
            let d = backoff(10.0, n).as_secs_f64();
            let middle = 10.0 * 2f64.powi(n as i32);
            assert!((0.75 * middle..=1.25 * middle).contains(&d), "{n}: {d}");
        }
        assert_eq!(backoff(10.0, 30), MAX_BACKOFF);
    }
}
