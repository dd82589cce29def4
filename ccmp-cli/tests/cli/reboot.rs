//! What a reboot does to queued tasks: every runner dies with the machine, so each task it ran
//! or held in line is `lost`, with a reason that says the machine restarted and that nothing
//! starts it again; what the dead runners left in the queue holds back no new task. A task
//! parked on a usage limit is taken up again instead.

use std::time::Duration;

use ccmp_tests::{Sandbox, poll};

use crate::{ccmp, full_id, kill_runner, pretend_rebooted, status_json, until_state};

#[test]
fn after_a_reboot_waiting_tasks_are_lost_with_the_reason_and_new_tasks_run() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox).arg("pause").assert().success();
    let start = |args: &[&str]| {
        let out = ccmp(&sandbox).arg("start").args(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone())
            .unwrap()
            .trim()
            .to_owned()
    };
    // One task waits in line (paused), one waits for it.
    let in_line = start(&["waits in line"]);
    let behind = start(&["--after", &in_line, "waits for the first"]);
    crate::until_progress(&sandbox, &in_line, "paused");
    crate::until_progress(&sandbox, &behind, "waiting for");
    // The machine goes down: the runners die, and the machine comes back with a new boot id.
    // (The waiting one first, so that it does not see the first one die and act on it.)
    // (Ids are read first: a status would notice a dead runner before the reboot is faked.)
    let ids = [full_id(&sandbox, &behind), full_id(&sandbox, &in_line)];
    for id in &ids {
        kill_runner(&sandbox, id);
        pretend_rebooted(&sandbox, id);
    }
    for id in [&in_line, &behind] {
        let view = until_state(&sandbox, id, "lost");
        assert_eq!(
            view["error"],
            "the machine restarted while the task was queued; it never started. Start it again"
        );
    }
    // What the dead runners left in the queue does not hold a new task back.
    ccmp(&sandbox).arg("resume").assert().success();
    let fresh = start(&["FAKE_SLEEP=0"]);
    until_state(&sandbox, &fresh, "succeeded");
}

#[test]
fn a_task_parked_on_a_usage_limit_survives_a_reboot_and_resumes() {
    let sandbox = Sandbox::new();
    let out = ccmp(&sandbox)
        .args([
            "start",
            "-e",
            "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-dummy",
            "-e",
            "FAKE_USAGE_LIMIT=3",
            "work",
        ])
        .assert()
        .success();
    let id = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    poll(Duration::from_secs(30), "the task to park", || {
        (status_json(&sandbox, &id)["status"] == "parked").then_some(())
    });
    let full = full_id(&sandbox, &id);
    kill_runner(&sandbox, &full);
    pretend_rebooted(&sandbox, &full);
    // The next command takes it up: still parked, then done after the reset.
    assert_eq!(status_json(&sandbox, &id)["status"], "parked");
    poll(
        Duration::from_secs(60),
        "the task to resume and succeed",
        || (status_json(&sandbox, &id)["status"] == "succeeded").then_some(()),
    );
}
