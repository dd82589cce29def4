//! Where a group's tasks run their agent: on this machine (`local`, the default) or as Slurm
//! batch jobs (`slurm`), a setting of the group (`ccmp group add cluster --executor slurm …`).
//!
//! The executor only decides where each run of the agent happens. Everything around it stays
//! with the task's runner on the machine that started the task: the queue and group limits,
//! dependencies, parking on usage limits, retries, approvals and budgets. See
//! `docs/design/executors.md`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, escape};

/// Where a group's tasks run their agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Executor {
    /// A child of the task's runner on this machine.
    #[default]
    Local,
    /// A Slurm batch job, submitted with `sbatch` when the task's turn in the queue comes.
    Slurm(SlurmOptions),
}

impl Executor {
    /// Whether this is the default, `local`.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local)
    }

    /// The executor's name, as `--executor` takes it: `local` or `slurm`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Slurm(_) => "slurm",
        }
    }
}

impl fmt::Display for Executor {
    /// `local`, or `slurm` with its options: `slurm (partition debug, time 0:30)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Slurm(options) if options == &SlurmOptions::default() => f.write_str("slurm"),
            Self::Slurm(options) => write!(f, "slurm ({options})"),
        }
    }
}

/// The Slurm options of a group, passed to `sbatch` for each of its jobs. Every one is optional:
/// what is not given is the cluster's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct SlurmOptions {
    /// `--partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--time`: a Slurm time limit (`30`, `1:30:00`, `2-00:00:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<String>,
    /// `--cpus-per-task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `--mem`: memory per node (`4G`, `500M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// `--account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// The most CPUs `--cpus` takes.
pub const MAX_SLURM_CPUS: u32 = 4096;

impl SlurmOptions {
    /// Checks every option, naming the flag (`--partition`, `--time`, …) of the first that is
    /// wrong and what it takes. Options go to `sbatch` as arguments of their own (never through
    /// a shell), but one starting with `-` would read as another flag, so the characters are
    /// restricted to what Slurm names and values use.
    pub fn check(&self) -> Result<(), Error> {
        let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ',');
        let bad = |flag: &str, value: &str, takes: &str| {
            Error::InvalidArgument(format!("--{flag} `{}`: {takes}", escape(value)))
        };
        for (flag, value) in [("partition", &self.partition), ("account", &self.account)] {
            if let Some(v) = value
                && (v.is_empty() || v.len() > 64 || v.starts_with('-') || !v.chars().all(name_like))
            {
                return Err(bad(
                    flag,
                    v,
                    "a Slurm name is 1 to 64 letters, digits, `_`, `-`, `.` (a list with `,`), not starting with `-`",
                ));
            }
        }
        if let Some(v) = &self.time_limit
            && !is_time_limit(v)
        {
            return Err(bad(
                "time",
                v,
                "a Slurm time limit is minutes (`30`), `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`",
            ));
        }
        if let Some(cpus) = self.cpus
            && !(1..=MAX_SLURM_CPUS).contains(&cpus)
        {
            return Err(bad(
                "cpus",
                &cpus.to_string(),
                &format!("CPUs per task are 1 to {MAX_SLURM_CPUS}"),
            ));
        }
        if let Some(v) = &self.memory
            && !is_memory(v)
        {
            return Err(bad(
                "mem",
                v,
                "memory is a whole number with an optional unit K, M, G or T (`500M`, `4G`; megabytes without one)",
            ));
        }
        Ok(())
    }

    /// The `sbatch` arguments these options stand for.
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(format!("--{flag}={v}"));
            }
        };
        push("partition", self.partition.clone());
        push("time", self.time_limit.clone());
        push("cpus-per-task", self.cpus.map(|n| n.to_string()));
        push("mem", self.memory.clone());
        push("account", self.account.clone());
        args
    }
}

impl fmt::Display for SlurmOptions {
    /// `partition debug, time 0:30, cpus 2, mem 4G, account lab`: only what is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            ("partition", self.partition.clone()),
            ("time", self.time_limit.clone()),
            ("cpus", self.cpus.map(|n| n.to_string())),
            ("mem", self.memory.clone()),
            ("account", self.account.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name} {v}")))
        .collect();
        f.write_str(&parts.join(", "))
    }
}

/// `minutes`, `minutes:seconds`, `hours:minutes:seconds`, `days-hours`,
/// `days-hours:minutes`, `days-hours:minutes:seconds`, or `UNLIMITED`/`INFINITE`.
fn is_time_limit(v: &str) -> bool {
    if matches!(v, "UNLIMITED" | "INFINITE") {
        return true;
    }
    let numbers = |s: &str, most: usize| {
        let parts: Vec<&str> = s.split(':').collect();
        parts.len() <= most
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit()))
    };
    match v.split_once('-') {
        Some((days, rest)) => numbers(days, 1) && numbers(rest, 3),
        None => numbers(v, 3),
    }
}

fn is_memory(v: &str) -> bool {
    let digits = v.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(v);
    !digits.is_empty() && digits.len() <= 12 && digits.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SlurmOptions {
        SlurmOptions {
            partition: Some("gpu".into()),
            time_limit: Some("1:30:00".into()),
            cpus: Some(4),
            memory: Some("8G".into()),
            account: Some("lab-7".into()),
        }
    }

    #[test]
    fn options_become_sbatch_arguments_and_words() {
        let o = options();
        o.check().unwrap();
        assert_eq!(
            o.sbatch_args(),
            [
                "--partition=gpu",
                "--time=1:30:00",
                "--cpus-per-task=4",
                "--mem=8G",
                "--account=lab-7"
            ]
        );
        assert_eq!(
            Executor::Slurm(o).to_string(),
            "slurm (partition gpu, time 1:30:00, cpus 4, mem 8G, account lab-7)"
        );
        assert_eq!(
            Executor::Slurm(SlurmOptions::default()).to_string(),
            "slurm"
        );
        assert!(SlurmOptions::default().sbatch_args().is_empty());
    }

    #[test]
    fn every_slurm_time_form_is_taken_and_nothing_else() {
        for good in [
            "30",
            "0:30",
            "1:30:00",
            "2-12",
            "2-12:30",
            "2-12:30:00",
            "UNLIMITED",
        ] {
            assert!(is_time_limit(good), "{good}");
        }
        for bad in ["", "1h", "-5", "1:2:3:4", "1-", "a-1", "1::2", "--wrap=x"] {
            assert!(!is_time_limit(bad), "{bad}");
        }
    }

    #[test]
    fn a_bad_option_is_refused_naming_its_flag() {
        let cases = [
            (
                SlurmOptions {
                    partition: Some("--wrap=rm".into()),
                    ..SlurmOptions::default()
                },
                "--partition",
            ),
            (
                SlurmOptions {
                    time_limit: Some("1h".into()),
                    ..SlurmOptions::default()
                },
                "--time",
            ),
            (
                SlurmOptions {
                    cpus: Some(0),
                    ..SlurmOptions::default()
                },
                "--cpus",
            ),
            (
                SlurmOptions {
                    memory: Some("lots".into()),
                    ..SlurmOptions::default()
                },
                "--mem",
            ),
            (
                SlurmOptions {
                    account: Some("a b".into()),
                    ..SlurmOptions::default()
                },
                "--account",
            ),
        ];
        for (options, flag) in cases {
            let e = options.check().unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[test]
    fn executors_are_stored_by_kind() {
        let json = serde_json::to_value(Executor::Slurm(SlurmOptions {
            partition: Some("debug".into()),
            ..SlurmOptions::default()
        }))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "slurm", "partition": "debug"})
        );
        let back: Executor = serde_json::from_value(json).unwrap();
        assert_eq!(back.name(), "slurm");
        let local: Executor = serde_json::from_value(serde_json::json!({"kind": "local"})).unwrap();
        assert!(local.is_local());
    }
}
