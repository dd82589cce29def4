//! `ccmp dashboard`: every task, its transcript, the queue and the inbox, live in a browser.

use std::net::IpAddr;
use std::process::ExitCode;

use ccmp_core::Ccmp;
use ccmp_dashboard::{Dashboard, DashboardOptions};
use clap::Args;

/// Serve the dashboard in a browser until Ctrl-C: tasks, transcripts, the queue and the inbox,
/// live, with the same actions as the other frontends.
///
/// It listens on 127.0.0.1 and a free port, and prints the URL to open: it carries a token that
/// every request needs. From another machine, use an SSH tunnel (`ssh -L 8080:127.0.0.1:PORT`).
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The port (default: a free one).
    #[arg(short, long, default_value_t = 0)]
    pub port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Allow --bind to name an address other than loopback (anyone who reaches it with the
    /// token can run agents on this machine).
    #[arg(long)]
    pub allow_remote: bool,
    /// Open the URL in the browser.
    #[arg(long)]
    pub open: bool,
}

pub async fn run(ccmp: &Ccmp, args: DashboardArgs) -> anyhow::Result<ExitCode> {
    let dashboard = Dashboard::bind(
        ccmp.clone(),
        DashboardOptions {
            bind: args.bind,
            port: args.port,
            allow_remote: args.allow_remote,
        },
    )
    .await
    .map_err(crate::exit_codes::UsageError)?;
    let url = dashboard.url();
    if !args.bind.is_loopback() {
        err!(
            "warning: the dashboard listens on {}, beyond this machine; anyone with the URL can run agents here",
            args.bind
        );
    }
    out!("{url}");
    err!("dashboard serving; open the URL above (Ctrl-C stops it; tasks keep running)");
    if args.open {
        match which::which("xdg-open") {
            Ok(opener) => {
                let _ = std::process::Command::new(opener)
                    .arg(&url)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
            }
            Err(_) => err!("--open: xdg-open is not installed; open the URL yourself"),
        }
    }
    dashboard
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
