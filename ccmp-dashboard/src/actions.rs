//! What the pages' forms do: each is one core call, with the same rules as the other frontends.
//! Every form carries the CSRF token; an action that cannot be done says why, and changes
//! nothing.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ccmp_core::{ApprovalAnswer, CleanupTarget, GroupName, TaskRequest};
use serde::Deserialize;

use crate::pages::problem;
use crate::server::AppState;

/// Any form: the CSRF token and the rest.
#[derive(Debug, Deserialize)]
pub(crate) struct Csrf {
    csrf: String,
}

/// The refusal of a form without this dashboard's CSRF token, if it has none.
fn refused(state: &AppState, csrf: &str) -> Option<Response> {
    if state.secrets.csrf_ok(csrf) {
        None
    } else {
        Some(problem(
            StatusCode::FORBIDDEN,
            "this form did not come from this dashboard's page (no valid CSRF token); reload the page and try again",
        ))
    }
}

fn failed(e: impl std::fmt::Display) -> Response {
    problem(StatusCode::BAD_REQUEST, e.to_string())
}

/// The start form.
#[derive(Debug, Deserialize)]
pub(crate) struct StartForm {
    csrf: String,
    prompt: String,
    #[serde(default)]
    working_dir: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    worktree: Option<String>,
}

fn some(text: String) -> Option<String> {
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

pub(crate) async fn start(State(state): State<AppState>, Form(form): Form<StartForm>) -> Response {
    if let Some(refused) = refused(&state, &form.csrf) {
        return refused;
    }
    let after: Vec<&str> = form.after.split_whitespace().collect();
    let after = match state.ccmp.resolve_all(&after) {
        Ok(after) => after,
        Err(e) => return failed(format!("after: {e}")),
    };
    let request = TaskRequest {
        prompt: form.prompt,
        working_dir: some(form.working_dir).map(Into::into),
        model: some(form.model),
        group: some(form.group),
        after,
        isolation: form.worktree.map(|_| ccmp_core::Isolation::Worktree),
        ..TaskRequest::default()
    };
    let ccmp = state.ccmp.clone();
    match tokio::task::spawn_blocking(move || ccmp.start(request)).await {
        Ok(Ok(record)) => Redirect::to(&format!("/task/{}", record.id)).into_response(),
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e),
    }
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    if let Some(refused) = refused(&state, &form.csrf) {
        return refused;
    }
    let id = match state.ccmp.resolve(&id) {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    match state.ccmp.request_cancel(&id) {
        Ok(_) => Redirect::to(&format!("/task/{id}")).into_response(),
        Err(e) => failed(e),
    }
}

/// The follow-up form.
#[derive(Debug, Deserialize)]
pub(crate) struct ReplyForm {
    csrf: String,
    prompt: String,
}

pub(crate) async fn reply(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<ReplyForm>,
) -> Response {
    if let Some(refused) = refused(&state, &form.csrf) {
        return refused;
    }
    let ccmp = state.ccmp.clone();
    let followed = tokio::task::spawn_blocking(move || {
        let id = ccmp.resolve(&id)?;
        ccmp.follow_up(&id, form.prompt)
    })
    .await;
    match followed {
        Ok(Ok(record)) => Redirect::to(&format!("/task/{}", record.id)).into_response(),
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e),
    }
}

/// The approval forms.
#[derive(Debug, Deserialize)]
pub(crate) struct AnswerForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    always: Option<String>,
}

pub(crate) async fn answer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<AnswerForm>,
) -> Response {
    if let Some(refused) = refused(&state, &form.csrf) {
        return refused;
    }
    let answer = match form.decision.as_str() {
        "approve" => ApprovalAnswer::approve().always(form.always.is_some()),
        "deny" => ApprovalAnswer::deny(some(form.reason)),
        other => return failed(format!("decision must be approve or deny, not {other:?}")),
    };
    let ccmp = state.ccmp.clone();
    let answered = tokio::task::spawn_blocking(move || {
        let id = ccmp.resolve(&id)?;
        ccmp.answer_approval(&id, answer)
    })
    .await;
    match answered {
        Ok(Ok(record)) => Redirect::to(&format!("/task/{}", record.id)).into_response(),
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e),
    }
}

async fn set_paused(state: AppState, name: String, csrf: String, paused: bool) -> Response {
    if let Some(refused) = refused(&state, &csrf) {
        return refused;
    }
    let group: GroupName = match name.parse() {
        Ok(group) => group,
        Err(e) => return failed(e),
    };
    match state.ccmp.set_group_paused(&group, paused) {
        Ok(_) => Redirect::to("/queue").into_response(),
        Err(e) => failed(e),
    }
}

pub(crate) async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    set_paused(state, name, form.csrf, true).await
}

pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    set_paused(state, name, form.csrf, false).await
}

pub(crate) async fn cleanup(State(state): State<AppState>, Form(form): Form<Csrf>) -> Response {
    if let Some(refused) = refused(&state, &form.csrf) {
        return refused;
    }
    match state.ccmp.cleanup(CleanupTarget::Finished).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => failed(e),
    }
}
