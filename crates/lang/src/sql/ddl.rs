//! CREATE TABLE: column types, options and constraints lowered to a [`Schema`].
//!
//! Both databases' spellings are accepted (AUTO_INCREMENT, AUTOINCREMENT, SERIAL, identity
//! columns, VARCHAR(n), inline and table-level keys). Foreign keys and plain indexes are accepted
//! and ignored, as they change no outcome the model reports; anything else is refused by name.

use sqlparser::ast;
use sqlparser::tokenizer::Token;

use crate::ir::Value;

use super::subset::{ident, object_name, unsupported};
use crate::ir::sql::{Column, CreateTable, Key, Schema, Ty};

/// Lowers CREATE TABLE; `constant` evaluates a DEFAULT expression.
pub(crate) fn create_table(
    c: &ast::CreateTable,
    constant: &dyn Fn(&ast::Expr) -> Result<Value, String>,
) -> Result<CreateTable, String> {
    if c.query.is_some() || c.like.is_some() || c.clone.is_some() {
        return Err(unsupported("CREATE TABLE ... AS/LIKE/CLONE"));
    }
    if c.or_replace {
        return Err(unsupported("CREATE OR REPLACE TABLE"));
    }
    let mut schema = SchemaBuilder {
        name: object_name(&c.name)?,
        ..SchemaBuilder::default()
    };
    for col in &c.columns {
        column(&mut schema, col, constant)?;
    }
    for constraint in &c.constraints {
        schema.constraint(constraint)?;
    }
    Ok(CreateTable {
        schema: schema.build()?,
        if_not_exists: c.if_not_exists,
    })
}

fn column(
    schema: &mut SchemaBuilder,
    col: &ast::ColumnDef,
    constant: &dyn Fn(&ast::Expr) -> Result<Value, String>,
) -> Result<(), String> {
    use ast::ColumnOption as O;
    let name = ident(&col.name);
    let (ty, serial) = column_type(&col.data_type)?;
    let mut column = Column {
        name: name.clone(),
        ty,
        not_null: false,
        default: None,
    };
    if serial {
        schema.auto.push(name.clone());
    }
    for opt in &col.options {
        match &opt.option {
            O::Null | O::ForeignKey(_) | O::CharacterSet(_) | O::Collation(_) | O::Comment(_) => {}
            O::NotNull => column.not_null = true,
            O::Default(e) => column.default = Some(constant(e)?),
            O::PrimaryKey(_) => schema.primary(opt.name.as_ref().map(ident), vec![name.clone()])?,
            O::Unique(_) => schema
                .uniques
                .push((opt.name.as_ref().map(ident), vec![name.clone()])),
            O::DialectSpecific(tokens) if is_auto_increment(tokens) => {
                schema.auto.push(name.clone())
            }
            O::Generated {
                generation_expr: None,
                ..
            } => schema.auto.push(name.clone()),
            other => return Err(unsupported(format!("the column option `{other}`"))),
        }
    }
    schema.columns.push(column);
    Ok(())
}

fn is_auto_increment(tokens: &[Token]) -> bool {
    let text: Vec<String> = tokens
        .iter()
        .map(|t| t.to_string().to_uppercase())
        .collect();
    matches!(text.as_slice(), [t] if t == "AUTO_INCREMENT" || t == "AUTOINCREMENT")
}

/// The type of a column and whether it is a SERIAL (an integer filled from a sequence).
fn column_type(dt: &ast::DataType) -> Result<(Ty, bool), String> {
    let text = dt.to_string().to_uppercase();
    let (base, args) = match text.split_once('(') {
        Some((base, rest)) => (base.trim(), rest.trim_end_matches(')').trim()),
        None => (text.trim(), ""),
    };
    let base = base.trim_end_matches(" UNSIGNED");
    let ty = match base {
        "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "MEDIUMINT" | "INT2" | "INT4"
        | "INT8" => (Ty::Int, false),
        "SERIAL" | "BIGSERIAL" | "SMALLSERIAL" | "SERIAL4" | "SERIAL8" => (Ty::Int, true),
        "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "STRING" => (Ty::Text(None), false),
        "VARCHAR" | "CHARACTER VARYING" | "CHAR" | "CHARACTER" | "NVARCHAR" => {
            (Ty::Text(args.parse().ok()), false)
        }
        "BOOLEAN" | "BOOL" => (Ty::Bool, false),
        _ => {
            return Err(unsupported(format!(
            "the column type {dt} (types: INTEGER, INT, BIGINT, SERIAL, TEXT, VARCHAR(n), BOOLEAN)"
        )))
        }
    };
    Ok(ty)
}

/// Collects a CREATE TABLE's columns and constraints, then checks and names them.
#[derive(Default)]
struct SchemaBuilder {
    name: String,
    columns: Vec<Column>,
    /// (CONSTRAINT name, columns)
    primary: Option<(Option<String>, Vec<String>)>,
    uniques: Vec<(Option<String>, Vec<String>)>,
    auto: Vec<String>,
}

impl SchemaBuilder {
    fn primary(&mut self, name: Option<String>, cols: Vec<String>) -> Result<(), String> {
        if self.primary.is_some() {
            return Err(format!(
                "multiple primary keys for table \"{}\" are not allowed",
                self.name
            ));
        }
        self.primary = Some((name, cols));
        Ok(())
    }

    fn constraint(&mut self, c: &ast::TableConstraint) -> Result<(), String> {
        use ast::TableConstraint as C;
        let cols = |cols: &[ast::IndexColumn]| -> Result<Vec<String>, String> {
            let col = |c: &ast::IndexColumn| match &c.column.expr {
                ast::Expr::Identifier(id) => Ok(ident(id)),
                other => Err(unsupported(format!("the key part `{other}`"))),
            };
            cols.iter().map(col).collect()
        };
        match c {
            C::PrimaryKey(pk) => self.primary(pk.name.as_ref().map(ident), cols(&pk.columns)?),
            C::Unique(u) => {
                self.uniques
                    .push((u.name.as_ref().map(ident), cols(&u.columns)?));
                Ok(())
            }
            // Foreign keys and plain indexes change no outcome the model reports.
            C::ForeignKey(_) | C::Index(_) => Ok(()),
            other => Err(unsupported(format!("the constraint `{other}`"))),
        }
    }

    fn key(&self, primary: bool, name: Option<String>, cols: &[String]) -> Result<Key, String> {
        let index = |c: &String| {
            self.columns
                .iter()
                .position(|col| col.name == *c)
                .ok_or_else(|| format!("column \"{c}\" named in key does not exist"))
        };
        let first = cols.first().ok_or("a key needs at least one column")?;
        let pg_name = match (&name, primary) {
            (Some(n), _) => n.clone(),
            (None, true) => format!("{}_pkey", self.name),
            (None, false) => format!("{}_{}_key", self.name, cols.join("_")),
        };
        let my_name = match (name, primary) {
            (_, true) => "PRIMARY".to_string(),
            (Some(n), false) => n,
            (None, false) => first.clone(),
        };
        Ok(Key {
            primary,
            pg_name,
            my_name,
            cols: cols.iter().map(index).collect::<Result<_, _>>()?,
        })
    }

    fn build(mut self) -> Result<Schema, String> {
        if self.columns.is_empty() {
            return Err(format!("table \"{}\" has no columns", self.name));
        }
        let mut keys = Vec::new();
        if let Some((name, cols)) = &self.primary {
            keys.push(self.key(true, name.clone(), cols)?);
        }
        for (name, cols) in &self.uniques {
            keys.push(self.key(false, name.clone(), cols)?);
        }
        for &c in keys.iter().filter(|k| k.primary).flat_map(|k| &k.cols) {
            if let Some(col) = self.columns.get_mut(c) {
                col.not_null = true;
            }
        }
        let (auto, auto_declared) = match self.auto.as_slice() {
            [] => (
                keys.first()
                    .filter(|k| k.primary && k.cols.len() == 1)
                    .and_then(|k| k.cols.first().copied())
                    .filter(|&c| self.columns.get(c).is_some_and(|col| col.ty == Ty::Int)),
                false,
            ),
            [one] => (self.columns.iter().position(|c| c.name == *one), true),
            _ => {
                return Err(format!(
                    "table \"{}\" has more than one auto-increment column",
                    self.name
                ))
            }
        };
        if auto_declared
            && auto
                .and_then(|c| self.columns.get(c))
                .is_none_or(|c| c.ty != Ty::Int)
        {
            return Err(format!(
                "the auto-increment column of table \"{}\" must be an integer",
                self.name
            ));
        }
        Ok(Schema {
            name: self.name,
            columns: self.columns,
            keys,
            auto,
            auto_declared,
        })
    }
}
