//! The SQL front end: statement text → the IR's prepared statements ([`prepare`]), CREATE
//! TABLE → a schema, and the expressions both the lowering and the database model evaluate.
//!
//! It lives with the language (not the model) because lowering prepares every statement of a
//! scenario and reports bad SQL at its span; the model's executor only runs what it prepared.

pub(crate) mod ddl;
pub mod expr;
pub mod prepare;
mod subset;

pub(crate) use crate::ir::sql::{Flavour, Prepared};
pub use prepare::{prepare, with_plain_lock_clause};
