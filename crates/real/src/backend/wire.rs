//! The line protocol between the harness and its worker processes: one JSON object per line.

use serde::{Deserialize, Serialize};

use racelab_lang::ir::{Errno, Op, Stat, Value};

/// A value as it crosses a pipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WireValue {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    Stat {
        nlink: i64,
        mtime: i64,
        size: i64,
        ino: i64,
        #[serde(default)]
        dir: bool,
    },
}

impl WireValue {
    pub(crate) fn from_value(v: &Value) -> Result<WireValue, String> {
        Ok(match v {
            Value::None => WireValue::None,
            Value::Bool(b) => WireValue::Bool(*b),
            Value::Int(n) => WireValue::Int(*n),
            Value::Str(s) => WireValue::Str(s.to_string()),
            Value::Stat(s) => WireValue::Stat {
                nlink: s.nlink,
                mtime: s.mtime,
                size: s.size,
                ino: s.ino,
                dir: s.dir,
            },
            other => {
                return Err(format!(
                    "a {} cannot be passed to a worker process",
                    other.type_name()
                ))
            }
        })
    }
    pub(crate) fn into_value(self) -> Value {
        match self {
            WireValue::None => Value::None,
            WireValue::Bool(b) => Value::Bool(b),
            WireValue::Int(n) => Value::Int(n),
            WireValue::Str(s) => Value::str(&s),
            WireValue::Stat {
                nlink,
                mtime,
                size,
                ino,
                dir,
            } => Value::Stat(Stat {
                nlink,
                mtime,
                size,
                ino,
                dir,
            }),
        }
    }
}

/// What the harness asks a worker to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Perform a filesystem operation (`op` is its name, `create!` for O_EXCL).
    Perform {
        op: String,
        args: Vec<WireValue>,
        now: i64,
    },
    /// Catch (or stop catching) a signal: the scenario installed or removed a handler.
    Handler { signal: String, installed: bool },
    /// Which caught signals arrived since the last ask.
    Signals,
    /// Start a new run in `root`: close every descriptor of the last run, forget its handlers
    /// and caught signals (a worker reused from the pool is then as fresh as a new one).
    Reset { root: String },
}

/// A worker's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Response {
    Ok(WireValue),
    /// An errno, by name.
    Errno(String),
    /// Misuse (a bad argument): the actor stops with an unhandled error.
    Fail(String),
    Signals(Vec<String>),
    Done,
}

/// An operation's wire name.
pub(crate) fn op_name(op: Op) -> Result<&'static str, String> {
    match op {
        Op::Create { excl: true } => Ok("create!"),
        Op::Open { creat: true } => Ok("open!"),
        // Every filesystem operation (and half of one) travels under its own name.
        _ if op.is_filesystem() => Ok(op.name()),
        other => Err(format!(
            "`{}` is not performed by worker processes",
            other.name()
        )),
    }
}

/// The operation for a wire name.
pub(crate) fn op_of(name: &str) -> Option<Op> {
    Some(match name {
        "create!" => Op::Create { excl: true },
        "create" => Op::Create { excl: false },
        "write" => Op::Write,
        "read" => Op::Read,
        "link" => Op::Link,
        "unlink" => Op::Unlink,
        "rename" => Op::Rename,
        "stat" => Op::Stat,
        "utime" => Op::Utime,
        "touch" => Op::Touch,
        "mkdir" => Op::Mkdir,
        "rmdir" => Op::Rmdir,
        "glob" => Op::Glob,
        "stat-lookup" => Op::StatLookup,
        "stat-attrs" => Op::StatAttrs,
        "write-open" => Op::WriteOpen,
        "write-data" => Op::WriteData,
        "open!" => Op::Open { creat: true },
        "open" => Op::Open { creat: false },
        "flock" => Op::Flock { unlock: false },
        "flock-un" => Op::Flock { unlock: true },
        "fstat" => Op::Fstat,
        "close-fd" => Op::CloseFd,
        _ => return None,
    })
}

/// Turns a worker's response to `Perform` into the machine's result.
pub(crate) fn result_of(r: Response) -> Result<Result<Value, Errno>, String> {
    match r {
        Response::Ok(v) => Ok(Ok(v.into_value())),
        Response::Errno(name) => Errno::from_name(&name)
            .map(Err)
            .ok_or_else(|| format!("the worker answered an unknown errno `{name}`")),
        Response::Fail(msg) => Err(msg),
        other => Err(format!("the worker answered {other:?} to an operation")),
    }
}
