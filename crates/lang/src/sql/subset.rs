//! The edge of the SQL subset: how a refusal is worded, and how sqlparser's names are read.
//! Shared by statement lowering (`sql.rs`) and CREATE TABLE (`ddl.rs`).

use std::fmt;

use sqlparser::ast::{self, ObjectName, ObjectNamePart};

/// What the model supports, for error messages.
const SUPPORTED: &str = "supported: CREATE TABLE (setup only), INSERT INTO t (cols) VALUES (...), \
SELECT cols|*|COUNT(*) FROM t [WHERE ...] [ORDER BY ...] [LIMIT n] [FOR UPDATE|SHARE [NOWAIT|SKIP LOCKED]], \
UPDATE t SET col = expr, ... [WHERE ...], DELETE FROM t [WHERE ...], BEGIN/START TRANSACTION [ISOLATION LEVEL x], \
SET [SESSION] TRANSACTION ISOLATION LEVEL x, SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL x, COMMIT, ROLLBACK";

/// Refuses `what`, saying what the subset supports instead.
pub(super) fn unsupported(what: impl fmt::Display) -> String {
    format!("unsupported: {what}; {SUPPORTED}")
}

/// A name as the model compares names: lowercased.
pub(super) fn ident(id: &ast::Ident) -> String {
    id.value.to_lowercase()
}

/// The last part of a (possibly schema-qualified) name, lowercased.
pub(super) fn object_name(name: &ObjectName) -> Result<String, String> {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(id)) => Ok(ident(id)),
        _ => Err(unsupported(format!("the name `{name}`"))),
    }
}
