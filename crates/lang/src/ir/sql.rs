//! The SQL of a scenario as the IR carries it: statements parsed once into the subset the
//! model runs ([`Prepared`]), the database flavour whose rules they follow, and the isolation
//! levels. The model's database (`model::db`) parses SQL into these and executes them; nothing
//! here depends on it.

use std::fmt;
use std::sync::Arc;

use super::{Program, Value};

/// A database the scenario's actors share; each actor has its own connection.
#[derive(Debug, Clone)]
pub struct DatabaseIr {
    pub flavour: Flavour,
    /// The CREATE TABLE and INSERT statements, prepared: the model runs them (committed) on a
    /// fresh database before any actor starts. Lowering ran them once, so they succeed.
    pub setup: Vec<Arc<Prepared>>,
    /// The setup statements as written, for real backends.
    pub setup_text: Vec<String>,
    /// `database NAME`: the other databases on the server that `connect("NAME")` opens
    /// connections to (no tables; what matters is who is connected).
    pub names: Vec<String>,
}

impl Program {
    /// The isolation levels the scenario's model database runs transactions at: the flavour's
    /// default, then any level its SQL sets (`repeatable read`, or `read committed (default),
    /// serializable`). `None` without a database.
    pub fn isolation_levels(&self) -> Option<String> {
        let db = self.database.as_ref()?;
        let default = db.flavour.default_level();
        let mut set: Vec<Level> = self
            .sql
            .iter()
            .filter_map(|s| s.isolation_level())
            .filter(|l| *l != default)
            .collect();
        set.sort();
        set.dedup();
        if set.is_empty() {
            return Some(default.name().to_string());
        }
        let named: Vec<&str> = set.iter().map(|l| l.name()).collect();
        Some(format!(
            "{} (default), {}",
            default.name(),
            named.join(", ")
        ))
    }
}

/// A parsed statement of the subset, ready to run any number of times with different parameters.
pub struct Prepared {
    pub sql: String,
    pub params: usize,
    pub stmt: Stmt,
}

impl Prepared {
    /// How many parameters `execute` needs: the number of `?`/`%s` placeholders (or the largest
    /// `$n`).
    pub fn params(&self) -> usize {
        self.params
    }

    /// The SQL text as given to [`prepare`].
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Whether this is a SELECT (without FOR UPDATE it never blocks and changes nothing).
    pub fn is_select(&self) -> bool {
        matches!(self.stmt, Stmt::Select(_))
    }

    /// The isolation level this statement names (BEGIN ISOLATION LEVEL x, SET ... TRANSACTION
    /// ISOLATION LEVEL x), if any.
    pub fn isolation_level(&self) -> Option<Level> {
        match self.stmt {
            Stmt::Begin { level, .. } => level,
            Stmt::SetLevel { level, .. } => Some(level),
            _ => None,
        }
    }

    /// Whether `flavour`'s server accepts this statement and the model can run it as that
    /// server would; the reason, and what is supported, when not.
    pub fn check_flavour(&self, flavour: Flavour) -> Result<(), String> {
        let supported = Level::supported(flavour);
        match (&self.stmt, flavour) {
            (Stmt::Begin { immediate: true, .. }, Flavour::Postgres | Flavour::InnoDb) => Err(format!(
                "BEGIN IMMEDIATE and BEGIN EXCLUSIVE are SQLite's; {} writes BEGIN (and SELECT ... FOR UPDATE to lock rows up front)",
                flavour.server()
            )),
            (Stmt::Begin { level: Some(_), .. } | Stmt::SetLevel { .. }, Flavour::Sqlite) => Err(
                "SQLite has no isolation levels to choose: every transaction is serializable (one writer at a time; in WAL mode readers keep their snapshot). Write BEGIN, or BEGIN IMMEDIATE to take the write lock at once".to_string(),
            ),
            (Stmt::Select(Select { strength: Strength::KeyShare | Strength::NoKeyUpdate, .. }), Flavour::InnoDb | Flavour::Sqlite) => Err(format!(
                "FOR KEY SHARE and FOR NO KEY UPDATE are PostgreSQL's; {} writes FOR SHARE or FOR UPDATE",
                flavour.server()
            )),
            (Stmt::Select(Select { lock: Some(_), .. }), Flavour::Sqlite) => Err(
                "SQLite has no SELECT ... FOR UPDATE (it locks the whole database, not rows); write BEGIN IMMEDIATE to take the write lock before reading".to_string(),
            ),
            (Stmt::Begin { level: Some(_), .. }, Flavour::InnoDb) => Err(format!(
                "MariaDB/MySQL have no BEGIN/START TRANSACTION ISOLATION LEVEL; write `SET TRANSACTION ISOLATION LEVEL x` before BEGIN (next transaction) or `SET SESSION TRANSACTION ISOLATION LEVEL x` (the connection); levels the innodb model runs: {supported}"
            )),
            (Stmt::SetLevel { session: Session::Characteristics, .. }, Flavour::InnoDb) => {
                Err("SET SESSION CHARACTERISTICS is PostgreSQL's; MariaDB/MySQL write `SET SESSION TRANSACTION ISOLATION LEVEL x`".to_string())
            }
            (Stmt::SetLevel { session: Session::MySql, .. }, Flavour::Postgres) => Err(
                "PostgreSQL has no SET SESSION TRANSACTION; write `SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL x`, or `BEGIN ISOLATION LEVEL x`".to_string(),
            ),
            _ => match self.isolation_level() {
                Some(level) if !Level::all(flavour).contains(&level) => Err(format!("the model does not run {} on {}: {}; levels it runs there: {supported}", level.name(), flavour.server(), level.why_not(flavour))),
                _ => Ok(()),
            },
        }
    }
}

/// A transaction isolation level the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Level {
    /// As the servers spell it in SHOW transaction_isolation / @@tx_isolation, lowercased.
    pub fn name(self) -> &'static str {
        match self {
            Level::ReadCommitted => "read committed",
            Level::RepeatableRead => "repeatable read",
            Level::Serializable => "serializable",
        }
    }

    /// The levels the model runs for `flavour`.
    pub(crate) fn all(flavour: Flavour) -> &'static [Level] {
        match flavour {
            Flavour::Postgres => &[
                Level::ReadCommitted,
                Level::RepeatableRead,
                Level::Serializable,
            ],
            Flavour::InnoDb => &[Level::ReadCommitted, Level::RepeatableRead],
            Flavour::Sqlite => &[Level::Serializable],
        }
    }

    fn supported(flavour: Flavour) -> String {
        Level::all(flavour)
            .iter()
            .map(|l| l.name().to_uppercase())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn why_not(self, flavour: Flavour) -> &'static str {
        match (self, flavour) {
            (Level::Serializable, Flavour::InnoDb) => "InnoDB's SERIALIZABLE turns every plain SELECT into a shared-lock read, and the model has exclusive row locks only",
            _ => "not modelled",
        }
    }
}

/// How a SET ... TRANSACTION statement was spelled: which transactions it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Session {
    /// `SET TRANSACTION`: PostgreSQL, the current transaction; MySQL, the next one.
    Transaction,
    /// `SET SESSION CHARACTERISTICS AS TRANSACTION` (PostgreSQL): later transactions.
    Characteristics,
    /// `SET SESSION TRANSACTION` (MySQL/MariaDB): later transactions.
    MySql,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prepared({:?})", self.sql)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    Create(CreateTable),
    Insert(Insert),
    Select(Select),
    Update(Update),
    Delete(Delete),
    /// BEGIN / START TRANSACTION, with its ISOLATION LEVEL if given; `immediate`: SQLite's
    /// BEGIN IMMEDIATE or EXCLUSIVE, which take the write lock at once (the same lock in WAL mode).
    Begin {
        level: Option<Level>,
        immediate: bool,
    },
    /// SET [SESSION] TRANSACTION ISOLATION LEVEL x.
    SetLevel {
        level: Level,
        session: Session,
    },
    Commit,
    Rollback,
    /// PostgreSQL's SAVEPOINT, ROLLBACK TO [SAVEPOINT], RELEASE [SAVEPOINT], by name.
    Savepoint(String),
    RollbackTo(String),
    Release(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTable {
    pub schema: Schema,
    pub if_not_exists: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    pub table: String,
    /// `None`: all columns in table order.
    pub columns: Option<Vec<String>>,
    pub rows: Vec<Vec<Expr>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    Star,
    CountStar,
    Exprs(Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Wait,
    NoWait,
    SkipLocked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    pub table: String,
    pub projection: Projection,
    pub filter: Option<Expr>,
    /// Expressions and whether each is descending.
    pub order: Vec<(Expr, bool)>,
    pub limit: Option<Expr>,
    pub lock: Option<LockMode>,
    /// The strength of the locking clause (Update when there is none).
    pub strength: Strength,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub table: String,
    pub sets: Vec<(String, Expr)>,
    pub filter: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub table: String,
    pub filter: Option<Expr>,
}

/// Which database the model imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    Postgres,
    InnoDb,
    Sqlite,
}

impl Flavour {
    /// The level a transaction runs at unless the scenario sets another: the server's default.
    pub fn default_level(self) -> Level {
        match self {
            Flavour::Postgres => Level::ReadCommitted,
            Flavour::InnoDb => Level::RepeatableRead,
            Flavour::Sqlite => Level::Serializable,
        }
    }

    /// The server, for messages.
    pub(crate) fn server(self) -> &'static str {
        match self {
            Flavour::Postgres => "PostgreSQL",
            Flavour::InnoDb => "InnoDB (MariaDB/MySQL)",
            Flavour::Sqlite => "SQLite",
        }
    }
}

/// PostgreSQL's four row-lock strengths, weakest first (InnoDB's locking reads and writes are
/// `Share` and `Update`). Conflicts: KeyShare–Update; Share–NoKeyUpdate, Update;
/// NoKeyUpdate–Share, NoKeyUpdate, Update; Update–all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strength {
    KeyShare,
    Share,
    NoKeyUpdate,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A scalar expression: literals, placeholders, column references and the operators of WHERE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    Lit(Value),
    /// The n-th (0-based) parameter, in the order the placeholders appear in the SQL text.
    Param(usize),
    Col(String),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
}

/// A column type of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    Int,
    /// TEXT, or VARCHAR(n)/CHAR(n) with the maximum length.
    Text(Option<u64>),
    Bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column {
    pub name: String,
    pub ty: Ty,
    pub not_null: bool,
    pub default: Option<Value>,
}

/// A primary key or unique constraint; each is a unique index in both databases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub primary: bool,
    /// The name PostgreSQL gives it (`person_pkey`, `person_email_key`, or the CONSTRAINT name).
    pub pg_name: String,
    /// The name MySQL gives it (`PRIMARY`, the first column's name, or the CONSTRAINT name).
    pub my_name: String,
    pub cols: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schema {
    pub name: String,
    pub columns: Vec<Column>,
    /// The primary key first, if there is one.
    pub keys: Vec<Key>,
    /// The column filled from the table's counter when an INSERT leaves it out: an
    /// AUTO_INCREMENT/SERIAL/identity column, or else a single-column integer primary key.
    pub auto: Option<usize>,
    /// Whether `auto` was declared (AUTO_INCREMENT, SERIAL, identity) rather than implied.
    pub auto_declared: bool,
}

impl Ty {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Int => "integer",
            Ty::Text(None) => "text",
            Ty::Text(Some(_)) => "character varying",
            Ty::Bool => "boolean",
        }
    }
}

impl Schema {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn primary(&self) -> Option<&Key> {
        self.keys.first().filter(|k| k.primary)
    }

    /// The values of `key`'s columns in `row`, or `None` if one is NULL (NULLs never conflict).
    pub fn key_of(&self, key: &Key, row: &[Value]) -> Option<Vec<Value>> {
        key.cols
            .iter()
            .map(|&c| row.get(c).filter(|v| **v != Value::None).cloned())
            .collect()
    }

    /// `(email)=('a@x')`-style text for a key's columns and values.
    pub fn describe_key(&self, key: &Key, values: &[Value]) -> String {
        let names: Vec<&str> = key
            .cols
            .iter()
            .map(|&c| self.columns.get(c).map_or("?", |col| col.name.as_str()))
            .collect();
        match (names.as_slice(), values) {
            ([name], [v]) => format!("{name}={}", sql_literal(v)),
            _ => format!(
                "({})=({})",
                names.join(", "),
                values
                    .iter()
                    .map(sql_literal)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// `person(id=3)`: a row named by its primary key, else by all its values.
    pub fn describe_row(&self, row: &[Value]) -> String {
        match self
            .primary()
            .and_then(|k| self.key_of(k, row).map(|v| (k, v)))
        {
            Some((key, values)) => format!("{}({})", self.name, self.describe_key(key, &values)),
            None => format!(
                "{}({})",
                self.name,
                row.iter().map(sql_literal).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// A value as SQL would spell it: strings quoted, NULL as NULL.
pub(crate) fn sql_literal(v: &Value) -> String {
    match v {
        Value::None => "NULL".to_string(),
        Value::Str(s) => format!("'{}'", s.replace('\'', "''")),
        v => v.to_string(),
    }
}
