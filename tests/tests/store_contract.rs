//! One contract, two stores: `FsStore` and `MemoryStore` must give the same answers.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;

use ccmp_core::{
    FsStore, LogRange, LogStream, MemoryStore, StoreError, TaskRecord, TaskRequest, TaskStatus,
    TaskStore,
};
use pretty_assertions::assert_eq;

fn record(prompt: &str) -> TaskRecord {
    let spec = TaskRequest::new(prompt)
        .working_dir(std::env::temp_dir())
        .validate(&OsString::from("sh"))
        .expect("valid spec");
    TaskRecord::new(spec)
}

fn store_contract(store: &dyn TaskStore) {
    // Create, load, save.
    let mut a = record("first task");
    store.create(&a).unwrap();
    assert_eq!(store.load(&a.id).unwrap(), a);
    assert!(matches!(
        store.create(&a),
        Err(StoreError::AlreadyExists { .. })
    ));
    a.status = TaskStatus::Running;
    a.progress = Some("turn 1: Bash".into());
    store.save(&a).unwrap();
    assert_eq!(store.load(&a.id).unwrap(), a);

    // List and ids.
    let b = record("second task");
    store.create(&b).unwrap();
    let ids: BTreeSet<_> = store.ids().unwrap().into_iter().collect();
    assert_eq!(ids, BTreeSet::from([a.id, b.id]));
    let listed: BTreeSet<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    assert_eq!(listed, ids);

    // Headers: all tasks, or only live ones.
    let mut done = record("third task");
    store.create(&done).unwrap();
    done.status = TaskStatus::Succeeded;
    store.save(&done).unwrap();
    let header_ids = |active: bool| -> BTreeSet<_> {
        store
            .headers(active)
            .unwrap()
            .into_iter()
            .map(|h| h.unwrap().id)
            .collect()
    };
    assert_eq!(header_ids(true), BTreeSet::from([a.id, b.id]));
    assert_eq!(header_ids(false), BTreeSet::from([a.id, b.id, done.id]));
    let header = store
        .headers(false)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .find(|h| h.id == done.id)
        .unwrap();
    assert_eq!(
        (header.status, header.created_at),
        (TaskStatus::Succeeded, done.created_at)
    );
    store.remove(&done.id).unwrap();

    // Resolution: full id, short id, prefixes, bad input.
    assert_eq!(store.resolve(&a.id.to_string()).unwrap(), a.id);
    assert_eq!(store.resolve(&a.id.short()).unwrap(), a.id);
    assert_eq!(store.resolve(&a.id.short().to_uppercase()).unwrap(), a.id);
    for bad in ["../../etc", "abc", "a/b/c/d", ""] {
        assert!(
            matches!(store.resolve(bad), Err(StoreError::InvalidId { .. })),
            "{bad}"
        );
    }
    let unknown = if a.id.short().starts_with('0') || b.id.short().starts_with('0') {
        "ffff"
    } else {
        "0000"
    };
    let unknown_ok = !a.id.short().starts_with(unknown) && !b.id.short().starts_with(unknown);
    if unknown_ok {
        assert!(store.resolve(unknown).unwrap_err().is_not_found());
    }

    // Logs: append, page, tail.
    let mut w = store.log_writer(&a.id, LogStream::Transcript).unwrap();
    w.write_all(b"line one\nline two\nline three\n").unwrap();
    drop(w);
    let page = store
        .read_log(
            &a.id,
            LogStream::Transcript,
            LogRange::Bytes {
                offset: 9,
                limit: 8,
            },
        )
        .unwrap();
    assert_eq!(
        (page.text.as_str(), page.next_offset, page.at_end),
        ("line two", 17, false)
    );
    let tail = store
        .read_log(&a.id, LogStream::Transcript, LogRange::tail(1))
        .unwrap();
    assert_eq!(tail.text, "line three\n");
    let empty = store
        .read_log(&a.id, LogStream::Stderr, LogRange::tail(5))
        .unwrap();
    assert_eq!((empty.text.as_str(), empty.total_bytes), ("", 0));

    // Remove.
    store.remove(&a.id).unwrap();
    assert!(store.load(&a.id).unwrap_err().is_not_found());
    assert!(store.remove(&a.id).unwrap_err().is_not_found());
    assert!(store.save(&a).unwrap_err().is_not_found());
    assert!(
        store
            .read_log(&a.id, LogStream::Transcript, LogRange::tail(1))
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(store.ids().unwrap(), vec![b.id]);
}

#[test]
fn memory_store_passes_the_contract() {
    store_contract(&MemoryStore::new());
}

#[test]
fn fs_store_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    store_contract(&FsStore::open(dir.path().join("state")).unwrap());
}

#[test]
fn ambiguous_prefixes_list_the_candidates() {
    for store in [
        Box::new(MemoryStore::new()) as Box<dyn TaskStore>,
        Box::new(FsStore::open(tempfile::tempdir().unwrap().keep()).unwrap()),
    ] {
        // 40 random ids: some share their first hex digit... but 4 digits are needed; so make
        // two ids that share a prefix by construction.
        let mut a = record("a");
        let mut b = record("b");
        a.id = "abcd0000-0000-4000-8000-000000000001".parse().unwrap();
        b.id = "abcd0000-0000-4000-8000-000000000002".parse().unwrap();
        store.create(&a).unwrap();
        store.create(&b).unwrap();
        let err = store.resolve("abcd").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Ambiguous { .. }), "{msg}");
        assert!(
            msg.contains("abcd00000000") && msg.contains("give more characters"),
            "{msg}"
        );
        assert_eq!(
            store
                .resolve("abcd0000-0000-4000-8000-000000000002")
                .unwrap(),
            b.id
        );
    }
}

mod fs_only {
    use std::os::unix::fs::PermissionsExt;

    use pretty_assertions::assert_eq;

    use super::{BTreeSet, FsStore, OsString, StoreError, TaskStatus, TaskStore, record};

    #[test]
    fn files_are_private_and_records_are_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path().join("state")).unwrap();
        let r = record("x");
        store.create(&r).unwrap();
        let task_dir = store.task_dir(&r.id);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.root()), 0o700);
        assert_eq!(mode(&task_dir), 0o700);
        assert_eq!(mode(&task_dir.join("record.json")), 0o600);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(task_dir.join("record.json")).unwrap()).unwrap();
        // Version 3 only marks `skipped` records; every other record stays at 2.
        assert_eq!(json["schema"], 2);
        // Nothing but the task dir (in its shard) is left behind: no temp files or staging dirs.
        let names: Vec<_> = std::fs::read_dir(store.root().join("tasks"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from(&r.id.simple()[..2])]);
        let shard: Vec<_> = std::fs::read_dir(task_dir.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(shard, vec![OsString::from(r.id.simple())]);
        assert_eq!(mode(task_dir.parent().unwrap()), 0o700);
        let files: BTreeSet<_> = std::fs::read_dir(&task_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, BTreeSet::from([OsString::from("record.json")]));
    }

    /// Puts a committed record file in place as task `id`'s record and loads it.
    fn load_committed(store: &FsStore, id: &str, file: &str) -> ccmp_core::TaskRecord {
        let id: ccmp_core::TaskId = id.parse().unwrap();
        let task_dir = store.task_dir(&id);
        std::fs::create_dir_all(&task_dir).unwrap();
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("data")
                .join(file),
            task_dir.join("record.json"),
        )
        .unwrap();
        store.load(&id).unwrap()
    }

    #[test]
    fn a_checked_in_v1_record_still_parses() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let r = load_committed(
            &store,
            "3f9a1c2e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
            "record-v1-first.json",
        );
        assert_eq!(r.status, TaskStatus::Succeeded);
        assert_eq!(
            r.session_id.as_deref(),
            Some("110dc75a-b7fc-47a7-a40c-63d2627fde90")
        );
        let view = r.view(None);
        assert_eq!(view.short_id, "3f9a1c2e");
        assert_eq!(view.cost_usd, Some(0.01044));
        assert_eq!(view.num_turns, Some(1));
        assert_eq!(view.result.as_deref(), Some("MOCK-OK: hello"));
    }

    /// Schema 1 as it was once worktrees existed: every Claude flag, a worktree with its diff,
    /// a follow-up, and a failed outcome with a permission denial all come through.
    #[test]
    fn a_checked_in_v1_worktree_record_keeps_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let r = load_committed(
            &store,
            "7c41d0b2-9e3a-4f6b-8c1d-2e3f4a5b6c7d",
            "record-v1-worktree.json",
        );
        assert_eq!(r.schema, 2);
        assert_eq!(r.status, TaskStatus::Failed);
        let claude = r.spec.agent.claude().unwrap();
        assert!(!claude.skips_permissions());
        assert_eq!(claude.permission_mode.as_deref(), Some("acceptEdits"));
        assert_eq!(claude.allowed_tools, ["Bash(git log:*)"]);
        assert_eq!(claude.max_turns, Some(3));
        assert_eq!(claude.max_budget_usd, Some(1.5));
        assert_eq!(
            claude.append_system_prompt.as_deref(),
            Some("Keep the public API.")
        );
        assert_eq!(
            claude.add_dirs,
            [std::path::PathBuf::from("/home/user/shared")]
        );
        assert_eq!(
            r.spec.program,
            std::path::Path::new("/usr/local/bin/claude")
        );
        assert_eq!(r.spec.isolation, ccmp_core::Isolation::Worktree);
        assert_eq!(
            r.spec.resume_session.as_deref(),
            Some("110dc75a-b7fc-47a7-a40c-63d2627fde90")
        );
        assert_eq!(r.agent_process.as_ref().unwrap().pgid, 5102);
        let view = r.view(None);
        assert_eq!(view.agent, ccmp_core::AgentKind::Claude);
        assert_eq!(view.is_error, Some(true));
        assert_eq!(view.num_turns, Some(4));
        assert_eq!(
            (view.input_tokens, view.output_tokens),
            (Some(9120), Some(312))
        );
        assert_eq!(view.permission_denials[0]["tool_name"], "Write");
        assert!(view.error.unwrap().contains("max_turns"));
        assert_eq!(
            view.follows.as_deref(),
            Some("3f9a1c2e-5b7d-4e8f-9a0b-1c2d3e4f5a6b")
        );
        let worktree = view.worktree.unwrap();
        assert_eq!(
            (worktree.files_changed, worktree.commits, worktree.dirty),
            (Some(2), Some(1), Some(true))
        );
        let outcome = r.outcome.as_ref().unwrap();
        assert_eq!(
            outcome.claude().unwrap().terminal_reason.as_deref(),
            Some("max_turns")
        );
    }

    /// Today's shape is pinned by a committed record: it parses, and saving it writes the same
    /// JSON back (no field is lost or renamed without a schema bump).
    #[test]
    fn a_checked_in_v2_record_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/record-v2.json");
        let r = load_committed(
            &store,
            "7c41d0b2-9e3a-4f6b-8c1d-2e3f4a5b6c7d",
            "record-v2.json",
        );
        store.save(&r).unwrap();
        let written: serde_json::Value = serde_json::from_slice(
            &std::fs::read(store.task_dir(&r.id).join("record.json")).unwrap(),
        )
        .unwrap();
        let committed: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert_eq!(written, committed);
        // The v1 record it came from reads as the same task.
        let v1 = load_committed(
            &FsStore::open(dir.path().join("v1")).unwrap(),
            "7c41d0b2-9e3a-4f6b-8c1d-2e3f4a5b6c7d",
            "record-v1-worktree.json",
        );
        assert_eq!(v1, r);
    }

    #[test]
    fn damaged_records_affect_only_their_own_task() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let good = record("good");
        store.create(&good).unwrap();
        let cases: [(&str, Option<&[u8]>); 4] = [
            ("truncated", Some(b"{\"schema\":1,\"id\":\"")),
            ("garbage", Some(b"\x00\xff\xfe garbage")),
            ("empty", Some(b"")),
            ("missing", None),
        ];
        let mut damaged_ids = Vec::new();
        for (_, content) in cases {
            let id = ccmp_core::TaskId::new();
            let task_dir = store.task_dir(&id);
            std::fs::create_dir_all(&task_dir).unwrap();
            if let Some(content) = content {
                std::fs::write(task_dir.join("record.json"), content).unwrap();
            }
            damaged_ids.push(id);
            let err = store.load(&id).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::Damaged { .. }), "{msg}");
            assert!(msg.contains("damaged") && msg.contains("cleanup"), "{msg}");
        }
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 5);
        let ok: Vec<_> = listed.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].id, good.id);
        assert_eq!(store.load(&good.id).unwrap(), good);
        // Damaged tasks can still be resolved and removed.
        for id in damaged_ids {
            assert_eq!(store.resolve(&id.short()).unwrap(), id);
            store.remove(&id).unwrap();
        }
        assert_eq!(store.list().unwrap().len(), 1);
    }

    /// The entry of `id` in the index of finished tasks, if any.
    fn index_entry(dir: &std::path::Path, id: &ccmp_core::TaskId) -> Option<std::path::PathBuf> {
        std::fs::read_dir(dir.join("finished"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains(&id.simple()))
    }

    /// Listing every task reads names, not records: finished tasks come from the index of
    /// finished tasks (one name each, with creation time, state and group), checked against
    /// the task dirs; the index heals what a crash, a cut-short cleanup or an older ccmp left.
    #[test]
    fn every_task_is_listed_from_the_finished_index_which_heals_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let mut done = Vec::new();
        for i in 0..5 {
            let mut r = record(&format!("task {i}"));
            store.create(&r).unwrap();
            r.finish(TaskStatus::Succeeded, ccmp_core::Outcome::default());
            store.save(&r).unwrap();
            assert!(index_entry(dir.path(), &r.id).is_some(), "not indexed");
            done.push(r);
        }
        let live = record("live");
        store.create(&live).unwrap();
        assert!(index_entry(dir.path(), &live.id).is_none());
        let listed = |store: &FsStore| -> Vec<ccmp_core::TaskHeader> {
            let mut headers: Vec<_> = store
                .headers(false)
                .unwrap()
                .into_iter()
                .map(|h| h.expect("no damaged task"))
                .collect();
            headers.sort_by_key(|h| h.created_at);
            headers
        };
        let headers = listed(&store);
        assert_eq!(headers.len(), 6);
        assert_eq!(headers[0].id, done[0].id);
        assert_eq!(headers[0].created_at, done[0].created_at);
        assert_eq!(headers[0].group.as_ref().unwrap().as_str(), "default");
        assert_eq!(headers[5].status, TaskStatus::Queued);

        // Names, not records: a finished task's record is not opened to list it (a damaged one
        // is reported when its page is loaded or the task is looked at).
        std::fs::write(store.task_dir(&done[0].id).join("record.json"), b"garbage").unwrap();
        assert_eq!(listed(&store)[0].status, TaskStatus::Succeeded);
        assert!(store.load(&done[0].id).is_err());

        // An entry lost (a crash between the record and the entry, or an older ccmp) comes back
        // from the record.
        std::fs::remove_file(index_entry(dir.path(), &done[1].id).unwrap()).unwrap();
        assert_eq!(listed(&store).len(), 6);
        assert!(
            index_entry(dir.path(), &done[1].id).is_some(),
            "not re-indexed"
        );

        // An entry whose task dir is gone (a cleanup cut short) is dropped and not counted.
        std::fs::remove_dir_all(store.task_dir(&done[2].id)).unwrap();
        assert_eq!(listed(&store).len(), 5);
        assert!(index_entry(dir.path(), &done[2].id).is_none());

        // Removing a task removes its entry; a task that ends is indexed as it ends.
        store.remove(&done[3].id).unwrap();
        assert!(index_entry(dir.path(), &done[3].id).is_none());
        let mut live = live;
        live.finish(TaskStatus::Cancelled, ccmp_core::Outcome::failure("stop"));
        store.save(&live).unwrap();
        let headers = listed(&store);
        assert_eq!(headers.len(), 4);
        assert!(headers.iter().all(|h| h.status.is_terminal()));
        assert!(
            index_entry(dir.path(), &live.id)
                .unwrap()
                .to_string_lossy()
                .contains(".cancelled.default")
        );
    }

    #[test]
    fn live_tasks_are_listed_from_markers_and_stale_markers_are_tidied() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let mut r = record("x");
        store.create(&r).unwrap();
        let marker = dir.path().join("active").join(r.id.simple());
        assert!(marker.exists());
        r.status = TaskStatus::Failed;
        store.save(&r).unwrap();
        assert!(!marker.exists(), "a terminal task keeps its active marker");
        // A marker left behind (as by a crash between the two writes) is tidied by the next look.
        std::fs::write(&marker, "").unwrap();
        assert!(store.headers(true).unwrap().is_empty());
        assert!(!marker.exists());
    }

    #[test]
    fn a_state_dir_other_users_control_is_refused() {
        use std::os::unix::fs::{PermissionsExt, chown, lchown, symlink};
        let dir = tempfile::tempdir().unwrap();
        let open_err = |path: &std::path::Path| FsStore::open(path).unwrap_err().to_string();
        // Writable by everyone.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open_err(&shared);
        assert!(
            err.contains("other users can write") && err.contains("chmod 700"),
            "{err}"
        );
        assert!(
            !shared.join("tasks").exists(),
            "an unsafe state dir was written to"
        );
        // A shared dir like /tmp (sticky, writable by all) must not be advised to be chmod'ed.
        let sticky = dir.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = open_err(&sticky);
        assert!(
            err.contains("shared directory") && !err.contains("chmod"),
            "{err}"
        );
        // Owned by someone else (root can hand it over).
        if rustix::process::geteuid().is_root() {
            let theirs = dir.path().join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            chown(&theirs, Some(65534), Some(65534)).unwrap();
            let err = open_err(&theirs);
            assert!(err.contains("owned by another user"), "{err}");
            // A symlink someone else planted, even to a fine directory.
            let mine = dir.path().join("mine");
            FsStore::open(&mine).unwrap();
            let link = dir.path().join("link");
            symlink(&mine, &link).unwrap();
            lchown(&link, Some(65534), Some(65534)).unwrap();
            let err = open_err(&link);
            assert!(err.contains("symlink owned by another user"), "{err}");
        }
    }

    #[test]
    fn a_symlink_planted_where_a_log_goes_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path().join("state")).unwrap();
        let r = record("x");
        store.create(&r).unwrap();
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, store.task_dir(&r.id).join("stdout.jsonl")).unwrap();
        assert!(
            store
                .log_writer(&r.id, ccmp_core::LogStream::Stdout)
                .is_err()
        );
        assert!(!target.exists(), "the planted symlink was followed");
    }

    #[test]
    fn a_bad_state_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = FsStore::open(&file).unwrap_err();
        assert!(matches!(err, StoreError::StateDirNotDir { .. }));
        assert!(err.to_string().contains("CCMP_STATE_DIR"), "{err}");
        let err = FsStore::open(file.join("sub")).unwrap_err();
        assert!(
            matches!(err, StoreError::StateDirUnwritable { .. }),
            "{err}"
        );
        // /proc does not accept new directories, even for root.
        let err = FsStore::open("/proc/ccmp-state").unwrap_err();
        assert!(
            matches!(err, StoreError::StateDirUnwritable { .. }),
            "{err}"
        );
        assert!(!std::path::Path::new("/proc/ccmp-state").exists());
    }

    #[test]
    fn a_record_from_a_newer_ccmp_is_reported_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let r = record("x");
        store.create(&r).unwrap();
        let path = store.task_dir(&r.id).join("record.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        json["schema"] = (ccmp_core::SCHEMA_VERSION + 1).into();
        std::fs::write(&path, json.to_string()).unwrap();
        let msg = store.load(&r.id).unwrap_err().to_string();
        assert!(msg.contains("newer ccmp"), "{msg}");
    }

    fn mkfifo(path: &std::path::Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    /// Runs `f` on a thread and fails the test if it does not return within 10 s (a blocking
    /// open of a FIFO never returns).
    fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the store blocked on a file that is not a regular file")
    }

    /// A symlink or a FIFO planted in a task dir is refused, never followed or opened: the task
    /// is reported as damaged, a log read fails, and nothing blocks.
    #[test]
    fn planted_symlinks_and_fifos_are_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path().join("state")).unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "TOP-SECRET").unwrap();
        let good = record("x");
        store.create(&good).unwrap();
        let task_dir = store.task_dir(&good.id);
        std::os::unix::fs::symlink(&secret, task_dir.join("transcript.log")).unwrap();
        mkfifo(&task_dir.join("stderr.log"));
        let mut bad = Vec::new();
        for plant in ["symlink", "fifo"] {
            let id = ccmp_core::TaskId::new();
            let task_dir = store.task_dir(&id);
            std::fs::create_dir_all(&task_dir).unwrap();
            let path = task_dir.join("record.json");
            match plant {
                "symlink" => std::os::unix::fs::symlink(&secret, &path).unwrap(),
                _ => mkfifo(&path),
            }
            bad.push(id);
        }
        let all = ccmp_core::LogRange::from_start();
        let (store2, good_id) = (store.clone(), good.id);
        let (transcript, stderr) = within_deadline(move || {
            (
                store2.read_log(&good_id, ccmp_core::LogStream::Transcript, all),
                store2.read_log(&good_id, ccmp_core::LogStream::Stderr, all),
            )
        });
        for result in [transcript, stderr] {
            let err = result.unwrap_err();
            let chain = format!("{:?}", anyhow_like(&err));
            assert!(!chain.contains("TOP-SECRET"), "{chain}");
            assert!(chain.contains("not a regular file"), "{chain}");
        }
        for id in bad {
            let store2 = store.clone();
            let err = within_deadline(move || store2.load(&id)).unwrap_err();
            assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        let store2 = store.clone();
        let (listed, headers) =
            within_deadline(move || (store2.list().unwrap(), store2.headers(false).unwrap()));
        assert_eq!(listed.iter().filter(|e| e.is_err()).count(), 2);
        assert_eq!(headers.iter().filter(|e| e.is_err()).count(), 2);
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "TOP-SECRET");
    }

    /// An error with its causes, as one string.
    fn anyhow_like(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// Makes `dir` look as old as `age`.
    fn age(dir: &std::path::Path, age: std::time::Duration) {
        std::fs::File::open(dir)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - age)
            .unwrap();
    }

    #[test]
    fn what_a_killed_create_or_cleanup_left_is_tidied_and_nothing_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path().join("state")).unwrap();
        let kept = record("kept");
        store.create(&kept).unwrap();
        let tasks = store.root().join("tasks");
        let litter = |name: &str| {
            let path = tasks.join(name);
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("record.json"), "{}").unwrap();
            std::fs::write(path.join("stdout.jsonl"), "x".repeat(10_000)).unwrap();
            path
        };
        let two_minutes = std::time::Duration::from_secs(120);
        // A create killed after making its staging dir, and one still at work.
        let abandoned_staging = litter(".new-abandoned");
        age(&abandoned_staging, two_minutes);
        let young_staging = litter(".new-young");
        // A cleanup killed mid-delete, and one still deleting (it holds the lock).
        let abandoned_trash = litter(".trash-abandoned");
        let busy_trash = litter(".trash-busy");
        age(&busy_trash, two_minutes);
        let busy = std::fs::File::open(&busy_trash).unwrap();
        busy.lock().unwrap();
        // Not ours: a symlink with a litter name is left, and so is what it points to.
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("precious"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tasks.join(".trash-link")).unwrap();

        let listed = store.headers(true).unwrap();
        assert_eq!(listed.len(), 1);
        let exists = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok();
        assert!(!exists(&abandoned_staging) && !exists(&abandoned_trash));
        assert!(exists(&young_staging) && exists(&busy_trash));
        assert!(exists(&tasks.join(".trash-link")) && outside.join("precious").exists());

        drop(busy);
        store.remove(&kept.id).unwrap();
        assert!(
            !exists(&busy_trash),
            "a cleanup tidies too, once the lock is free"
        );
        assert!(exists(&young_staging));
    }

    #[test]
    fn a_task_dir_is_never_on_disk_without_its_active_marker() {
        // A create killed between putting the task dir in place and marking it active left a
        // queued task that the default listing never showed. Watch creates for that window.
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path().join("state")).unwrap();
        let root = store.root().to_owned();
        let done = std::sync::atomic::AtomicBool::new(false);
        let unmarked = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                let mut unmarked = BTreeSet::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    for shard in std::fs::read_dir(root.join("tasks")).unwrap().flatten() {
                        for task in std::fs::read_dir(shard.path())
                            .into_iter()
                            .flatten()
                            .flatten()
                        {
                            let name = task.file_name();
                            let is_task = name.len() == 32 && shard.file_name().len() == 2;
                            if is_task && !root.join("active").join(&name).exists() {
                                unmarked.insert(name);
                            }
                        }
                    }
                }
                unmarked
            });
            for i in 0..100 {
                store.create(&record(&format!("task {i}"))).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            watcher.join().unwrap()
        });
        assert_eq!(unmarked, BTreeSet::new());
    }
}
