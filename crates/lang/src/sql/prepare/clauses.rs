//! Checks of the clauses the subset lacks, and the isolation level and lock strength a
//! statement asks for.

use sqlparser::ast;

use super::super::subset::unsupported;
use crate::ir::sql::{Level, LockMode};

pub(super) fn check_select_clauses(s: &ast::Select) -> Result<(), String> {
    let no_group_by =
        matches!(&s.group_by, ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    let extra = [
        (s.distinct.is_some(), "DISTINCT"),
        (s.top.is_some(), "TOP"),
        (s.into.is_some(), "SELECT INTO"),
        (!no_group_by || s.having.is_some(), "GROUP BY/HAVING"),
        (
            !s.named_window.is_empty() || s.qualify.is_some(),
            "window functions",
        ),
        (
            !s.lateral_views.is_empty() || s.prewhere.is_some() || !s.connect_by.is_empty(),
            "this SELECT syntax",
        ),
        (
            !s.cluster_by.is_empty() || !s.distribute_by.is_empty() || !s.sort_by.is_empty(),
            "this SELECT syntax",
        ),
        (
            s.exclude.is_some() || s.value_table_mode.is_some() || s.select_modifiers.is_some(),
            "this SELECT syntax",
        ),
        (!s.optimizer_hints.is_empty(), "optimizer hints"),
    ];
    match extra.iter().find(|(present, _)| *present) {
        Some((_, what)) => Err(unsupported(*what)),
        None => Ok(()),
    }
}

/// The ISOLATION LEVEL among a transaction's modes; READ ONLY/READ WRITE are refused (the model
/// does not check access modes, so it would silently ignore them).
pub(super) fn isolation_mode(modes: &[ast::TransactionMode]) -> Result<Option<Level>, String> {
    use ast::TransactionIsolationLevel as L;
    let mut level = None;
    for mode in modes {
        let ast::TransactionMode::IsolationLevel(l) = mode else {
            return Err(unsupported(format!(
                "the transaction mode `{mode}` (only ISOLATION LEVEL)"
            )));
        };
        level = Some(match l {
            L::ReadCommitted => Level::ReadCommitted,
            L::RepeatableRead => Level::RepeatableRead,
            L::Serializable => Level::Serializable,
            other => {
                return Err(unsupported(format!(
                "ISOLATION LEVEL {other} (levels: READ COMMITTED, REPEATABLE READ, SERIALIZABLE)"
            )))
            }
        });
    }
    Ok(level)
}

pub(super) fn lock_mode(locks: &[ast::LockClause]) -> Result<Option<LockMode>, String> {
    match locks {
        [] => Ok(None),
        [ast::LockClause {
            lock_type: ast::LockType::Update | ast::LockType::Share,
            of: None,
            nonblock,
        }] => Ok(Some(match nonblock {
            None => LockMode::Wait,
            Some(ast::NonBlock::Nowait) => LockMode::NoWait,
            Some(ast::NonBlock::SkipLocked) => LockMode::SkipLocked,
        })),
        [other] => Err(unsupported(format!(
            "`{other}` (only FOR UPDATE|SHARE [NOWAIT|SKIP LOCKED])"
        ))),
        _ => Err(unsupported("more than one locking clause")),
    }
}

/// Whether the locking clause is FOR SHARE (see [`lock_mode`] for the rest of it).
pub(super) fn shared_lock(locks: &[ast::LockClause]) -> bool {
    matches!(
        locks,
        [ast::LockClause {
            lock_type: ast::LockType::Share,
            ..
        }]
    )
}
