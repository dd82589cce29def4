//! The pages: tasks, one task, the queue, the inbox. Each reads the store through the core and
//! renders a template; the live parts then come over server-sent events (see `live`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use ccmp_core::{ListQuery, OutputSource, TaskStatus};
use serde::Deserialize;

use crate::server::AppState;
use crate::views::{Asking, Row, cost, head};

/// The most tasks the table shows (newest first); the total is always shown.
pub(crate) const TABLE_ROWS: usize = 200;
/// How much of a transcript a task page shows at first (the end of it).
const TRANSCRIPT_TAIL: usize = 64 * 1024;

/// Renders a template, or says why it could not.
pub(crate) fn page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not render: {e}"),
        )
            .into_response(),
    }
}

/// An error page for something the person can fix (an unknown id, a bad filter).
pub(crate) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    page(&Problem {
        status: status.as_u16(),
        message: message.into(),
    })
    .into_response()
    .map_status(status)
}

trait MapStatus {
    fn map_status(self, status: StatusCode) -> Response;
}

impl MapStatus for Response {
    fn map_status(mut self, status: StatusCode) -> Response {
        *self.status_mut() = status;
        self
    }
}

#[derive(Template)]
#[template(path = "problem.html")]
struct Problem {
    status: u16,
    message: String,
}

/// The filters of the tasks table.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub group: String,
}

impl Filters {
    /// The core query for these filters, or what is wrong with them.
    pub fn query(&self) -> Result<ListQuery, String> {
        let states = match self.state.as_str() {
            "" | "all" => None,
            "live" => ListQuery::active().states,
            name => Some(vec![name.parse::<TaskStatus>().map_err(|e| e.to_string())?]),
        };
        let group = match self.group.as_str() {
            "" => None,
            name => Some(
                name.parse()
                    .map_err(|e: ccmp_core::SpecError| e.to_string())?,
            ),
        };
        Ok(ListQuery {
            states,
            limit: TABLE_ROWS,
            group,
        })
    }

    /// The query string of the live stream for these filters.
    pub fn live_url(&self) -> String {
        format!(
            "/live/tasks?state={}&group={}",
            urlencode(&self.state),
            urlencode(&self.group)
        )
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "tasks.html")]
pub(crate) struct TasksPage {
    pub csrf: String,
    pub filters: Filters,
    pub live_url: String,
    pub states: Vec<&'static str>,
    pub groups: Vec<String>,
    pub rows: Vec<Row>,
    pub total: usize,
}

/// The rows of the tasks table alone: what the live stream sends.
#[derive(Template)]
#[template(path = "task_rows.html")]
pub(crate) struct TaskRows {
    pub rows: Vec<Row>,
    pub total: usize,
}

/// The rows and total for `filters`.
pub(crate) fn rows(state: &AppState, filters: &Filters) -> Result<(Vec<Row>, usize), String> {
    let query = filters.query()?;
    let list = state.ccmp.list(&query).map_err(|e| e.to_string())?;
    Ok((
        list.tasks.iter().map(|t| Row::of(&state.ccmp, t)).collect(),
        list.total,
    ))
}

pub(crate) async fn tasks(
    State(state): State<AppState>,
    Query(filters): Query<Filters>,
) -> Response {
    let (rows, total) = match rows(&state, &filters) {
        Ok(found) => found,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    let groups = state
        .ccmp
        .groups()
        .map(|g| g.into_iter().map(|g| g.name.to_string()).collect())
        .unwrap_or_default();
    page(&TasksPage {
        csrf: state.secrets.csrf.clone(),
        live_url: filters.live_url(),
        filters,
        states: TaskStatus::ALL.iter().map(|s| s.as_str()).collect(),
        groups,
        rows,
        total,
    })
}

#[derive(Template)]
#[template(path = "task.html")]
pub(crate) struct TaskPage {
    pub csrf: String,
    pub id: String,
    pub short_id: String,
    pub prompt: String,
    pub header_html: String,
    pub attempts: Vec<(String, String)>,
    pub result_html: String,
    pub transcript: String,
    pub transcript_offset: u64,
    /// Where the page before this one of the transcript starts, if there is one.
    pub earlier: Option<u64>,
    /// Whether this is an earlier page of the transcript (then it does not follow).
    pub paged: bool,
    pub live: bool,
    pub asking: Option<Asking>,
    pub worktree: Option<String>,
    /// The worktree's changes against its base commit, file by file (a worktree task whose
    /// worktree is still there).
    pub diffs: Vec<ccmp_core::worktree::FileDiff>,
    pub diff_cut: bool,
    pub diff_error: Option<String>,
}

/// The part of a task page that changes while it runs.
#[derive(Template)]
#[template(path = "task_header.html")]
pub(crate) struct TaskHeader {
    pub status: String,
    pub agent: String,
    pub reason: String,
    pub group: String,
    pub dir: String,
    pub model: String,
    pub turns: String,
    pub cost: String,
    pub session: String,
    /// The Slurm job, for a task of a `slurm` group: `job 12 on node3, RUNNING`.
    pub slurm: String,
}

impl TaskHeader {
    pub fn of(state: &AppState, record: &ccmp_core::TaskRecord) -> Self {
        let view = state.ccmp.view(record);
        Self {
            status: view.status.to_string(),
            agent: view.agent.to_string(),
            reason: view
                .error
                .clone()
                .or_else(|| view.progress.clone())
                .unwrap_or_default(),
            group: view.group.clone(),
            dir: view.working_dir.display().to_string(),
            model: view.model.clone().unwrap_or_default(),
            turns: view.num_turns.map(|n| n.to_string()).unwrap_or_default(),
            cost: cost(view.cost_usd),
            session: view.session_id.clone().unwrap_or_default(),
            slurm: view
                .slurm
                .as_ref()
                .map(ccmp_core::SlurmJob::describe)
                .unwrap_or_default(),
        }
    }
}

/// Which page of the transcript: the end (default), or the one that ends at `before`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Page {
    before: Option<u64>,
}

pub(crate) async fn task(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(page_of): Query<Page>,
) -> Response {
    let record = match state
        .ccmp
        .resolve(&id)
        .and_then(|id| state.ccmp.status(&id))
    {
        Ok(record) => record,
        Err(e) => return problem(StatusCode::NOT_FOUND, e.to_string()),
    };
    let view = state.ccmp.view(&record);
    let range = match page_of.before {
        Some(before) => ccmp_core::LogRange::Bytes {
            offset: before.saturating_sub(TRANSCRIPT_TAIL as u64),
            limit: TRANSCRIPT_TAIL.min(before as usize),
        },
        None => ccmp_core::LogRange::Tail {
            lines: usize::MAX,
            limit: TRANSCRIPT_TAIL,
        },
    };
    let (transcript, transcript_offset, earlier) =
        match state
            .ccmp
            .output(&record.id, OutputSource::Transcript, range)
        {
            Ok(chunk) => (
                chunk.text,
                chunk.next_offset,
                (chunk.offset > 0).then_some(chunk.offset),
            ),
            Err(_) => (String::new(), 0, None),
        };
    let paged = page_of.before.is_some();
    let (diffs, diff_cut, diff_error) = match record.worktree.clone() {
        Some(worktree) if worktree.path.is_dir() => {
            match tokio::task::spawn_blocking(move || ccmp_core::worktree::file_diffs(&worktree))
                .await
            {
                Ok(Ok((diffs, cut))) => (diffs, cut, None),
                Ok(Err(e)) => (Vec::new(), false, Some(e.to_string())),
                Err(e) => (Vec::new(), false, Some(e.to_string())),
            }
        }
        _ => (Vec::new(), false, None),
    };
    page(&TaskPage {
        diffs,
        diff_cut,
        diff_error,
        csrf: state.secrets.csrf.clone(),
        id: view.id.clone(),
        short_id: view.short_id.clone(),
        prompt: view.prompt.clone(),
        header_html: TaskHeader::of(&state, &record).render().unwrap_or_default(),
        attempts: record
            .attempts
            .iter()
            .map(|a| {
                (
                    a.ended_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    head(&a.why, 200),
                )
            })
            .collect(),
        result_html: view
            .result
            .as_deref()
            .map(crate::markdown::render)
            .unwrap_or_default(),
        transcript,
        transcript_offset,
        earlier,
        paged,
        live: !record.status.is_terminal() && !paged,
        asking: Asking::of(&record),
        worktree: view.worktree.as_ref().map(|w| {
            format!(
                "{} on {} from {}",
                w.path.display(),
                w.branch,
                w.base_commit
            )
        }),
    })
}

#[derive(Template)]
#[template(path = "queue.html")]
pub(crate) struct QueuePage {
    pub csrf: String,
    pub machine_limit: usize,
    pub machine_paused: bool,
    pub groups: Vec<ccmp_core::GroupStatus>,
    pub budgets: Vec<(String, String, String)>,
}

pub(crate) async fn queue(State(state): State<AppState>) -> Response {
    let settings = match state.ccmp.max_parallel() {
        Ok(settings) => settings,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let groups = state.ccmp.groups().unwrap_or_default();
    let budgets = state
        .ccmp
        .spend()
        .map(|report| {
            report
                .budgets
                .iter()
                .map(|b| {
                    (
                        b.group
                            .as_ref()
                            .map_or_else(|| "machine-wide".to_owned(), |g| g.to_string()),
                        b.budget.describe(),
                        format!("${:.2}", b.counted_usd),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    page(&QueuePage {
        csrf: state.secrets.csrf.clone(),
        machine_limit: settings.max_parallel,
        machine_paused: settings.paused,
        groups,
        budgets,
    })
}

#[derive(Template)]
#[template(path = "inbox.html")]
pub(crate) struct InboxPage {
    pub csrf: String,
    pub asking: Vec<Asking>,
}

pub(crate) async fn inbox(State(state): State<AppState>) -> Response {
    match state.ccmp.inbox() {
        Ok(waiting) => page(&InboxPage {
            csrf: state.secrets.csrf.clone(),
            asking: waiting.iter().filter_map(Asking::of).collect(),
        }),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
