//! `ccmp-exec-agent`: the small program ccmp's task runners start agents through. It arms the
//! parent-death signal, enters the task's cgroup and execs the agent (see
//! [`ccmp_core::exec_agent_main`]). Runners find it beside their own binary and fall back to
//! `ccmp __ccmp-exec-agent` without it; it only saves the second load of the big binary.

fn main() -> std::process::ExitCode {
    ccmp_core::exec_agent_main()
}
