//! Binding, routes and serving.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use ccmp_core::Ccmp;

use crate::security::{Secrets, guard};

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// The address to bind (default 127.0.0.1).
    pub bind: IpAddr,
    /// The port (0: a free one).
    pub port: u16,
    /// Allow an address other than loopback (anyone who can reach it and has the token can
    /// start agents on this machine).
    pub allow_remote: bool,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            allow_remote: false,
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub ccmp: Ccmp,
    pub secrets: Secrets,
}

/// A dashboard bound to its address, ready to serve.
#[derive(Debug)]
pub struct Dashboard {
    listener: tokio::net::TcpListener,
    state: AppState,
    addr: SocketAddr,
}

impl Dashboard {
    /// Binds the address; refuses one that is not loopback unless `allow_remote`.
    pub async fn bind(ccmp: Ccmp, options: DashboardOptions) -> Result<Self, String> {
        if !options.bind.is_loopback() && !options.allow_remote {
            return Err(format!(
                "{} is not a loopback address: anyone who can reach it and has the token could run agents here; pass --allow-remote if you mean it (an SSH tunnel to 127.0.0.1 is safer)",
                options.bind
            ));
        }
        let listener = tokio::net::TcpListener::bind((options.bind, options.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", options.bind, options.port))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        Ok(Self {
            listener,
            state: AppState {
                ccmp,
                secrets: Secrets::new(addr),
            },
            addr,
        })
    }

    /// The URL to open, with the token.
    pub fn url(&self) -> String {
        let host = match self.addr {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        format!(
            "http://{host}:{}/?token={}",
            self.addr.port(),
            self.state.secrets.token
        )
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = router(self.state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

fn router(state: AppState) -> Router {
    let secrets = state.secrets.clone();
    Router::new()
        .route("/", get(crate::pages::tasks))
        .route("/task/{id}", get(crate::pages::task))
        .route("/queue", get(crate::pages::queue))
        .route("/inbox", get(crate::pages::inbox))
        .route("/live/tasks", get(crate::live::tasks))
        .route("/live/task/{id}", get(crate::live::task))
        .route("/start", post(crate::actions::start))
        .route("/task/{id}/cancel", post(crate::actions::cancel))
        .route("/task/{id}/reply", post(crate::actions::reply))
        .route("/task/{id}/answer", post(crate::actions::answer))
        .route("/group/{name}/pause", post(crate::actions::pause))
        .route("/group/{name}/resume", post(crate::actions::resume))
        .route("/cleanup", post(crate::actions::cleanup))
        .route("/static/app.js", get(script))
        .route("/static/style.css", get(style))
        .route("/static/icon.svg", get(icon))
        .layer(axum::middleware::from_fn_with_state(secrets, guard))
        .with_state(state)
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/app.js"),
    )
}

async fn icon() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("../static/icon.svg"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/style.css"),
    )
}
