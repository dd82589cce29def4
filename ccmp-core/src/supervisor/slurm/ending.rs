//! How a task ends when its Slurm job ended without ccmp's process in the job recording an
//! outcome: Slurm's own view of the job decides, with the reason in words.

use super::client::JobInfo;
use crate::task::TaskStatus;

/// The terminal state and the error for a task whose job `job_id` ended as `info` (or is no
/// longer known to Slurm: `None`) with no outcome recorded. `asked_to_cancel`: a ccmp cancel
/// marker is there. `log` is where the job's output went.
pub(crate) fn judge(
    job_id: u64,
    info: Option<&JobInfo>,
    asked_to_cancel: bool,
    log: &std::path::Path,
) -> (TaskStatus, String) {
    let log = log.display();
    let Some(info) = info else {
        return (
            TaskStatus::Lost,
            format!(
                "Slurm no longer knows job {job_id}, and it recorded no outcome (it ended long ago, or the cluster lost it); its output: {log}"
            ),
        );
    };
    let node = info
        .node
        .as_deref()
        .map_or(String::new(), |n| format!(" on node {n}"));
    match info.state.as_str() {
        "CANCELLED" if asked_to_cancel => (
            TaskStatus::Cancelled,
            format!("cancelled on request (Slurm job {job_id} was cancelled{node})"),
        ),
        // ccmp was cancelling it, and its process in the job was stopped before it could record
        // so (signalled just as it started).
        state @ ("COMPLETED" | "FAILED") if asked_to_cancel => (
            TaskStatus::Cancelled,
            format!(
                "cancelled on request (Slurm job {job_id} ended {state}{node} as it was starting)"
            ),
        ),
        "CANCELLED" => (
            TaskStatus::Cancelled,
            format!(
                "Slurm cancelled job {job_id}{node}: scancel from outside ccmp, or an administrator"
            ),
        ),
        "TIMEOUT" | "DEADLINE" => (
            TaskStatus::TimedOut,
            format!(
                "Slurm job {job_id} reached its time limit{node} and was stopped (raise the group's --time)"
            ),
        ),
        "OUT_OF_MEMORY" => (
            TaskStatus::Failed,
            format!(
                "Slurm job {job_id} ran out of memory{node} and was killed (raise the group's --mem)"
            ),
        ),
        "NODE_FAIL" => (
            TaskStatus::Lost,
            format!(
                "the node running Slurm job {job_id} failed{node}; the agent was stopped with it. Start the task again"
            ),
        ),
        "PREEMPTED" => (
            TaskStatus::Lost,
            format!(
                "Slurm preempted job {job_id}{node} for other work; the agent was stopped. Start the task again"
            ),
        ),
        "BOOT_FAIL" => (
            TaskStatus::Lost,
            format!("the node for Slurm job {job_id} failed to boot{node}. Start the task again"),
        ),
        state => (
            TaskStatus::Lost,
            format!(
                "Slurm job {job_id} ended ({state}){node} without ccmp recording an outcome: its process in the job was killed or could not start; its output: {log}"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(state: &str) -> JobInfo {
        JobInfo {
            state: state.into(),
            node: Some("n1".into()),
            reason: None,
        }
    }

    #[test]
    fn slurm_endings_map_to_task_states_with_the_reason() {
        let log = std::path::Path::new("/s/slurm-job.log");
        let cases = [
            ("CANCELLED", true, TaskStatus::Cancelled, "on request"),
            ("CANCELLED", false, TaskStatus::Cancelled, "outside ccmp"),
            ("TIMEOUT", false, TaskStatus::TimedOut, "--time"),
            ("OUT_OF_MEMORY", false, TaskStatus::Failed, "--mem"),
            ("NODE_FAIL", false, TaskStatus::Lost, "node"),
            ("PREEMPTED", false, TaskStatus::Lost, "preempted"),
            ("FAILED", false, TaskStatus::Lost, "/s/slurm-job.log"),
            // Cancelled by ccmp just as ccmp's process in the job started, before it could say.
            ("FAILED", true, TaskStatus::Cancelled, "on request"),
            ("COMPLETED", true, TaskStatus::Cancelled, "on request"),
        ];
        for (state, asked, status, says) in cases {
            let (got, why) = judge(7, Some(&ended(state)), asked, log);
            assert_eq!(got, status, "{state}");
            assert!(
                why.contains(says) && why.contains("job 7"),
                "{state}: {why}"
            );
        }
        let (got, why) = judge(7, None, false, log);
        assert_eq!(got, TaskStatus::Lost);
        assert!(why.contains("no longer knows job 7"), "{why}");
    }
}
