//! Names that statements and expressions use for the world's declared things: the database's
//! SQL and names, signals, locks, critical sections and errnos.

use super::{closest, Cx};
use crate::ast::{Expr, Ident};
use crate::diag::Span;
use crate::ir::*;
use crate::sql as db;

impl Cx<'_> {
    /// A constant database name given to `connect` or `connections` must be declared.
    pub(super) fn check_database_name(&mut self, span: Span, v: &Value) {
        let known = match v {
            Value::Str(s) => self.named_databases.iter().any(|n| **n == **s),
            Value::None => return,
            _ => false,
        };
        if !known {
            let names = self
                .named_databases
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ");
            self.err(
                span,
                format!("no database is named {v}"),
                "unknown database",
                format!("declared databases: {names}; declare others with `database NAME`"),
            );
        }
    }

    /// Prepares the SQL text of a `sql(...)` call, which must be a constant string.
    pub(super) fn prepare_sql(&mut self, e: &Expr) -> Option<(u32, usize)> {
        if !self.has_database {
            self.err(
                e.span,
                "`sql` needs a database",
                "no database declared",
                "declare the tables first: `database { \"CREATE TABLE t (...)\" }`",
            );
            return None;
        }
        let text = match self.const_value(e) {
            Value::Str(s) => s,
            Value::None => return None,
            v => {
                self.err(
                    e.span,
                    format!("the SQL text must be a string, not {v}"),
                    "not SQL text",
                    "write `sql(\"SELECT id FROM person WHERE email = ?\", email)`",
                );
                return None;
            }
        };
        let checked =
            db::prepare(&text).and_then(|p| match self.db_flavour.map(|f| p.check_flavour(f)) {
                Some(Err(why)) => Err(why),
                _ => Ok(p),
            });
        match checked {
            Ok(p) => {
                let params = p.params();
                self.sql.push(p);
                Some((self.sql.len() as u32 - 1, params))
            }
            Err(msg) => {
                self.err(
                    e.span,
                    format!("bad SQL: {msg}"),
                    "this statement",
                    "pass values as `?` parameters: `sql(\"... WHERE email = ?\", email)`",
                );
                None
            }
        }
    }

    pub(super) fn signal(&mut self, id: &Ident) -> Option<Signal> {
        let s = Signal::from_name(&id.name);
        if s.is_none() {
            let known: Vec<&str> = Signal::ALL.iter().map(|s| s.name()).collect();
            self.err(
                id.span,
                format!("unknown signal `{}`", id.name),
                "not a signal",
                format!("signals: {}", known.join(", ")),
            );
        }
        s
    }

    pub(super) fn lock_id(&mut self, id: &Ident, mode: Option<&Ident>) -> Option<(u32, LockMode)> {
        let Some(&(lock, kind)) = self.locks.get(&id.name) else {
            let names: Vec<String> = self.locks.keys().cloned().collect();
            let help = match closest(&id.name, names.iter().map(String::as_str)) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!(
                    "declare it at the top level: `lock {}`, `rlock {}` or `rwlock {}`",
                    id.name, id.name, id.name
                ),
            };
            self.err(
                id.span,
                format!("unknown lock `{}`", id.name),
                "not a lock",
                help,
            );
            return None;
        };
        let mode = match (mode.map(|m| m.name.as_str()), kind) {
            (None, _) => LockMode::Exclusive,
            (Some("write"), LockKind::ReadWrite) => LockMode::Exclusive,
            (Some("read"), LockKind::ReadWrite) => LockMode::Shared,
            (Some(m), _) => {
                let span = mode.map(|m| m.span).unwrap_or(id.span);
                self.err(
                    span,
                    format!("`{m}` mode on {} `{}`", kind.keyword(), id.name),
                    "only rwlocks have modes",
                    format!(
                        "write `acquire {}`; declare `rwlock {}` for readers and writers",
                        id.name, id.name
                    ),
                );
                return None;
            }
        };
        Some((lock, mode))
    }

    pub(super) fn section_id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.sections.get(name) {
            return *id;
        }
        let id = self.section_names.len() as u32;
        self.sections.insert(name.to_string(), id);
        self.section_names.push(name.to_string());
        id
    }

    pub(super) fn unknown_errno(&mut self, id: &Ident) {
        let known: Vec<_> = Errno::ALL.iter().map(|e| e.name()).collect();
        let help = match closest(&id.name, known.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? known errnos: {}", known.join(", ")),
            None => format!("known errnos: {}", known.join(", ")),
        };
        self.err(
            id.span,
            format!("unknown errno `{}`", id.name),
            "not an errno",
            help,
        );
    }
}
