//! The model driven like a server rather than from a scenario's fixed setup (PostgreSQL's
//! isolation specs create and drop their tables before and after every permutation): CREATE
//! TABLE and DROP TABLE between transactions, and the column names a `SELECT *` returns.

use std::sync::Arc;

use super::sql::{Prepared, Stmt};
use super::table::Table;
use super::Db;

impl Db {
    /// Runs CREATE TABLE as the server would, outside every transaction. `exact` keeps only the
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

    /// DROP TABLE [IF EXISTS] `name`, outside every transaction (table numbers recorded in
    /// waits and SERIALIZABLE read sets shift, so none may be live).
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

    fn no_open_transaction(&self, what: &str) -> Result<(), String> {
        if self.conns.values().any(|c| c.in_txn)
            || !self.waits.is_empty()
            || !self.sxacts.is_empty()
        {
            return Err(format!(
                "the model runs {what} only while no transaction is open"
            ));
        }
        Ok(())
    }

    /// The columns of `table`, in table order (what `SELECT *` returns).
    pub fn column_names(&self, table: &str) -> Option<Vec<String>> {
        let name = table.to_lowercase();
        let t: &Arc<Table> = self.tables.iter().find(|t| t.schema.name == name)?;
        Some(t.schema.columns.iter().map(|c| c.name.clone()).collect())
    }
}
