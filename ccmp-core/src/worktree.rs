//! Worktree isolation: a task can run in a git worktree of its own, on a new branch
//! `ccmp/<short-id>` from the current HEAD, so that parallel tasks on one repository never touch
//! each other's files, nor the user's checkout (its files, index and HEAD).
//!
//! Worktrees live under ccmp's state dir (`<state>/worktrees/<id>`), not inside the repository:
//! the user's checkout gains no untracked directory, and ccmp can tell the worktrees it created
//! from any others. Git still records them in the repository's `.git/worktrees/`.
//!
//! ccmp drives the `git` program (no shell): it is what users have and trust, it handles every
//! repository layout git supports, and it keeps a C library or a large crate out of the build.
//! `git worktree add` and `remove` take a per-repository lock, so parallel starts do not race on
//! git's own lock files.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::WorktreeError;
use crate::id::TaskId;

/// Where a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// In the working dir itself.
    #[default]
    None,
    /// In a new git worktree of the working dir's repository, on branch `ccmp/<short-id>`.
    Worktree,
}

/// A worktree ccmp created for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worktree {
    /// The top level of the user's checkout.
    pub repo: PathBuf,
    /// The repository's common git dir (shared by all its worktrees).
    pub common_dir: PathBuf,
    /// The worktree's directory, where the agent runs.
    pub path: PathBuf,
    /// The branch, `ccmp/<short-id>`.
    pub branch: String,
    /// The commit the branch started from.
    pub base_commit: String,
    /// The task that created it (follow-ups run in the same worktree).
    pub owner: TaskId,
    /// What the task changed, measured when it ended.
    #[serde(default)]
    pub diff: Option<DiffSummary>,
}

/// What a task changed in its worktree, against the base commit, including uncommitted changes
/// and new files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiffSummary {
    /// Files added, changed or removed.
    pub files_changed: u64,
    /// Lines added.
    pub insertions: u64,
    /// Lines removed.
    pub deletions: u64,
    /// Commits on the branch since the base.
    pub commits: u64,
    /// Whether there are uncommitted changes.
    pub dirty: bool,
}

impl DiffSummary {
    /// Whether the task left anything behind.
    pub fn has_changes(&self) -> bool {
        self.commits > 0 || self.dirty || self.files_changed > 0
    }
}

/// What removing a worktree did with its branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeRemoval {
    /// The branch.
    pub branch: String,
    /// Whether the branch was kept (it has commits, or held changes that were committed to it).
    pub branch_kept: bool,
    /// Whether uncommitted changes were committed to the branch before the worktree went.
    pub saved_changes: bool,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, WorktreeError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| WorktreeError::GitMissing { source })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned())
    } else {
        Err(WorktreeError::Git {
            command: format!("git {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// FNV-1a: a hash that is the same in every build, for naming per-repository lock files.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Holds the per-repository lock while alive.
struct RepoLock {
    _file: File,
}

fn lock_repo(root: &Path, common_dir: &Path) -> Result<RepoLock, WorktreeError> {
    let dir = root.join(".locks");
    let io_err = |source| WorktreeError::Io {
        path: dir.clone(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_err)?;
    let path = dir.join(format!(
        "{:016x}.lock",
        stable_hash(common_dir.as_os_str().as_encoded_bytes())
    ));
    match crate::private_file::lock_with_patience(&path, Duration::from_secs(60)) {
        Ok(Some(file)) => Ok(RepoLock { _file: file }),
        Ok(None) => Err(io_err(io::Error::new(
            io::ErrorKind::TimedOut,
            "another ccmp process held the repository's worktree lock for 60s",
        ))),
        Err(e) => Err(io_err(e)),
    }
}

/// Creates the worktree for task `id` of the repository containing `working_dir`, under `root`.
pub(crate) fn create(
    working_dir: &Path,
    root: &Path,
    id: &TaskId,
) -> Result<Worktree, WorktreeError> {
    let dir = working_dir.to_owned();
    let info = git(
        &dir,
        &["rev-parse", "--is-bare-repository", "--git-common-dir"],
    )
    .map_err(|e| match e {
        WorktreeError::Git { stderr, .. } if stderr.contains("not a git repository") => {
            WorktreeError::NotARepo { path: dir.clone() }
        }
        other => other,
    })?;
    let mut lines = info.lines();
    if lines.next() == Some("true") {
        return Err(WorktreeError::Bare { path: dir });
    }
    let common_dir = lines
        .next()
        .map(|d| dir.join(d))
        .unwrap_or_else(|| dir.join(".git"));
    let common_dir = common_dir.canonicalize().unwrap_or(common_dir);
    let repo = match git(&dir, &["rev-parse", "--show-toplevel"]) {
        Ok(top) => PathBuf::from(top),
        Err(_) => return Err(WorktreeError::Bare { path: dir }),
    };
    if git(&dir, &["symbolic-ref", "-q", "HEAD"]).is_err() {
        return Err(WorktreeError::Detached { path: repo });
    }
    let base_commit = git(&dir, &["rev-parse", "--verify", "-q", "HEAD^{commit}"])
        .map_err(|_| WorktreeError::NoCommits { path: repo.clone() })?;
    let branch = format!("ccmp/{}", id.short());
    let path = root.join(id.simple());
    let _lock = lock_repo(root, &common_dir)?;
    if git(
        &dir,
        &[
            "show-ref",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ],
    )
    .is_ok()
    {
        return Err(WorktreeError::BranchTaken { branch, repo });
    }
    let path_str = path.to_string_lossy().into_owned();
    git(
        &dir,
        &[
            "worktree",
            "add",
            "--quiet",
            "-b",
            &branch,
            &path_str,
            &base_commit,
        ],
    )?;
    Ok(Worktree {
        repo,
        common_dir,
        path: path.canonicalize().unwrap_or(path),
        branch,
        base_commit,
        owner: *id,
        diff: None,
    })
}

/// Measures what the task changed: committed and uncommitted, new files included.
pub(crate) fn summarize(worktree: &Worktree) -> Result<DiffSummary, WorktreeError> {
    let dir = &worktree.path;
    let mut summary = DiffSummary::default();
    let numstat = git(dir, &["diff", "--numstat", &worktree.base_commit])?;
    for line in numstat.lines() {
        let mut parts = line.split('\t');
        summary.insertions += parts
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        summary.deletions += parts
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        summary.files_changed += 1;
    }
    let untracked = git(dir, &["ls-files", "--others", "--exclude-standard", "-z"])?;
    for file in untracked.split('\0').filter(|f| !f.is_empty()) {
        summary.files_changed += 1;
        if let Ok(bytes) = fs::read(dir.join(file))
            && !bytes.contains(&0)
        {
            summary.insertions += bytes.iter().filter(|b| **b == b'\n').count() as u64
                + u64::from(!bytes.is_empty() && !bytes.ends_with(b"\n"));
        }
    }
    summary.commits = git(
        dir,
        &[
            "rev-list",
            "--count",
            &format!("{}..HEAD", worktree.base_commit),
        ],
    )?
    .parse()
    .unwrap_or(0);
    summary.dirty = !git(dir, &["status", "--porcelain"])?.is_empty();
    Ok(summary)
}

/// The most bytes of patch text [`file_diffs`] returns; the rest is cut, and said to be.
pub const MAX_DIFF_BYTES: usize = 1024 * 1024;

/// One file's change against the base commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    /// The file's path in the repository.
    pub path: String,
    /// Its patch (unified diff), or for a new file git does not track yet, its content as added
    /// lines.
    pub patch: String,
}

/// What a task changed in its worktree against the base commit, file by file: committed and
/// uncommitted changes, and new files. Cut at [`MAX_DIFF_BYTES`] (then `truncated` is true).
pub fn file_diffs(worktree: &Worktree) -> Result<(Vec<FileDiff>, bool), WorktreeError> {
    let dir = &worktree.path;
    let patch = git(
        dir,
        &["diff", "--no-color", "--no-ext-diff", &worktree.base_commit],
    )?;
    let mut files = Vec::new();
    let mut size = 0usize;
    let mut truncated = false;
    for part in patch.split("\ndiff --git ").filter(|p| !p.is_empty()) {
        let part = part.strip_prefix("diff --git ").unwrap_or(part);
        // "a/path b/path" on the first line.
        let first = part.lines().next().unwrap_or_default();
        let path = first
            .split(" b/")
            .nth(1)
            .unwrap_or(first.trim_start_matches("a/"))
            .to_owned();
        if size + part.len() > MAX_DIFF_BYTES {
            truncated = true;
            break;
        }
        size += part.len();
        files.push(FileDiff {
            path,
            patch: format!("diff --git {part}"),
        });
    }
    let untracked = git(dir, &["ls-files", "--others", "--exclude-standard", "-z"])?;
    for file in untracked.split('\0').filter(|f| !f.is_empty()) {
        let text = match fs::read(dir.join(file)) {
            Ok(bytes) if !bytes.contains(&0) => String::from_utf8_lossy(&bytes)
                .lines()
                .map(|l| format!("+{l}\n"))
                .collect(),
            Ok(_) => "(a binary file)\n".to_owned(),
            Err(e) => format!("(cannot be read: {e})\n"),
        };
        if truncated || size + text.len() > MAX_DIFF_BYTES {
            truncated = true;
            break;
        }
        size += text.len();
        files.push(FileDiff {
            path: file.to_owned(),
            patch: format!("new file (not yet added to git)\n{text}"),
        });
    }
    Ok((files, truncated))
}

/// Whether `worktree` is one ccmp created: under `root`, and registered with git on its branch.
pub(crate) fn is_ours(worktree: &Worktree, root: &Path) -> bool {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    if !worktree.path.starts_with(&root) || !worktree.branch.starts_with("ccmp/") {
        return false;
    }
    let Ok(list) = git(&worktree.repo, &["worktree", "list", "--porcelain"]) else {
        return false;
    };
    let wanted = format!("worktree {}", worktree.path.display());
    let branch = format!("branch refs/heads/{}", worktree.branch);
    list.split("\n\n")
        .any(|entry| entry.lines().any(|l| l == wanted) && entry.lines().any(|l| l == branch))
}

/// Removes the worktree. Uncommitted changes are first committed to its branch, so no work is
/// lost; the branch is kept if it has commits, unless `delete_branch`.
pub(crate) fn remove(
    worktree: &Worktree,
    root: &Path,
    delete_branch: bool,
) -> Result<WorktreeRemoval, WorktreeError> {
    let _lock = lock_repo(root, &worktree.common_dir)?;
    let mut saved_changes = false;
    if worktree.path.is_dir() {
        let dirty = !git(&worktree.path, &["status", "--porcelain"])?.is_empty();
        if dirty && !delete_branch {
            git(&worktree.path, &["add", "-A"])?;
            git(
                &worktree.path,
                &[
                    "-c",
                    "user.name=ccmp",
                    "-c",
                    "user.email=ccmp@localhost",
                    "-c",
                    "commit.gpgsign=false",
                    "commit",
                    "--quiet",
                    "--no-verify",
                    "-m",
                    &format!(
                        "ccmp: uncommitted changes left by task {}",
                        worktree.owner.short()
                    ),
                ],
            )?;
            saved_changes = true;
        }
        let path = worktree.path.to_string_lossy().into_owned();
        git(&worktree.repo, &["worktree", "remove", "--force", &path])?;
    }
    let _ = git(&worktree.repo, &["worktree", "prune"]);
    let commits: u64 = git(
        &worktree.repo,
        &[
            "rev-list",
            "--count",
            &format!("{}..refs/heads/{}", worktree.base_commit, worktree.branch),
        ],
    )
    .ok()
    .and_then(|n| n.parse().ok())
    .unwrap_or(0);
    let branch_kept = !delete_branch && commits > 0;
    if !branch_kept {
        let _ = git(
            &worktree.repo,
            &["branch", "-D", "--quiet", &worktree.branch],
        );
    }
    Ok(WorktreeRemoval {
        branch: worktree.branch.clone(),
        branch_kept,
        saved_changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_branch_name_is_refused_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let root = dir.path().join("trees");
        fs::create_dir(&repo).unwrap();
        let run = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(args)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        run(&["init", "-q", "-b", "main"]);
        run(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ]);
        let id = TaskId::new();
        run(&["branch", &format!("ccmp/{}", id.short())]);
        let err = create(&repo, &root, &id).unwrap_err();
        assert!(matches!(err, WorktreeError::BranchTaken { .. }), "{err}");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert!(!root.join(id.simple()).exists());
        // Another id works, and the worktree is ours.
        let other = TaskId::new();
        let worktree = create(&repo, &root, &other).unwrap();
        assert!(is_ours(&worktree, &root));
        let removal = remove(&worktree, &root, false).unwrap();
        assert!(!removal.branch_kept && !worktree.path.exists());
    }

    #[test]
    fn the_lock_name_is_stable() {
        assert_eq!(stable_hash(b"/repo/.git"), stable_hash(b"/repo/.git"));
        assert_ne!(stable_hash(b"/repo/.git"), stable_hash(b"/other/.git"));
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
    }
}
