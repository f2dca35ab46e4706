//! The intent log of a filesystem matrix, `<root>/state.json`: every action is written here before it is performed.
//!
//! So whatever stops `fs up` (an error, Ctrl-C, SIGKILL, a power cut) the file lists everything
//! that may exist, and `fs down` undoes it. An action whose status is still `intent` may or may
//! not have happened; undoing is idempotent, so teardown treats it as if it had.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::Entry;

/// The file name of the intent log inside a matrix root.
pub const STATE_FILE: &str = "state.json";
const VERSION: u32 = 1;

/// One thing `fs up` does to the machine, with what is needed to undo it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    /// A directory we create; undone by removing it (never while something is mounted on or below it).
    Mkdir { path: PathBuf },
    /// A sparse image file; undone by deleting it.
    Image { path: PathBuf, bytes: u64 },
    /// mkfs on an image. Nothing to undo (the image goes); logged so a crash shows where it stopped.
    Mkfs { image: PathBuf, command: String },
    /// A loop device over `image`. `device` is known only after losetup answers; until then (or
    /// if we crashed before recording it) teardown finds the device by its backing file.
    Loop {
        image: PathBuf,
        device: Option<PathBuf>,
    },
    /// A mount at `target`; undone by unmounting (lazily if it stays busy).
    Mount {
        source: String,
        fstype: String,
        target: PathBuf,
        data: String,
    },
}

/// Where an action stands. `Intent` means "about to be done, or being done, or done but not yet recorded".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Intent,
    Done,
    Undone,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    /// The matrix entry this action belongs to (`matrix` for the shared directories).
    pub fs: String,
    pub status: Status,
    pub op: Op,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// The process that wrote it, to tell a crashed `up` from a live one in messages.
    pub pid: u32,
    pub root: PathBuf,
    /// Whether `up` created `root` (then `down` removes it; otherwise only what `up` put in it).
    pub created_root: bool,
    pub requested: Vec<String>,
    pub actions: Vec<Action>,
    /// Filled in when `up` finishes: what came up and what was skipped, and why.
    pub entries: Vec<Entry>,
    /// True once `up` finished (a matrix that is up, as opposed to a half-finished one).
    pub complete: bool,
}

/// The state and the file it lives in; every change is written through at once.
#[derive(Debug)]
pub struct StateFile {
    pub path: PathBuf,
    pub state: State,
}

impl StateFile {
    /// Starts a new log for a matrix at `root` (which must exist).
    pub fn create(root: &Path, created_root: bool, requested: Vec<String>) -> Result<StateFile> {
        let sf = StateFile {
            path: root.join(STATE_FILE),
            state: State {
                version: VERSION,
                pid: std::process::id(),
                root: root.to_path_buf(),
                created_root,
                requested,
                actions: Vec::new(),
                entries: Vec::new(),
                complete: false,
            },
        };
        sf.save()?;
        Ok(sf)
    }

    /// Reads a log written by `create`/`save`, checking that it describes a matrix rooted where it lies,
    /// so that a stray or edited file cannot point teardown at an unrelated directory.
    pub fn load(path: &Path) -> Result<StateFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the state file {}", path.display()))?;
        let state: State = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a racelab fs matrix state file (bad JSON or fields)",
                path.display()
            )
        })?;
        if state.version != VERSION {
            bail!(
                "{} has version {}, this xtask understands {VERSION}",
                path.display(),
                state.version
            );
        }
        let parent = path
            .parent()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
        if parent.as_deref() != Some(state.root.as_path()) {
            bail!(
                "{} says its matrix root is {}, but it is not in that directory; refusing to tear down from it",
                path.display(),
                state.root.display()
            );
        }
        if state.root.parent().is_none() || state.root.parent() == Some(Path::new("/")) {
            bail!(
                "{} names {} as its root; refusing to delete a top-level directory",
                path.display(),
                state.root.display()
            );
        }
        Ok(StateFile {
            path: path.to_path_buf(),
            state,
        })
    }

    /// Writes the state atomically (temp file, fsync, rename), so a crash mid-write leaves the old
    /// version rather than half a JSON document.
    pub fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let json =
            serde_json::to_vec_pretty(&self.state).context("serialising the fs matrix state")?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().with_context(|| {
            format!(
                "writing the intent log {} (is the matrix root writable and not full?)",
                self.path.display()
            )
        })
    }

    /// Records that `op` is about to be performed, before it is. Returns its index.
    pub fn intend(&mut self, fs: &str, op: Op) -> Result<usize> {
        self.state.actions.push(Action {
            fs: fs.to_string(),
            status: Status::Intent,
            op,
        });
        self.save()?;
        Ok(self.state.actions.len() - 1)
    }

    /// Records that action `i` happened, with what we learnt doing it (e.g. the loop device).
    pub fn done(&mut self, i: usize, op: Op) -> Result<()> {
        if let Some(a) = self.state.actions.get_mut(i) {
            a.op = op;
            a.status = Status::Done;
        }
        self.save()
    }
}
