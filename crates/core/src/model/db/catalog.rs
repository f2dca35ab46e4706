//! The model driven like a server rather than from a scenario's fixed setup (PostgreSQL's
//! isolation specs create and drop their tables before and after every permutation): CREATE
//! TABLE and DROP TABLE between transactions, and the column names a `SELECT *` returns.

use std::sync::Arc;

use super::table::Table;
use super::{Db, Flavour, Outcome};
use racelab_lang::ir::sql::{Prepared, Stmt};
use racelab_lang::ir::Errno;

impl Db {
    /// Runs CREATE TABLE as the server would, while no transaction uses a table. `exact` keeps only the
    /// auto-increment columns the statement declares (SERIAL, identity): PostgreSQL fills no
    /// plain integer primary key by itself, whereas scenario setups rely on the model doing so.
    pub fn create_table(&mut self, stmt: &Prepared, exact: bool) -> Result<(), String> {
        let Stmt::Create(c) = &stmt.stmt else {
            return Err(format!("`{}` is not CREATE TABLE", stmt.sql()));
        };
        self.no_open_transaction("CREATE TABLE")?;
        let mut c = c.clone();
        if exact && !c.schema.auto_declared {
            c.schema.auto = None;
        }
        self.create(&c)
    }

    /// DROP TABLE [IF EXISTS] `name`, while no transaction uses a table.
    pub fn drop_table(&mut self, name: &str, if_exists: bool) -> Result<(), String> {
        self.no_open_transaction("DROP TABLE")?;
        let name = name.to_lowercase();
        match self.tables.iter().position(|t| t.schema.name == name) {
            Some(i) => {
                self.tables.remove(i);
                Ok(())
            }
            None if if_exists => Ok(()),
            None => Err(format!("table \"{name}\" does not exist")),
        }
    }

    /// PostgreSQL's DDL waits for every transaction that used the table; the model keeps no
    /// table locks, so it refuses while any transaction has run a statement (one that only
    /// began, or whose statements all failed, holds none). Table numbers recorded in waits and
    /// SERIALIZABLE read sets would shift, so none may be live either.
    fn no_open_transaction(&self, what: &str) -> Result<(), String> {
        let busy = self
            .conns
            .values()
            .any(|c| c.in_txn && (c.queried || c.snapshot.is_some()));
        if busy || !self.waits.is_empty() || !self.sxacts.is_empty() {
            return Err(format!(
                "the model runs {what} only while no transaction has used a table"
            ));
        }
        Ok(())
    }

    /// The client cancelled `conn`'s waiting statement: it fails, and PostgreSQL aborts the
    /// transaction it was in (as for any error).
    pub fn cancel(&mut self, conn: usize) -> Outcome {
        let message = match self.flavour {
            Flavour::Postgres => "canceling statement due to user request",
            Flavour::InnoDb => "(1317, 'Query execution was interrupted')",
            // sqlite3_interrupt(): SQLITE_INTERRUPT.
            Flavour::Sqlite => "interrupted",
        };
        self.fail(conn, Errno::OperationalError, message.to_string())
    }

    /// Every table's name, in creation order.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.schema.name.clone()).collect()
    }

    /// The columns of `table`, in table order (what `SELECT *` returns).
    pub fn column_names(&self, table: &str) -> Option<Vec<String>> {
        let name = table.to_lowercase();
        let t: &Arc<Table> = self.tables.iter().find(|t| t.schema.name == name)?;
        Some(t.schema.columns.iter().map(|c| c.name.clone()).collect())
    }
}
