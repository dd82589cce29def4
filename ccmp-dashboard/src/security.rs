//! Who may talk to the dashboard: whoever has the token it printed, through the address it is
//! bound to, from its own pages.
//!
//! * The token (128 random bits) is required on every request: as `?token=` once (the dashboard
//!   then sets it as an `HttpOnly`, `SameSite=Strict` cookie and redirects to the same page
//!   without it, so it leaves the address bar), or as that cookie.
//! * The `Host` header must name the bound address (or `localhost`, when bound to loopback): a
//!   page on another site whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own name.
//! * Every POST carries the CSRF token that the dashboard's own pages embed in their forms.
//! * A strict Content-Security-Policy allows only the dashboard's own script and style, and all
//!   agent output is escaped by the templates.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// The secrets of one dashboard run.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// Grants access.
    pub token: String,
    /// Proves a POST came from a page the dashboard served.
    pub csrf: String,
    /// The `Host` values accepted.
    allowed_hosts: Vec<String>,
    /// The cookie that carries the token (named by port, so dashboards on two ports coexist).
    cookie: String,
}

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

impl Secrets {
    /// New secrets for a dashboard bound to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let random = || uuid::Uuid::new_v4().simple().to_string();
        let port = addr.port();
        let mut allowed_hosts = vec![match addr {
            SocketAddr::V4(v4) => format!("{}:{port}", v4.ip()),
            SocketAddr::V6(v6) => format!("[{}]:{port}", v6.ip()),
        }];
        if addr.ip().is_loopback() {
            allowed_hosts.extend([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
        Self {
            token: random(),
            csrf: random(),
            allowed_hosts,
            cookie: format!("ccmp_dashboard_{port}"),
        }
    }

    fn cookie_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value)
    }

    /// Whether a POST's CSRF token is this dashboard's.
    pub fn csrf_ok(&self, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.csrf.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses requests with a foreign `Host` or without the token, and sets the security headers.
pub async fn guard(State(secrets): State<Secrets>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !secrets.allowed_hosts.iter().any(|allowed| allowed == host) {
        return with_headers(
            (
                StatusCode::MISDIRECTED_REQUEST,
                "this dashboard answers only at the address it printed",
            )
                .into_response(),
        );
    }
    let query_token = request.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == "token")
            .map(|(_, value)| value.to_owned())
    });
    if let Some(token) = query_token {
        if !constant_time_eq(token.as_bytes(), secrets.token.as_bytes()) {
            return refused();
        }
        // Keep the token in a cookie and out of the address bar (and of the history).
        let path = request.uri().path().to_owned();
        let mut response = Redirect::to(&path).into_response();
        if let Ok(cookie) = HeaderValue::from_str(&format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            secrets.cookie, secrets.token
        )) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return with_headers(response);
    }
    let authorised = secrets
        .cookie_token(request.headers())
        .is_some_and(|t| constant_time_eq(t.as_bytes(), secrets.token.as_bytes()));
    if !authorised {
        return refused();
    }
    with_headers(next.run(request).await)
}

fn refused() -> Response {
    with_headers(
        (
            StatusCode::UNAUTHORIZED,
            "open the dashboard with the URL `ccmp dashboard` printed (it carries the token)",
        )
            .into_response(),
    )
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
