//! Worktree isolation with real git repositories: parallel tasks on one repository each get a
//! worktree and branch of their own, and the user's checkout is never touched.

use std::path::Path;
use std::time::Duration;

use ccmp_core::{
    Ccmp, CleanupOptions, CleanupTarget, Config, Error, FsStore, Isolation, TaskRecord,
    TaskRequest, TaskStatus, WaitMode, WorktreeError,
};
use ccmp_tests::{Sandbox, git, workspace_bin};
use pretty_assertions::assert_eq;

const LONG: Duration = Duration::from_secs(60);

/// The sandbox's working dir as a repository with one commit on `main`.
fn repo(sandbox: &Sandbox) -> std::path::PathBuf {
    let dir = sandbox.work();
    git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("file.txt"), "original\n").unwrap();
    git(&dir, &["add", "file.txt"]);
    git(&dir, &["commit", "-q", "-m", "initial"]);
    dir
}

fn ccmp(sandbox: &Sandbox) -> Ccmp {
    let config = Config {
        max_parallel: 4,
        grace: Duration::from_millis(1500),
        claude_program: workspace_bin("fake-claude").into_os_string(),
        ..Config::default()
    };
    Ccmp::open_with_runner(
        FsStore::open(sandbox.state()).unwrap(),
        config,
        workspace_bin("ccmp-test-host"),
    )
}

fn isolated(sandbox: &Sandbox, prompt: &str) -> TaskRequest {
    TaskRequest {
        isolation: Some(Isolation::Worktree),
        ..sandbox.request(prompt)
    }
}

async fn finish(ccmp: &Ccmp, ids: &[String]) -> Vec<TaskRecord> {
    let ids = ccmp.resolve_all(ids).unwrap();
    let outcome = ccmp.wait(&ids, WaitMode::All, LONG).await.unwrap();
    assert!(!outcome.timed_out);
    outcome.finished
}

fn assert_checkout_untouched(dir: &Path, head: &str) {
    assert_eq!(
        git(dir, &["status", "--porcelain"]),
        "",
        "the user's checkout changed"
    );
    assert_eq!(git(dir, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git(dir, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("file.txt")).unwrap(),
        "original\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_tasks_edit_the_same_file_on_their_own_branches() {
    let sandbox = Sandbox::new();
    let dir = repo(&sandbox);
    let head = git(&dir, &["rev-parse", "HEAD"]);
    let ccmp = ccmp(&sandbox);
    let a = ccmp
        .start(isolated(&sandbox, "FAKE_WRITE=file.txt FAKE_SLEEP=0.3"))
        .unwrap();
    let b = ccmp
        .start(isolated(&sandbox, "FAKE_WRITE=file.txt FAKE_SLEEP=0.3"))
        .unwrap();
    let done = finish(&ccmp, &[a.id.to_string(), b.id.to_string()]).await;
    for record in &done {
        assert_eq!(record.status, TaskStatus::Succeeded, "{:?}", record.outcome);
        let worktree = record.worktree.as_ref().unwrap();
        assert_eq!(worktree.branch, format!("ccmp/{}", record.id.short()));
        assert!(
            worktree
                .path
                .starts_with(sandbox.state().canonicalize().unwrap())
        );
        assert_eq!(worktree.base_commit, head.trim());
        assert_eq!(
            std::fs::read_to_string(worktree.path.join("file.txt")).unwrap(),
            "written by fake-claude\n"
        );
        let diff = worktree.diff.unwrap();
        assert_eq!(
            (
                diff.files_changed,
                diff.insertions,
                diff.deletions,
                diff.commits,
                diff.dirty
            ),
            (1, 1, 1, 0, true)
        );
        // The view carries it too.
        assert_eq!(ccmp.view(record).worktree.unwrap().branch, worktree.branch);
    }
    assert_checkout_untouched(&dir, &head);
    // Cleanup commits the changes to each branch and removes the worktrees.
    let report = ccmp.cleanup(CleanupTarget::Finished).await.unwrap();
    assert_eq!(report.removed.len(), 2);
    assert_eq!(report.worktrees.len(), 2);
    assert!(
        report
            .worktrees
            .iter()
            .all(|w| w.branch_kept && w.saved_changes),
        "{report:?}"
    );
    for record in &done {
        let worktree = record.worktree.as_ref().unwrap();
        assert!(!worktree.path.exists());
        let content = git(&dir, &["show", &format!("{}:file.txt", worktree.branch)]);
        assert_eq!(content, "written by fake-claude\n");
    }
    assert_eq!(git(&dir, &["worktree", "list"]).lines().count(), 1);
    assert_checkout_untouched(&dir, &head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_starts_on_one_repository() {
    let sandbox = Sandbox::new();
    let dir = repo(&sandbox);
    let head = git(&dir, &["rev-parse", "HEAD"]);
    let ccmp = ccmp(&sandbox);
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                scope.spawn(|| {
                    ccmp.start(isolated(&sandbox, "FAKE_SLEEP=0"))
                        .map(|r| r.id.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let done = finish(&ccmp, &ids).await;
    assert!(done.iter().all(|r| r.status == TaskStatus::Succeeded));
    assert_eq!(git(&dir, &["worktree", "list"]).lines().count(), 11);
    assert_eq!(
        git(&dir, &["branch", "--list", "ccmp/*"]).lines().count(),
        10
    );
    assert_checkout_untouched(&dir, &head);
    // Nothing changed in any of them: cleanup deletes the worktrees and their empty branches.
    let report = ccmp.cleanup(CleanupTarget::Finished).await.unwrap();
    assert_eq!(report.worktrees.len(), 10);
    assert!(report.worktrees.iter().all(|w| !w.branch_kept));
    assert_eq!(git(&dir, &["branch", "--list", "ccmp/*"]), "");
    assert_eq!(git(&dir, &["worktree", "list"]).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_keeps_branches_with_work_unless_told_and_never_touches_other_worktrees() {
    let sandbox = Sandbox::new();
    let dir = repo(&sandbox);
    let ccmp = ccmp(&sandbox);
    let changed = ccmp
        .start(isolated(&sandbox, "FAKE_WRITE=new.txt"))
        .unwrap();
    let foreign = ccmp.start(isolated(&sandbox, "FAKE_SLEEP=0")).unwrap();
    finish(&ccmp, &[changed.id.to_string(), foreign.id.to_string()]).await;
    // --delete-branch: even a branch with work goes.
    let report = ccmp
        .cleanup_with(
            CleanupTarget::Task {
                id: changed.id,
                force: false,
            },
            CleanupOptions {
                delete_branches: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(report.worktrees[0].branch_kept, false);
    assert_eq!(
        git(
            &dir,
            &["branch", "--list", &format!("ccmp/{}", changed.id.short())]
        ),
        ""
    );
    // A worktree the user made is never removed, even if a record points at it.
    let theirs = sandbox.path("their-worktree");
    git(
        &dir,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "theirs",
            &theirs.display().to_string(),
        ],
    );
    let store = FsStore::open(sandbox.state()).unwrap();
    let mut record = ccmp_core::TaskStore::load(&store, &foreign.id).unwrap();
    let original = record.worktree.clone().unwrap();
    record.worktree.as_mut().unwrap().path = theirs.canonicalize().unwrap();
    ccmp_core::TaskStore::save(&store, &record).unwrap();
    let report = ccmp
        .cleanup(CleanupTarget::Task {
            id: foreign.id,
            force: false,
        })
        .await
        .unwrap();
    assert!(report.worktrees.is_empty());
    assert!(
        report.notes.iter().any(|n| n.contains("did not create")),
        "{report:?}"
    );
    assert!(theirs.join("file.txt").exists());
    // (The worktree ccmp did create for that task is still registered; tidy it for the check below.)
    git(
        &dir,
        &[
            "worktree",
            "remove",
            "--force",
            &original.path.display().to_string(),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_runs_in_the_same_worktree() {
    let sandbox = Sandbox::new();
    let dir = repo(&sandbox);
    let head = git(&dir, &["rev-parse", "HEAD"]);
    let ccmp = ccmp(&sandbox);
    let first = ccmp.start(isolated(&sandbox, "FAKE_WRITE=a.txt")).unwrap();
    let first = finish(&ccmp, &[first.id.to_string()]).await.remove(0);
    let next = ccmp.follow_up(&first.id, "FAKE_WRITE=b.txt").unwrap();
    let next = finish(&ccmp, &[next.id.to_string()]).await.remove(0);
    assert_eq!(next.status, TaskStatus::Succeeded, "{:?}", next.outcome);
    let (w1, w2) = (first.worktree.unwrap(), next.worktree.unwrap());
    assert_eq!((&w1.path, &w1.branch), (&w2.path, &w2.branch));
    assert!(w2.path.join("a.txt").exists() && w2.path.join("b.txt").exists());
    assert_eq!(w2.diff.unwrap().files_changed, 2);
    assert_checkout_untouched(&dir, &head);
    // Removing the first task keeps the worktree its follow-up still uses.
    let report = ccmp
        .cleanup(CleanupTarget::Task {
            id: first.id,
            force: false,
        })
        .await
        .unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("another task uses it")),
        "{report:?}"
    );
    assert!(w2.path.exists());
    let report = ccmp
        .cleanup(CleanupTarget::Task {
            id: next.id,
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(report.worktrees.len(), 1);
    assert!(!w2.path.exists());
    assert_eq!(
        git(&dir, &["show", &format!("{}:b.txt", w2.branch)]),
        "written by fake-claude\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_repositories_are_clear_errors_that_leave_nothing() {
    let sandbox = Sandbox::new();
    let ccmp = ccmp(&sandbox);
    let plain = sandbox.path("plain");
    std::fs::create_dir(&plain).unwrap();
    let empty = sandbox.path("empty");
    std::fs::create_dir(&empty).unwrap();
    git(&empty, &["init", "-q"]);
    let bare = sandbox.path("bare.git");
    std::fs::create_dir(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare"]);
    let detached = repo(&sandbox);
    git(&detached, &["checkout", "-q", "--detach"]);
    type IsExpected = fn(&WorktreeError) -> bool;
    let cases: [(&Path, IsExpected, &str); 4] = [
        (
            &plain,
            |e| matches!(e, WorktreeError::NotARepo { .. }),
            "not in a git repository",
        ),
        (
            &empty,
            |e| matches!(e, WorktreeError::NoCommits { .. }),
            "no commits",
        ),
        (
            &bare,
            |e| matches!(e, WorktreeError::Bare { .. }),
            "bare repository",
        ),
        (
            &detached,
            |e| matches!(e, WorktreeError::Detached { .. }),
            "detached HEAD",
        ),
    ];
    for (dir, is_expected, text) in cases {
        let err = ccmp
            .start(isolated(&sandbox, "x").working_dir(dir))
            .unwrap_err();
        let Error::Worktree(inner) = &err else {
            panic!("{dir:?}: {err}")
        };
        assert!(is_expected(inner), "{dir:?}: {err}");
        assert!(err.to_string().contains(text), "{err}");
        assert!(err.is_invalid_input());
    }
    assert!(ccmp.store().ids().unwrap().is_empty());
    let worktrees = sandbox.state().join("worktrees");
    let left: Vec<_> = std::fs::read_dir(&worktrees)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_tasks_run_in_their_worktree_too() {
    let sandbox = Sandbox::new();
    let dir = repo(&sandbox);
    let head = git(&dir, &["rev-parse", "HEAD"]);
    let config = Config {
        claude_program: workspace_bin("fake-claude").into_os_string(),
        ..Config::default()
    };
    let ccmp = Ccmp::in_memory(config)
        .unwrap()
        .with_worktree_root(sandbox.path("trees"));
    let task = ccmp
        .start(isolated(&sandbox, "FAKE_WRITE=file.txt"))
        .unwrap();
    let done = finish(&ccmp, &[task.id.to_string()]).await.remove(0);
    assert_eq!(
        done.worktree.as_ref().unwrap().diff.unwrap().files_changed,
        1
    );
    assert_checkout_untouched(&dir, &head);
    ccmp.cleanup(CleanupTarget::Finished).await.unwrap();
    assert_eq!(git(&dir, &["worktree", "list"]).lines().count(), 1);
}
