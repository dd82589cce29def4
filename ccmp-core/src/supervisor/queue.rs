//! The machine-wide queue: at most `max_parallel` agents run at once across every process that
//! shares a state dir, and waiting tasks start first in, first out. The limit is the setting in
//! the state dir (see [`crate::settings`]), read at every look, so a change holds at once.
//!
//! There is no daemon to hand out turns, so the queue lives in the file system:
//!
//! * a slot is an exclusive `flock` on `<state>/slots/<n>.lock`, held by a runner while its
//!   agent runs; the kernel drops it when the runner exits, even by kill -9;
//! * a waiting runner owns an entry `<state>/queue/<created-at-ns>-<id>`; entries sort in
//!   creation order;
//! * slots are only taken while holding `<state>/queue.lock`, by the waiter whose position in
//!   the queue is below the number of free slots. Entries of runners that died are removed by
//!   whoever finds them (a live runner holds its task's `runner.lock`).
//!
//! Waiting costs no CPU and no inotify instance per waiter, however long the line: a waiter
//! holds an `flock` on its own entry, and the one behind it sleeps in a blocking `flock` on
//! that entry, which the kernel grants the moment the waiter ahead leaves the line (it took a
//! slot, gave up, or died). Only the head of the line watches the slots (inotify on the queue
//! dir, where a freed slot is announced; a one-second look as well, since a runner killed with
//! kill -9 announces nothing). Each waiter that wakes either takes a slot or becomes the head.

use std::collections::HashMap;
use std::fs::{self, File, TryLockError};
use std::future::Future;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::budget;
use crate::config::DEFAULT_MAX_PARALLEL;
use crate::group::GroupName;
use crate::id::TaskId;
use crate::layout::StateLayout;
use crate::private_file::{self, open_lock};
use crate::settings::Settings;
use crate::store::{DirWatch, FsStore, TaskStore};
use crate::task::TaskRecord;
use crate::usage_limit;

/// How soon to try again when another waiter holds the queue lock for a moment.
const RETRY: Duration = Duration::from_millis(5);
/// How often the head of the line looks without being woken: a runner killed with kill -9 frees
/// its slot without telling anyone.
const FALLBACK: Duration = Duration::from_millis(1000);
/// How often the head of the line looks when inotify is not available.
const POLL: Duration = Duration::from_millis(50);

/// How often a waiter behind others looks anyway, in case the one it waits on is alive but
/// never moves (a stopped runner): soon near the head, rarely far back.
const NEAR_HEAD_CHECK: Duration = Duration::from_secs(2);
const FAR_BACK_CHECK: Duration = Duration::from_secs(30);

/// What one attempt found.
enum Turn {
    /// A slot, taken.
    Taken(Slot),
    /// Another waiter holds the queue lock for a moment.
    Busy,
    /// No slot yet: this many waiters of the same group are ahead, the nearest being
    /// `next_ahead`; `why` says why in words (for the task's progress).
    Wait {
        ahead: usize,
        next_ahead: Option<String>,
        why: String,
    },
}

/// A held slot. Dropping it frees the slot and wakes the waiting runners.
#[derive(Debug)]
pub(crate) struct Slot {
    lock: File,
    layout: StateLayout,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.lock.unlock();
        poke(&self.layout);
    }
}

/// A waiter's entry in the line: `<created-at-ns>-<task id>-<group>.<login>`. Names sort in
/// creation order; the group and the login (see [`usage_limit`]) are in the name so that a
/// look needs no more than the directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    id: Option<TaskId>,
    group: GroupName,
    login: String,
}

impl Entry {
    fn new(record: &TaskRecord) -> Self {
        let nanos = record
            .created_at
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .max(0);
        let login = usage_limit::login_key(&record.spec);
        Self {
            name: format!(
                "{nanos:020}-{}-{}.{login}",
                record.id.simple(),
                record.spec.group
            ),
            id: Some(record.id),
            group: record.spec.group.clone(),
            login,
        }
    }

    /// Reads an entry's name. Entries of runners from before groups have no group part: they
    /// are in `default`.
    fn parse(name: String) -> Self {
        let rest = name.split_once('-').map_or("", |(_, rest)| rest);
        let (id, group) = rest.split_once('-').unwrap_or((rest, ""));
        let (group, login) = group.split_once('.').unwrap_or((group, ""));
        Self {
            id: id.parse().ok(),
            group: group.parse().unwrap_or_default(),
            login: login.to_owned(),
            name,
        }
    }
}

/// What holds the slots now: how many in all and how many per group.
#[derive(Debug, Default)]
struct Running {
    total: usize,
    by_group: HashMap<GroupName, usize>,
}

impl Running {
    fn in_group(&self, group: &GroupName) -> usize {
        self.by_group.get(group).copied().unwrap_or(0)
    }
}

/// The limits that hold for a look.
struct Limits {
    machine: usize,
    paused: bool,
    settings: Option<Settings>,
}

impl Limits {
    fn group(&self, group: &GroupName) -> (Option<usize>, bool) {
        self.settings
            .as_ref()
            .and_then(|s| s.group(group))
            .map_or((None, false), |g| {
                (g.max_parallel.map(|n| n.max(1)), g.paused)
            })
    }

    /// Whether `group`'s agents run elsewhere (a Slurm group): its tasks take slots of their
    /// own, held back by the group's limit only, and take none of the machine's.
    fn runs_elsewhere(&self, group: &GroupName) -> bool {
        self.settings
            .as_ref()
            .is_some_and(|s| !s.executor(group).is_local())
    }

    /// Whether a task of `group` may take a slot now, as far as its group is concerned.
    fn group_has_room(&self, group: &GroupName, running: &Running) -> bool {
        let (limit, paused) = self.group(group);
        !paused && limit.is_none_or(|limit| running.in_group(group) < limit)
    }

    /// Whether any budget is set (only then is the ledger read).
    fn has_budgets(&self) -> bool {
        self.settings
            .as_ref()
            .is_some_and(|s| s.budget.is_some() || s.groups.values().any(|g| g.budget.is_some()))
    }

    /// Why a task of `group` that would reserve `amount` may not start for want of budget.
    fn over_budget(&self, ledger: &Ledger, group: &GroupName, amount: f64) -> Option<String> {
        let settings = self.settings.as_ref()?;
        if let Some(b) = settings.group(group).and_then(|g| g.budget) {
            let counted = budget::counted(ledger, &b, Some(group));
            if counted + amount > b.limit_usd + 1e-9 {
                return Some(format!(
                    "budget of {} for group {group} spent: ${counted:.2} with what running tasks reserved; it starts when the budget allows ({amount:.2} to reserve)",
                    b.describe()
                ));
            }
        }
        if let Some(b) = settings.budget {
            let counted = budget::counted(ledger, &b, None);
            if counted + amount > b.limit_usd + 1e-9 {
                return Some(format!(
                    "machine-wide budget of {} spent: ${counted:.2} with what running tasks reserved; it starts when the budget allows ({amount:.2} to reserve)",
                    b.describe()
                ));
            }
        }
        None
    }

    /// What a task reserves unless it says (`max_budget_usd`).
    fn default_reservation(&self) -> f64 {
        self.settings
            .as_ref()
            .map_or(crate::settings::DEFAULT_RESERVATION_USD, |s| {
                s.budget_reservation_usd
            })
    }
}

type Ledger = std::collections::BTreeMap<chrono::NaiveDate, budget::Day>;

/// "1st", "2nd", "3rd", "4th", … "11th", "12th", "13th", "21st".
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Wakes the runners waiting in `queue_dir` (an inotify close-write event on `.poke`).
pub(crate) fn poke(layout: &StateLayout) {
    let _ = private_file::poke(&layout.queue_poke());
}

/// Tells a waiting runner that the queue changed: an entry left (a runner took a slot or gave
/// up) or a slot was freed (a poke).
struct Watch {
    changed: std::sync::Arc<tokio::sync::Notify>,
    _dir: DirWatch,
}

impl Watch {
    fn new(dir: &Path) -> io::Result<Self> {
        use rustix::fs::inotify::WatchFlags;
        let changed = std::sync::Arc::new(tokio::sync::Notify::new());
        let notify = changed.clone();
        let flags = WatchFlags::DELETE | WatchFlags::CLOSE_WRITE | WatchFlags::MOVED_TO;
        // notify_one stores a permit when nobody waits yet: no change is missed.
        let dir = DirWatch::new([dir], flags, move || notify.notify_one())?;
        Ok(Self { changed, _dir: dir })
    }

    async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// Whether the runner of `id` is alive, judged by its `runner.lock`.
pub(crate) fn runner_alive(store: &FsStore, id: &TaskId) -> bool {
    private_file::is_locked(&store.layout().runner_lock(id))
}

#[derive(Debug)]
struct Queue {
    dir: PathBuf,
    layout: StateLayout,
    lock: File,
    entry: Entry,
    /// What the task reserves against a budget, if it says (its `max_budget_usd`).
    own_reservation: Option<f64>,
    /// Held while this runner waits: the waiter behind sleeps on it.
    _entry_lock: File,
}

impl Queue {
    fn join(store: &FsStore, record: &TaskRecord) -> io::Result<Self> {
        let layout = store.layout().clone();
        let dir = layout.queue();
        let entry = Entry::new(record);
        // Locked before it is renamed into the line, so that every entry there is locked by a
        // live waiter: one whose lock is free belongs to a runner that died.
        let joining = dir.join(format!(".join-{}", entry.name));
        let entry_lock = open_lock(&joining)?;
        entry_lock.lock()?;
        fs::rename(&joining, dir.join(&entry.name)).inspect_err(|_| {
            let _ = fs::remove_file(&joining);
        })?;
        Ok(Self {
            lock: open_lock(&layout.queue_lock())?,
            layout,
            dir,
            entry,
            own_reservation: record.spec.max_budget_usd(),
            _entry_lock: entry_lock,
        })
    }

    /// Leaves the line. The entry goes before its lock is freed (when `self` drops), so the
    /// waiter behind, woken by the lock, finds it gone.
    fn leave(&self) {
        let _ = fs::remove_file(self.dir.join(&self.entry.name));
    }

    /// Whether the waiter of `entry` is alive; if not, its entry is removed.
    fn alive_or_cleared(&self, store: &FsStore, entry: &Entry) -> bool {
        let alive = entry.id.is_some_and(|id| runner_alive(store, &id));
        if !alive {
            let _ = fs::remove_file(self.dir.join(&entry.name));
        }
        alive
    }

    /// One attempt: takes a slot if this runner's turn has come.
    fn try_take(&self, store: &FsStore) -> io::Result<Turn> {
        match self.lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Turn::Busy),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let result = self.take_locked(store);
        let _ = self.lock.unlock();
        result
    }

    /// The limits and pause as they are now (the defaults if none are stored or they cannot
    /// be read).
    fn limits(&self) -> Limits {
        let settings = match Settings::load(&self.layout.settings()) {
            Ok(settings) => settings,
            Err(e) => {
                tracing::warn!("cannot read the settings, using the default limit: {e}");
                None
            }
        };
        Limits {
            machine: settings
                .as_ref()
                .map_or(DEFAULT_MAX_PARALLEL, |s| s.max_parallel.max(1)),
            paused: settings.as_ref().is_some_and(|s| s.paused),
            settings,
        }
    }

    /// The machine-wide limit as it is now.
    fn limit(&self) -> usize {
        self.limits().machine
    }

    /// Under the queue lock: walks the line in order, giving each waiter ahead the slot it
    /// would take (a waiter whose group is full or paused takes none and holds nobody back),
    /// and takes a slot if one is left for this waiter. So FIFO holds within a group, and a
    /// group that cannot start holds up no other group.
    fn take_locked(&self, store: &FsStore) -> io::Result<Turn> {
        let limits = self.limits();
        let mut line: Vec<Entry> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.') && *name < self.entry.name)
            .map(Entry::parse)
            .collect();
        line.sort_by(|a, b| a.name.cmp(&b.name));
        let group = &self.entry.group;
        let same_group: Vec<String> = line
            .iter()
            .filter(|e| e.group == *group)
            .map(|e| e.name.clone())
            .collect();
        if limits.paused {
            return Ok(Self::wait(
                same_group,
                "paused: new tasks start after `ccmp resume`".to_owned(),
            ));
        }
        let (group_limit, group_paused) = limits.group(group);
        if group_paused {
            let why = format!(
                "group {group} paused: its tasks start after `ccmp resume --group {group}`"
            );
            return Ok(Self::wait(same_group, why));
        }
        // A login whose usage limit is reached starts nothing until it resets.
        let holds = usage_limit::holds(&self.layout);
        if let Some(hold) = holds.get(&self.entry.login) {
            let why = format!(
                "{}; queued tasks of that login start after it (hit by task {})",
                hold.describe(),
                hold.task
            );
            return Ok(Self::wait(same_group, why));
        }
        // Budgets: a task reserves when it first starts (not again after a usage limit or a
        // retry), and may start only if every budget it falls under has room for it.
        let ledger: Ledger = if limits.has_budgets() {
            budget::ledger(&self.layout)
        } else {
            Ledger::new()
        };
        let reservation = match self.entry.id {
            Some(id) if limits.has_budgets() && !budget::has_reserved(&ledger, &id) => Some(
                self.own_reservation
                    .unwrap_or_else(|| limits.default_reservation()),
            ),
            _ => None,
        };
        if let Some(amount) = reservation
            && let Some(why) = limits.over_budget(&ledger, group, amount)
        {
            return Ok(Self::wait(same_group, why));
        }
        let default_reservation = limits.default_reservation();
        if limits.runs_elsewhere(group) {
            return self.take_elsewhere(store, &line, same_group, group_limit, &holds, reservation);
        }
        if line.is_empty()
            && group_limit.is_none()
            && let Some(lock) = self.first_free_slot(limits.machine)?
        {
            // Nobody ahead and no group limit: the first free slot is ours, with no count of
            // the others (they would only matter to a waiter ahead or a group's limit).
            return self.take_slot(lock, reservation, group);
        }
        let (mut running, mut free) = self.slots(limits.machine)?;
        let held = running.total;
        let held_in_group = running.in_group(group);
        let mut machine_room = limits.machine.saturating_sub(held);
        for entry in &line {
            if machine_room == 0 {
                break;
            }
            // A waiter of a group that runs elsewhere takes none of the machine's slots.
            if limits.runs_elsewhere(&entry.group) {
                continue;
            }
            let over_budget = limits.has_budgets()
                && limits
                    .over_budget(&ledger, &entry.group, default_reservation)
                    .is_some();
            if !limits.group_has_room(&entry.group, &running)
                || holds.contains_key(&entry.login)
                || over_budget
            {
                continue;
            }
            // This waiter would take a slot before us, if it is alive.
            if !self.alive_or_cleared(store, entry) {
                continue;
            }
            machine_room -= 1;
            running.total += 1;
            *running.by_group.entry(entry.group.clone()).or_default() += 1;
        }
        let same_group: Vec<String> = same_group
            .into_iter()
            .filter(|name| self.dir.join(name).exists())
            .collect();
        let place = ordinal(same_group.len() + 1);
        if let Some(limit) = group_limit
            && running.in_group(group) >= limit
        {
            let why = format!(
                "{place} in line in group {group} ({}/{limit} of the group running)",
                held_in_group.min(limit)
            );
            return Ok(Self::wait(same_group, why));
        }
        if machine_room == 0 || free.is_empty() {
            let why = format!(
                "{place} in line in group {group} ({}/{} running)",
                held.min(limits.machine),
                limits.machine
            );
            return Ok(Self::wait(same_group, why));
        }
        self.take_slot(free.swap_remove(0), reservation, group)
    }

    /// A look by a waiter of a group whose agents run elsewhere (a Slurm group): its slots are
    /// `<state>/slots/<group>/<n>.lock`, held back by the group's limit only (none: no limit).
    /// Waiters ahead in the group take its room first, so FIFO holds within the group.
    fn take_elsewhere(
        &self,
        store: &FsStore,
        line: &[Entry],
        same_group: Vec<String>,
        group_limit: Option<usize>,
        holds: &HashMap<String, usage_limit::Hold>,
        reservation: Option<f64>,
    ) -> io::Result<Turn> {
        let group = &self.entry.group;
        let dir = self.layout.group_slots(group);
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        let existing = fs::read_dir(&dir)?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".lock")?.parse::<usize>().ok()
            })
            .max()
            .map_or(0, |n| n + 1);
        let mut held = 0;
        let mut free = None;
        for n in 0..existing {
            let file = open_lock(&self.layout.group_slot(group, n))?;
            match file.try_lock() {
                Ok(()) if free.is_none() => free = Some(file),
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => held += 1,
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        let ahead = line
            .iter()
            .filter(|e| e.group == *group && !holds.contains_key(&e.login))
            .filter(|e| self.alive_or_cleared(store, e))
            .count();
        let same_group: Vec<String> = same_group
            .into_iter()
            .filter(|name| self.dir.join(name).exists())
            .collect();
        if let Some(limit) = group_limit
            && held + ahead >= limit
        {
            let why = format!(
                "{} in line in group {group} ({}/{limit} of the group running)",
                ordinal(same_group.len() + 1),
                held.min(limit)
            );
            return Ok(Self::wait(same_group, why));
        }
        let lock = match free {
            Some(lock) => lock,
            None => {
                let file = open_lock(&self.layout.group_slot(group, existing))?;
                match file.try_lock() {
                    Ok(()) => file,
                    // Another process made it a moment ago: look again.
                    Err(TryLockError::WouldBlock) => return Ok(Turn::Busy),
                    Err(TryLockError::Error(e)) => return Err(e),
                }
            }
        };
        self.take_slot(lock, reservation, group)
    }

    /// Takes the slot whose lock is held: reserves against budgets, leaves the line, and writes
    /// who holds it.
    fn take_slot(
        &self,
        lock: File,
        reservation: Option<f64>,
        group: &GroupName,
    ) -> io::Result<Turn> {
        if let (Some(amount), Some(id)) = (reservation, self.entry.id) {
            budget::reserve(&self.layout, &id, group, amount)?;
        }
        self.leave();
        // Who holds the slot, for the count of a group's running tasks.
        let _ = lock.set_len(0);
        let holder = self.entry.id.map(|id| id.simple().to_string());
        let holder = format!("{} {group}\n", holder.unwrap_or_default());
        let _ = (&lock).write_all(holder.as_bytes());
        Ok(Turn::Taken(Slot {
            lock,
            layout: self.layout.clone(),
        }))
    }

    /// A free slot below `limit`, locked, found by trying them from a place that depends on the
    /// task (so that tasks starting together do not all try slot 0 first), stopping at the first
    /// free one; `None` if all are held, or if a slot at or above `limit` exists (the limit was
    /// lowered: then only a full count says whether one may start).
    fn first_free_slot(&self, limit: usize) -> io::Result<Option<File>> {
        let above_limit = fs::read_dir(self.layout.slots())?.any(|e| {
            e.ok()
                .and_then(|e| e.file_name().into_string().ok())
                .and_then(|name| name.strip_suffix(".lock")?.parse::<usize>().ok())
                .is_some_and(|n| n >= limit)
        });
        if above_limit {
            return Ok(None);
        }
        let start = self.entry.id.map_or(0, |id| {
            (id.uuid().as_u128() % limit.max(1) as u128) as usize
        });
        for n in (0..limit).map(|i| (start + i) % limit) {
            let file = open_lock(&self.layout.slot(n))?;
            match file.try_lock() {
                Ok(()) => return Ok(Some(file)),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Who holds slots now, and the free slots below `limit`, locked.
    fn slots(&self, limit: usize) -> io::Result<(Running, Vec<File>)> {
        let existing = fs::read_dir(self.layout.slots())?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".lock")?.parse::<usize>().ok()
            })
            .max()
            .map_or(0, |n| n + 1);
        let mut running = Running::default();
        let mut free = Vec::new();
        for n in 0..existing.max(limit) {
            let file = open_lock(&self.layout.slot(n))?;
            match file.try_lock() {
                Ok(()) if n < limit => free.push(file),
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    running.total += 1;
                    *running.by_group.entry(slot_holder(&file).1).or_default() += 1;
                }
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        Ok((running, free))
    }

    /// Not yet: `ahead` are the entries of the same group before this one, in order.
    fn wait(mut ahead: Vec<String>, why: String) -> Turn {
        Turn::Wait {
            ahead: ahead.len(),
            next_ahead: ahead.pop(),
            why,
        }
    }

    /// Resolves once the waiter whose entry is `name` has left the line (its lock is free).
    /// The blocking `flock` runs on a thread of its own, which the process's exit ends if the
    /// wait is abandoned.
    fn left(&self, name: &str) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let path = self.dir.join(name);
        let spawned = std::thread::Builder::new()
            .name("ccmp-queue".into())
            .spawn(move || {
                if let Ok(entry) = private_file::open_read(&path)
                    && entry.lock_shared().is_ok()
                    && path.exists()
                {
                    // Still in the line with its lock free: its runner died. Waiters leave
                    // the line before they let go of the lock.
                    let _ = fs::remove_file(&path);
                }
                let _ = tx.send(());
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot wait on the queue without polling: {e}");
        }
        rx
    }
}

/// Why `record` may not start for want of budget now, if so (for a frontend's reply; the
/// queue decides again when it looks).
pub(crate) fn budget_block(layout: &StateLayout, record: &TaskRecord) -> Option<String> {
    let settings = Settings::load(&layout.settings()).ok().flatten()?;
    let limits = Limits {
        machine: settings.max_parallel,
        paused: settings.paused,
        settings: Some(settings),
    };
    if !limits.has_budgets() {
        return None;
    }
    let ledger = budget::ledger(layout);
    if budget::has_reserved(&ledger, &record.id) {
        return None;
    }
    let amount = record
        .spec
        .max_budget_usd()
        .unwrap_or_else(|| limits.default_reservation());
    limits.over_budget(&ledger, &record.spec.group, amount)
}

/// The task and group holding a slot, from the slot file (written when the slot is taken).
fn slot_holder(mut file: &File) -> (String, GroupName) {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let mut words = text.split_whitespace();
    let id = words.next().unwrap_or_default().to_owned();
    let group = words
        .next()
        .and_then(|g| g.parse().ok())
        .unwrap_or_default();
    (id, group)
}

/// The tasks running now, in all and by group, from the held slots, leaving out `except`
/// (a task asking about its own chances, which may hold a slot already). Looks under the queue
/// lock, so that it never holds a free slot while a waiter looks.
pub(crate) fn running_now(
    layout: &StateLayout,
    except: &TaskId,
) -> io::Result<(usize, HashMap<GroupName, usize>)> {
    let queue_lock = open_lock(&layout.queue_lock())?;
    queue_lock.lock()?;
    let except = except.simple().to_string();
    let mut total = 0;
    let mut by_group: HashMap<GroupName, usize> = HashMap::new();
    // The machine's slots, then those of each group whose agents run elsewhere (which count
    // for their group only).
    let mut dirs = vec![(layout.slots(), true)];
    for entry in fs::read_dir(layout.slots())? {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push((entry.path(), false));
        }
    }
    for (dir, machine) in dirs {
        for entry in fs::read_dir(&dir)? {
            let Ok(entry) = entry else { continue };
            let is_slot = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".lock"));
            if !is_slot {
                continue;
            }
            let file = open_lock(&entry.path())?;
            match file.try_lock() {
                Ok(()) => {
                    let _ = file.unlock();
                }
                Err(TryLockError::WouldBlock) => {
                    let (id, group) = slot_holder(&file);
                    if id != except {
                        total += usize::from(machine);
                        *by_group.entry(group).or_default() += 1;
                    }
                }
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
    }
    Ok((total, by_group))
}

/// A place in the line, taken before waiting for a turn (see [`join`]).
#[derive(Debug)]
pub(crate) struct Place(Option<Queue>);

impl Drop for Place {
    fn drop(&mut self) {
        // Not waited on (the task was cancelled first): leave the line.
        if let Some(queue) = &self.0 {
            queue.leave();
        }
    }
}

/// Joins the line now, so that the order of the line is the order in which runners joined:
/// a runner joins before it tells its frontend it is ready, so tasks started one after another
/// start in that order.
pub(crate) fn join(store: &FsStore, record: &TaskRecord) -> io::Result<Place> {
    Queue::join(store, record).map(|queue| Place(Some(queue)))
}

/// Waits for a slot in FIFO order. Returns `Ok(None)` if `cancel` fires first.
pub(crate) async fn acquire(
    store: &FsStore,
    record: &TaskRecord,
    cancel: &CancellationToken,
    place: Option<Place>,
) -> io::Result<Option<Slot>> {
    let queue = match place.and_then(|mut place| place.0.take()) {
        Some(queue) => queue,
        None => Queue::join(store, record)?,
    };
    // Made when this waiter first finds itself at the head of the line, before it looks again,
    // so that no freed slot between a look and a wait is missed.
    let mut watch: Option<Option<Watch>> = None;
    // The entry this waiter sleeps behind, and word of its leaving (kept across looks: a
    // waiter far back looks many times behind the same one).
    let mut behind: Option<(String, tokio::sync::oneshot::Receiver<()>)> = None;
    let mut last_why: Option<String> = None;
    loop {
        let wake: Pin<Box<dyn Future<Output = ()> + Send>> = match queue.try_take(store) {
            Ok(Turn::Taken(slot)) => return Ok(Some(slot)),
            Ok(Turn::Busy) => Box::pin(tokio::time::sleep(RETRY)),
            Ok(Turn::Wait {
                ahead,
                next_ahead: Some(next),
                why,
            }) => {
                say_why(store, record, &mut last_why, why);
                // A word already received cannot be awaited again: wait anew.
                let stale = |(name, left): &mut (String, tokio::sync::oneshot::Receiver<()>)| {
                    *name != next
                        || left.try_recv() != Err(tokio::sync::oneshot::error::TryRecvError::Empty)
                };
                if behind.as_mut().is_none_or(stale) {
                    behind = Some((next.clone(), queue.left(&next)));
                }
                let left = behind.as_mut().map(|(_, left)| left);
                let check = if ahead < 2 * queue.limit() {
                    NEAR_HEAD_CHECK
                } else {
                    FAR_BACK_CHECK
                };
                Box::pin(async move {
                    let Some(left) = left else { return };
                    tokio::select! {
                        _ = left => {}
                        () = tokio::time::sleep(check) => {}
                    }
                })
            }
            Ok(Turn::Wait {
                next_ahead: None,
                why,
                ..
            }) => match &watch {
                None => {
                    watch = Some(
                        Watch::new(&queue.dir)
                            .inspect_err(|e| {
                                tracing::warn!("cannot watch the queue, polling instead: {e}")
                            })
                            .ok(),
                    );
                    continue;
                }
                Some(Some(watch)) => {
                    say_why(store, record, &mut last_why, why);
                    Box::pin(async move {
                        tokio::select! {
                            () = watch.changed() => {}
                            () = tokio::time::sleep(FALLBACK) => {}
                        }
                    })
                }
                Some(None) => {
                    say_why(store, record, &mut last_why, why);
                    Box::pin(tokio::time::sleep(POLL))
                }
            },
            Err(e) => {
                queue.leave();
                return Err(e);
            }
        };
        tokio::select! {
            () = wake => {}
            () = cancel.cancelled() => {
                queue.leave();
                return Ok(None);
            }
        }
    }
}

/// Records why the task waits as its progress, when that changed since it last said.
pub(crate) fn say_why(
    store: &dyn TaskStore,
    record: &TaskRecord,
    last: &mut Option<String>,
    why: String,
) {
    if last.as_ref() == Some(&why) {
        return;
    }
    if let Ok(mut current) = store.load(&record.id)
        && !current.status.is_terminal()
    {
        current.progress = Some(why.clone());
        let _ = store.save_progress(&current);
    }
    *last = Some(why);
}
