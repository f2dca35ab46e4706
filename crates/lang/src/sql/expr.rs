//! Expressions of the SQL subset and their evaluation with SQL's three-valued logic.
//!
//! Column names stay names until evaluation: a prepared statement does not know the schema, so
//! [`Expr::check`] resolves them against the table when the statement runs, and evaluation looks
//! them up in the row (tables have a handful of columns; a linear search is the cheap choice).

use std::cmp::Ordering;

use crate::ir::Value;

use crate::ir::sql::{ArithOp, CmpOp, Expr, Schema, Ty};

/// What an expression can read while it is evaluated: the parameters, and a row if there is one.
pub struct Scope<'a> {
    pub params: &'a [Value],
    pub row: Option<(&'a Schema, &'a [Value])>,
}

impl Expr {
    /// Every column the expression names exists in `schema` (or the first one that does not).
    pub fn check(&self, schema: &Schema) -> Result<(), String> {
        let mut missing = None;
        self.visit(&mut |e| {
            if let Expr::Col(c) = e {
                if missing.is_none() && schema.column(c).is_none() {
                    missing = Some(c.clone());
                }
            }
        });
        missing.map_or(Ok(()), Err)
    }

    /// The expression refers to no column, so it has one value for the whole statement.
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.visit(&mut |e| constant &= !matches!(e, Expr::Col(_)));
        constant
    }

    fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Lit(_) | Expr::Param(_) | Expr::Col(_) => {}
            Expr::Neg(e) | Expr::Not(e) | Expr::IsNull { expr: e, .. } => e.visit(f),
            Expr::Arith(_, a, b) | Expr::Cmp(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.visit(f);
                list.iter().for_each(|e| e.visit(f));
            }
        }
    }

    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, String> {
        match self {
            Expr::Lit(v) => Ok(v.clone()),
            Expr::Param(i) => scope
                .params
                .get(*i)
                .cloned()
                .ok_or_else(|| format!("no parameter for placeholder {}", i + 1)),
            Expr::Col(c) => column_value(scope, c),
            Expr::Neg(e) => match e.eval(scope)? {
                Value::None => Ok(Value::None),
                v => as_int(&v)?
                    .checked_neg()
                    .map(Value::Int)
                    .ok_or_else(out_of_range),
            },
            Expr::Arith(op, a, b) => arith(*op, &a.eval(scope)?, &b.eval(scope)?),
            Expr::Cmp(op, a, b) => Ok(compare(*op, &a.eval(scope)?, &b.eval(scope)?)?),
            Expr::And(a, b) => Ok(and(truth(&a.eval(scope)?)?, truth(&b.eval(scope)?)?)),
            Expr::Or(a, b) => Ok(or(truth(&a.eval(scope)?)?, truth(&b.eval(scope)?)?)),
            Expr::Not(e) => Ok(truth(&e.eval(scope)?)?.map_or(Value::None, |b| Value::Bool(!b))),
            Expr::IsNull { expr, negated } => {
                Ok(Value::Bool((expr.eval(scope)? == Value::None) != *negated))
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => in_list(&expr.eval(scope)?, list, *negated, scope),
        }
    }

    /// WHERE semantics: only TRUE selects a row; FALSE and NULL (unknown) do not.
    pub fn holds(&self, scope: &Scope<'_>) -> Result<bool, String> {
        Ok(truth(&self.eval(scope)?)? == Some(true))
    }

    /// The conjuncts of a WHERE clause (`a AND b AND c` → `[a, b, c]`).
    pub fn conjuncts(&self) -> Vec<&Expr> {
        match self {
            Expr::And(a, b) => {
                let mut all = a.conjuncts();
                all.extend(b.conjuncts());
                all
            }
            e => vec![e],
        }
    }
}

fn column_value(scope: &Scope<'_>, name: &str) -> Result<Value, String> {
    let (schema, row) = scope
        .row
        .ok_or_else(|| format!("column \"{name}\" cannot be used here"))?;
    let i = schema
        .column(name)
        .ok_or_else(|| format!("column \"{name}\" does not exist"))?;
    row.get(i)
        .cloned()
        .ok_or_else(|| format!("column \"{name}\" has no value"))
}

fn out_of_range() -> String {
    "integer out of range".to_string()
}

fn as_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("invalid input syntax for type integer: \"{s}\"")),
        v => Err(format!("expected an integer, found {}", v.type_name())),
    }
}

fn arith(op: ArithOp, a: &Value, b: &Value) -> Result<Value, String> {
    if *a == Value::None || *b == Value::None {
        return Ok(Value::None);
    }
    let (x, y) = (as_int(a)?, as_int(b)?);
    let r = match op {
        ArithOp::Add => x.checked_add(y),
        ArithOp::Sub => x.checked_sub(y),
        ArithOp::Mul => x.checked_mul(y),
        ArithOp::Div | ArithOp::Rem if y == 0 => return Err("division by zero".to_string()),
        ArithOp::Div => x.checked_div(y),
        ArithOp::Rem => x.checked_rem(y),
    };
    r.map(Value::Int).ok_or_else(out_of_range)
}

/// A boolean in three-valued logic: `None` is SQL's unknown. Integers count as booleans the way
/// MySQL treats them (non-zero is true).
fn truth(v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::None => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Int(n) => Ok(Some(*n != 0)),
        v => Err(format!(
            "argument of a condition must be boolean, not {}",
            v.type_name()
        )),
    }
}

fn and(a: Option<bool>, b: Option<bool>) -> Value {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Value::Bool(false),
        (Some(true), Some(true)) => Value::Bool(true),
        _ => Value::None,
    }
}

fn or(a: Option<bool>, b: Option<bool>) -> Value {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Value::Bool(true),
        (Some(false), Some(false)) => Value::Bool(false),
        _ => Value::None,
    }
}

fn in_list(v: &Value, list: &[Expr], negated: bool, scope: &Scope<'_>) -> Result<Value, String> {
    let mut found = Some(false);
    for e in list {
        match order(v, &e.eval(scope)?)? {
            Some(Ordering::Equal) => {
                found = Some(true);
                break;
            }
            None => found = None,
            Some(_) => {}
        }
    }
    Ok(found.map_or(Value::None, |f| Value::Bool(f != negated)))
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> Result<Value, String> {
    let Some(ord) = order(a, b)? else {
        return Ok(Value::None);
    };
    Ok(Value::Bool(match op {
        CmpOp::Eq => ord.is_eq(),
        CmpOp::Ne => ord.is_ne(),
        CmpOp::Lt => ord.is_lt(),
        CmpOp::Le => ord.is_le(),
        CmpOp::Gt => ord.is_gt(),
        CmpOp::Ge => ord.is_ge(),
    }))
}

/// SQL comparison: unknown when either side is NULL; a string compared with an integer or a
/// boolean is read as one (as an untyped literal or a bound parameter would be).
pub fn order(a: &Value, b: &Value) -> Result<Option<Ordering>, String> {
    Ok(Some(match (a, b) {
        (Value::None, _) | (_, Value::None) => return Ok(None),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(_) | Value::Bool(_), _) | (_, Value::Int(_) | Value::Bool(_)) => {
            as_int(a)?.cmp(&as_int(b)?)
        }
        _ => {
            return Err(format!(
                "cannot compare {} with {}",
                a.type_name(),
                b.type_name()
            ))
        }
    }))
}

/// Converts a value for storage in a column of type `ty`, as an assignment cast would.
pub fn coerce(ty: Ty, v: Value) -> Result<Value, String> {
    match (ty, v) {
        (_, Value::None) => Ok(Value::None),
        (Ty::Int, v) => as_int(&v).map(Value::Int),
        (Ty::Text(_), v @ Value::Str(_)) => Ok(v),
        (Ty::Text(_), Value::Int(n)) => Ok(Value::str(&n.to_string())),
        (Ty::Text(_), Value::Bool(b)) => Ok(Value::str(if b { "true" } else { "false" })),
        (Ty::Bool, v @ Value::Bool(_)) => Ok(v),
        (Ty::Bool, Value::Int(n)) => Ok(Value::Bool(n != 0)),
        (Ty::Bool, Value::Str(s)) => parse_bool(&s)
            .map(Value::Bool)
            .ok_or_else(|| format!("invalid input syntax for type boolean: \"{s}\"")),
        (ty, v) => Err(format!(
            "cannot store a {} value in a {} column",
            v.type_name(),
            ty.name()
        )),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}
