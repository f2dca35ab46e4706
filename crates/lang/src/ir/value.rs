//! Values a scenario computes with: run-time values, `stat()` results, errnos, and durations
//! as a scenario writes them.

use std::fmt;
use std::sync::Arc;

/// A run-time value. Times are integers in milliseconds since the Unix epoch; durations are
/// integers in milliseconds, so `now + 15s` and Mailman's `-1` ("the distant past") just work.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Str(Arc<str>),
    Stat(Stat),
    /// The failure of a world operation, kept in a register by `match` until an arm inspects it.
    Err(Errno),
    /// The rows a SQL query returned (each row its columns, in SELECT order).
    Rows(Arc<Vec<Vec<Value>>>),
    /// `[a, b]`: an immutable list; the builtins that "change" one return a new list.
    List(Arc<Vec<Value>>),
    /// `map { k: v }`: an immutable map, ordered by key (a BTreeMap, so that states hash and
    /// compare the same way on every run).
    Map(Arc<std::collections::BTreeMap<Value, Value>>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "none",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Str(_) => "string",
            Value::Stat(_) => "stat",
            Value::Err(_) => "error",
            Value::Rows(_) => "rows",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("none"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => f.write_str(s),
            Value::Stat(s) => write!(
                f,
                "{{nlink {}, mtime {}, size {}, ino {}}}",
                s.nlink, s.mtime, s.size, s.ino
            ),
            Value::Err(e) => f.write_str(e.name()),
            Value::Rows(rows) => {
                f.write_str("[")?;
                for (i, row) in rows.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str("(")?;
                    for (j, v) in row.iter().enumerate() {
                        if j > 0 {
                            f.write_str(", ")?;
                        }
                        match v {
                            Value::Str(s) => write!(f, "'{s}'")?,
                            v => write!(f, "{v}")?,
                        }
                    }
                    f.write_str(")")?;
                }
                f.write_str("]")
            }
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    v.fmt_quoted(f)?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("map {")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    f.write_str(if i > 0 { ", " } else { " " })?;
                    k.fmt_quoted(f)?;
                    f.write_str(": ")?;
                    v.fmt_quoted(f)?;
                }
                f.write_str(if entries.is_empty() { "}" } else { " }" })
            }
        }
    }
}

impl Value {
    /// Displays the value as it is written in a scenario: strings in quotes (inside a list or
    /// a map, `["a", 1]` must not read as `[a, 1]`).
    fn fmt_quoted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            v => write!(f, "{v}"),
        }
    }
}

/// The fields of `stat()` a scenario can read: `st.nlink`, `st.mtime`, `st.size`, `st.ino`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stat {
    pub nlink: i64,
    pub mtime: i64,
    pub size: i64,
    pub ino: i64,
    /// A directory's. Not a field a scenario reads: forced replays leave a directory's mtime
    /// out of the comparison (the model keeps it from the mkdir on; a kernel moves it with
    /// every entry made or removed in it).
    pub dir: bool,
}

macro_rules! errnos {
    ($($(#[$doc:meta])* $name:ident = $code:expr),* $(,)?) => {
        /// The errno values a world operation can fail with (Linux numbering).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Errno { $($(#[$doc])* $name),* }
        impl Errno {
            pub(crate) const ALL: &'static [Errno] = &[$(Errno::$name),*];
            pub fn name(self) -> &'static str { match self { $(Errno::$name => stringify!($name)),* } }
            pub fn code(self) -> i32 { match self { $(Errno::$name => $code),* } }
            /// The errno named `s`; `EWOULDBLOCK` is Linux's other name for `EAGAIN` (flock's answer).
            pub fn from_name(s: &str) -> Option<Errno> { match s { "EWOULDBLOCK" => Some(Errno::EAGAIN), $(stringify!($name) => Some(Errno::$name),)* _ => None } }
            pub fn from_code(c: i32) -> Option<Errno> { match c { $($code => Some(Errno::$name),)* _ => None } }
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, EBADF = 9, EAGAIN = 11, EACCES = 13, EBUSY = 16,
    EEXIST = 17, EXDEV = 18, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENOSPC = 28, EROFS = 30,
    EMLINK = 31, ENAMETOOLONG = 36, ENOTEMPTY = 39, ELOOP = 40, ESTALE = 116,
    // Database errors, named as Python's DB-API raises them. Negative codes keep them apart from
    // errnos; the MySQL error number is in the magnitude where there is one.
    /// A unique or primary key violation (PostgreSQL 23505, MySQL 1062).
    IntegrityError = -1062,
    /// MySQL 1213, "Deadlock found when trying to get lock; try restarting transaction": InnoDB
    /// chose this transaction as the deadlock victim and rolled it back.
    OperationalError = -1213,
    /// A statement the database refused (bad SQL, unknown table or column, type mismatch).
    ProgrammingError = -1064,
}

/// A duration in milliseconds as a scenario would write it: `3s`, `1500ms`, `2m`.
pub fn format_duration(ms: i64) -> String {
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}
