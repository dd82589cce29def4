//! The live parts of the pages, as server-sent events: the tasks table re-rendered when tasks
//! change, and a task's header and transcript as they change. Driven by the store's change
//! watch, so an idle dashboard sends nothing but a keep-alive comment now and then.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ccmp_core::{LogRange, OutputSource};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use crate::pages::{Filters, TaskHeader, TaskRows, problem, rows};
use crate::server::AppState;

/// Changes closer together than this are sent as one.
const SETTLE: Duration = Duration::from_millis(150);
/// How long a watch waits before looking anyway (a missed inotify event heals itself).
const LOOK_ANYWAY: Duration = Duration::from_secs(30);

fn stream_of(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
        .into_response()
}

/// The tasks table: its rows, each time tasks change.
pub(crate) async fn tasks(
    State(state): State<AppState>,
    Query(filters): Query<Filters>,
) -> Response {
    if let Err(why) = filters.query() {
        return problem(axum::http::StatusCode::BAD_REQUEST, why);
    }
    let events = stream::unfold(
        (state, filters, None::<String>),
        |(state, filters, last)| async move {
            loop {
                // Watch first, then read: a change in between wakes the next wait.
                let mut watch = state.ccmp.watch_live();
                let html = rows(&state, &filters)
                    .ok()
                    .and_then(|(rows, total)| TaskRows { rows, total }.render().ok());
                if let Some(html) = html
                    && last.as_ref() != Some(&html)
                {
                    let event = Event::default().event("rows").data(html.clone());
                    return Some((Ok(event), (state, filters, Some(html))));
                }
                watch.changed(LOOK_ANYWAY).await;
                tokio::time::sleep(SETTLE).await;
            }
        },
    );
    stream_of(events)
}

enum Next {
    Chunk(Option<Result<ccmp_core::LogChunk, ccmp_core::Error>>),
    Changed(bool),
}

/// Where the page's transcript ended.
#[derive(Debug, Deserialize)]
pub(crate) struct From {
    #[serde(default)]
    offset: u64,
}

/// A task: its header when it changes, its transcript as it grows, and the result at the end.
pub(crate) async fn task(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(from): Query<From>,
) -> Response {
    let id = match state.ccmp.resolve(&id) {
        Ok(id) => id,
        Err(e) => return problem(axum::http::StatusCode::NOT_FOUND, e.to_string()),
    };
    let follow = state.ccmp.follow(
        &id,
        OutputSource::Transcript,
        LogRange::Bytes {
            offset: from.offset,
            limit: ccmp_core::MAX_LOG_READ,
        },
    );
    struct Live {
        state: AppState,
        id: ccmp_core::TaskId,
        follow: Option<ccmp_core::OutputFollow>,
        changes: Option<ccmp_core::TaskChanges>,
        header: Option<String>,
        ended: bool,
    }
    let live = Live {
        changes: Some(state.ccmp.watch(&[id])),
        state,
        id,
        follow: Some(follow),
        header: None,
        ended: false,
    };
    let events = stream::unfold(live, |mut live| async move {
        if live.ended {
            return None;
        }
        loop {
            let record = live.state.ccmp.status(&live.id).ok()?;
            let header = TaskHeader::of(&live.state, &record).render().ok()?;
            if live.header.as_ref() != Some(&header) {
                live.header = Some(header.clone());
                return Some((Ok(Event::default().event("header").data(header)), live));
            }
            if live.follow.is_none() {
                // The transcript is all read and the task has ended: the result, and done.
                live.ended = true;
                let view = live.state.ccmp.view(&record);
                let html = view
                    .result
                    .as_deref()
                    .map(crate::markdown::render)
                    .unwrap_or_default();
                return Some((Ok(Event::default().event("result").data(html)), live));
            }
            // The transcript as it grows, or a change of the record (its header), whichever
            // comes first.
            let next = {
                let changes = &mut live.changes;
                let follow = live.follow.as_mut()?;
                tokio::select! {
                    chunk = follow.next() => Next::Chunk(chunk),
                    more = async {
                        match changes.as_mut() {
                            Some(changes) => changes.next().await.is_some(),
                            None => std::future::pending().await,
                        }
                    } => Next::Changed(more),
                }
            };
            match next {
                Next::Chunk(Some(Ok(chunk))) if !chunk.text.is_empty() => {
                    let data = serde_json::to_string(&chunk.text).unwrap_or_default();
                    return Some((Ok(Event::default().event("log").data(data)), live));
                }
                Next::Chunk(Some(Ok(_))) => {}
                Next::Chunk(Some(Err(_)) | None) => live.follow = None,
                Next::Changed(more) => {
                    if !more {
                        live.changes = None;
                    }
                }
            }
        }
    });
    stream_of(events)
}
