//! Approvals from the terminal: the machine-wide default rules, and bad rules. (The flow itself,
//! which needs Claude Code's hooks, is proven with the real CLI in the end-to-end tier.)

use ccmp_tests::Sandbox;
use predicates::prelude::*;

use crate::ccmp;

#[test]
fn tasks_without_their_own_rules_take_the_machine_wide_ones() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["settings", "ask=Bash(git push:*),Write"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "ask                  Bash(git push:*),Write",
        ));
    let default = crate::start(&sandbox, "FAKE_SLEEP=0 x");
    let own = String::from_utf8(
        ccmp(&sandbox)
            .args(["start", "--ask", "Edit", "FAKE_SLEEP=0 y"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap()
    .trim()
    .to_owned();
    assert_eq!(
        sandbox.stored_record(&crate::full_id(&sandbox, &default))["spec"]["agent"]["claude"]["ask"],
        serde_json::json!(["Bash(git push:*)", "Write"])
    );
    assert_eq!(
        sandbox.stored_record(&crate::full_id(&sandbox, &own))["spec"]["agent"]["claude"]["ask"],
        serde_json::json!(["Edit"])
    );
    ccmp(&sandbox)
        .args(["settings", "ask=none"])
        .assert()
        .success();
    let none = crate::start(&sandbox, "FAKE_SLEEP=0 z");
    assert!(
        sandbox.stored_record(&crate::full_id(&sandbox, &none))["spec"]["agent"]["claude"]["ask"]
            .is_null()
    );
}

#[test]
fn bad_rules_are_refused_and_change_nothing() {
    let sandbox = Sandbox::new();
    ccmp(&sandbox)
        .args(["start", "--ask", "Bash(git push", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ask `Bash(git push` is not valid"));
    ccmp(&sandbox)
        .args(["settings", "ask=Bash("])
        .assert()
        .code(2);
    ccmp(&sandbox).args(["approve", "ffff"]).assert().code(3);
    ccmp(&sandbox)
        .args(["list", "--all", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"total\": 0"));
}
