//! Slurm's own commands, run as programs with arguments (never through a shell): `sbatch` to
//! submit, `squeue` to see a job, `scancel` to stop one. They are found on `PATH`, as a person
//! on a login node would run them, and find the cluster the way they always do (`SLURM_CONF`, or
//! the system's config).

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether `sbatch` is on `PATH`.
pub(crate) fn available() -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join("sbatch")).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

/// A job as `squeue` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobInfo {
    /// `PENDING`, `RUNNING`, `COMPLETING`, `COMPLETED`, `CANCELLED`, `TIMEOUT`, …
    pub state: String,
    /// The node it runs or ran on; `None` while pending.
    pub node: Option<String>,
    /// Why it waits or how it ended (`Priority`, `Resources`, `TimeLimit`); `None` for "None".
    pub reason: Option<String>,
}

impl JobInfo {
    /// Whether the job has ended (Slurm will not run it again by itself).
    pub fn ended(&self) -> bool {
        matches!(
            self.state.as_str(),
            "BOOT_FAIL"
                | "CANCELLED"
                | "COMPLETED"
                | "DEADLINE"
                | "FAILED"
                | "NODE_FAIL"
                | "OUT_OF_MEMORY"
                | "PREEMPTED"
                | "TIMEOUT"
                | "REVOKED"
                | "SPECIAL_EXIT"
        )
    }

    /// Whether Slurm has not started it yet.
    pub fn pending(&self) -> bool {
        crate::task::SlurmJob::is_waiting_state(&self.state)
    }
}

/// What `sbatch` is given for one job: the script reads its arguments from the environment, so
/// no value is ever parsed by a shell.
pub(crate) struct Submission<'a> {
    pub job_name: String,
    pub working_dir: &'a Path,
    pub output: &'a Path,
    pub options: Vec<String>,
    /// Variables the job's script reads (set on `sbatch`, which passes its environment on).
    pub env: Vec<(&'static str, OsString)>,
}

/// The batch script every job runs: it execs ccmp with what the environment names, quoted, so
/// that no path or id is ever read as shell syntax.
const JOB_SCRIPT: &str = "#!/bin/sh\n\
# A ccmp task: runs one attempt of its agent (ccmp's docs/design/executors.md).\n\
exec \"$CCMP_SLURM_PROGRAM\" \"$CCMP_SLURM_CMD\" \"$CCMP_SLURM_STATE\" \"$CCMP_SLURM_TASK\" \"$CCMP_SLURM_GRACE_MS\"\n";

/// Submits a job; returns its id.
pub(crate) fn submit(job: &Submission<'_>) -> io::Result<u64> {
    // `%` starts a pattern in `--output` (`%j`: the job id); a path keeps its own.
    let output = job.output.display().to_string().replace('%', "%%");
    let mut command = Command::new("sbatch");
    command
        .arg("--parsable")
        .arg(format!("--job-name={}", job.job_name))
        .arg(format!("--chdir={}", job.working_dir.display()))
        .arg(format!("--output={output}"))
        .arg("--open-mode=append")
        // A run cut short by a node failure is not started again behind ccmp's back: a
        // half-done run may not be safe to repeat (the task ends `lost`, as after a reboot).
        .arg("--no-requeue")
        .arg("--export=ALL")
        .args(&job.options)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| not_found_says("sbatch", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(JOB_SCRIPT.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let said = last_line(&out.stderr);
        let said = said.strip_prefix("sbatch: error: ").unwrap_or(&said);
        return Err(io::Error::other(format!(
            "sbatch refused the job ({}): {said}",
            out.status
        )));
    }
    // `--parsable` prints `<id>` or `<id>;<cluster>`.
    stdout
        .trim()
        .split(';')
        .next()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| io::Error::other(format!("sbatch said {:?}, not a job id", stdout.trim())))
}

/// How `squeue` sees a job now; `None` if Slurm no longer knows it (it ended long enough ago to
/// be forgotten, or never existed).
pub(crate) fn query(job_id: u64) -> io::Result<Option<JobInfo>> {
    let out = Command::new("squeue")
        .args(["--noheader", "--states=all", "--format=%T|%N|%r"])
        .arg(format!("--jobs={job_id}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| not_found_says("squeue", e))?;
    if !out.status.success() {
        let err = last_line(&out.stderr);
        if err.contains("Invalid job id") {
            return Ok(None);
        }
        return Err(io::Error::other(format!(
            "squeue failed ({}): {err}",
            out.status
        )));
    }
    Ok(parse_squeue(&String::from_utf8_lossy(&out.stdout)))
}

/// The first line of `squeue --format=%T|%N|%r`.
fn parse_squeue(out: &str) -> Option<JobInfo> {
    let line = out.lines().find(|l| !l.trim().is_empty())?;
    let mut fields = line.trim().splitn(3, '|');
    let state = fields.next()?.trim().to_owned();
    let some = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty() && *s != "None" && *s != "(null)")
            .map(str::to_owned)
    };
    let node = some(fields.next());
    let reason = some(fields.next());
    (!state.is_empty()).then_some(JobInfo {
        state,
        node,
        reason,
    })
}

/// Sends `TERM` to the job's batch script only (ccmp's process in the job), which stops the
/// agent with the task's grace period and records the outcome. Fails for a job not running yet.
pub(crate) fn signal_job_runner(job_id: u64) -> io::Result<()> {
    scancel(&["--batch", "--signal=TERM", &job_id.to_string()])
}

/// Cancels the job: a pending one never starts; every process of a running one gets `TERM`,
/// then `KILL` after the cluster's `KillWait`.
pub(crate) fn cancel(job_id: u64) -> io::Result<()> {
    scancel(&[&job_id.to_string()])
}

fn scancel(args: &[&str]) -> io::Result<()> {
    let out = Command::new("scancel")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| not_found_says("scancel", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "scancel {} failed ({}): {}",
            args.join(" "),
            out.status,
            last_line(&out.stderr)
        )))
    }
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn not_found_says(program: &str, e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::NotFound {
        io::Error::new(
            e.kind(),
            format!(
                "`{program}` is not on PATH: ccmp runs Slurm's own commands; run ccmp where they are (a login node), or install Slurm's client"
            ),
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_are_read() {
        assert_eq!(
            parse_squeue("PENDING||Resources\n"),
            Some(JobInfo {
                state: "PENDING".into(),
                node: None,
                reason: Some("Resources".into()),
            })
        );
        let running = parse_squeue("RUNNING|node7|None\n").unwrap();
        assert_eq!(running.node.as_deref(), Some("node7"));
        assert_eq!(running.reason, None);
        assert!(!running.ended() && !running.pending());
        assert!(parse_squeue("TIMEOUT|vm|TimeLimit").unwrap().ended());
        assert_eq!(parse_squeue(""), None);
    }
}
