//! Evaluation of pure expressions: arithmetic, comparisons, strings, stat fields and world queries.

use crate::collections;
use crate::ir::{BinOp, Builtin, PExpr, Query, Reg, StatField, Value};

/// What an expression may look at while it is evaluated.
pub trait Env {
    fn reg(&self, r: Reg) -> Value;
    fn self_name(&self) -> Option<&str>;
    /// The running actor's thread-local variable (none outside an actor).
    fn local(&self, _l: u32) -> Value {
        Value::None
    }
    fn query(&self, q: Query, args: &[Value]) -> Result<Value, String>;
}

/// Evaluates `e`. Errors are type errors in the scenario ("cannot add string and int"), reported
/// as the actor's failure at run time; the checker catches what it can before that.
pub fn eval(e: &PExpr, env: &dyn Env) -> Result<Value, String> {
    Ok(match e {
        PExpr::Const(v) => v.clone(),
        PExpr::Reg(r) => env.reg(*r),
        PExpr::Local(l) => env.local(*l),
        PExpr::SelfName => match env.self_name() {
            Some(s) => Value::str(s),
            None => return Err("`self` is only defined inside an actor".into()),
        },
        PExpr::Neg(e) => match eval(e, env)? {
            Value::Int(n) => Value::Int(n.wrapping_neg()),
            v => return Err(format!("cannot negate a {}", v.type_name())),
        },
        PExpr::Not(e) => Value::Bool(!truthy(&eval(e, env)?)?),
        PExpr::Bin(BinOp::And, a, b) => {
            Value::Bool(truthy(&eval(a, env)?)? && truthy(&eval(b, env)?)?)
        }
        PExpr::Bin(BinOp::Or, a, b) => {
            Value::Bool(truthy(&eval(a, env)?)? || truthy(&eval(b, env)?)?)
        }
        PExpr::Bin(op, a, b) => binary(*op, eval(a, env)?, eval(b, env)?)?,
        PExpr::Field(e, f) => match eval(e, env)? {
            Value::Stat(s) => Value::Int(match f {
                StatField::Nlink => s.nlink,
                StatField::Mtime => s.mtime,
                StatField::Size => s.size,
                StatField::Ino => s.ino,
            }),
            v => {
                return Err(format!(
                    "a {} has no fields; only stat results do",
                    v.type_name()
                ))
            }
        },
        PExpr::Concat(parts) => {
            let mut s = String::new();
            for p in parts {
                use std::fmt::Write;
                let _ = write!(s, "{}", eval(p, env)?);
            }
            Value::str(&s)
        }
        PExpr::IsOk(r) => Value::Bool(!matches!(env.reg(*r), Value::Err(_))),
        PExpr::IsErrno(r, e) => Value::Bool(env.reg(*r) == Value::Err(*e)),
        PExpr::ErrName(r) => match env.reg(*r) {
            Value::Err(e) => Value::str(e.name()),
            v => v,
        },
        PExpr::Call(b, args) => {
            let vals = args
                .iter()
                .map(|a| eval(a, env))
                .collect::<Result<Vec<_>, _>>()?;
            builtin(*b, &vals)?
        }
        PExpr::Query(q, args) => {
            let vals = args
                .iter()
                .map(|a| eval(a, env))
                .collect::<Result<Vec<_>, _>>()?;
            env.query(*q, &vals)?
        }
        PExpr::List(items) => collections::list(
            items
                .iter()
                .map(|a| eval(a, env))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        PExpr::Map(entries) => collections::map(
            entries
                .iter()
                .map(|(k, v)| Ok((eval(k, env)?, eval(v, env)?)))
                .collect::<Result<Vec<_>, String>>()?,
        ),
        PExpr::Index { coll, key, at } => collections::index(&eval(coll, env)?, &eval(key, env)?)
            .map_err(|msg| format!("{at}: {msg}"))?,
    })
}

pub fn truthy(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        v => Err(format!("expected a bool, found a {} ({v})", v.type_name())),
    }
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, String> {
    use Value::{Bool, Int, Str};
    let type_err = |a: &Value, b: &Value| -> Result<Value, String> {
        Err(format!(
            "cannot apply `{}` to {} and {}",
            op_text(op),
            a.type_name(),
            b.type_name()
        ))
    };
    Ok(match op {
        BinOp::Eq => Bool(a == b),
        BinOp::Ne => Bool(a != b),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = match (&a, &b) {
                (Int(x), Int(y)) => x.cmp(y),
                (Str(x), Str(y)) => x.cmp(y),
                _ => return type_err(&a, &b),
            };
            Bool(match op {
                BinOp::Lt => ord.is_lt(),
                BinOp::Le => ord.is_le(),
                BinOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        BinOp::Add => match (&a, &b) {
            (Int(x), Int(y)) => Int(x.wrapping_add(*y)),
            (Str(x), Str(y)) => Value::str(&format!("{x}{y}")),
            _ => return type_err(&a, &b),
        },
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => match (&a, &b) {
            (Int(_), Int(0)) if matches!(op, BinOp::Div | BinOp::Rem) => {
                return Err(String::from("division by zero"))
            }
            (Int(x), Int(y)) => Int(match op {
                BinOp::Sub => x.wrapping_sub(*y),
                BinOp::Mul => x.wrapping_mul(*y),
                BinOp::Div => x.wrapping_div(*y),
                _ => x.wrapping_rem(*y),
            }),
            _ => return type_err(&a, &b),
        },
        BinOp::In => Bool(collections::contains(&a, &b)?),
        BinOp::And | BinOp::Or => unreachable!("short-circuit operators are evaluated in `eval`"),
    })
}

fn builtin(b: Builtin, args: &[Value]) -> Result<Value, String> {
    Ok(match (b, args) {
        (Builtin::Len, [Value::Str(s)]) => Value::Int(s.chars().count() as i64),
        (Builtin::Str, [v]) => Value::str(&v.to_string()),
        (Builtin::Int, [Value::Int(n)]) => Value::Int(*n),
        (Builtin::Int, [Value::None]) => Value::Int(0),
        (Builtin::Int, [Value::Str(s)]) => match s.trim() {
            "" => Value::Int(0),
            t => Value::Int(
                t.parse()
                    .map_err(|_| format!("int({s:?}): not a decimal integer"))?,
            ),
        },
        (Builtin::Contains, [Value::Str(s), Value::Str(sub)]) => Value::Bool(s.contains(&**sub)),
        (Builtin::Min, [Value::Int(a), Value::Int(b)]) => Value::Int(*a.min(b)),
        (Builtin::Max, [Value::Int(a), Value::Int(b)]) => Value::Int(*a.max(b)),
        (Builtin::Len, [Value::Rows(rows)]) => Value::Int(rows.len() as i64),
        (Builtin::First, [Value::Rows(rows)]) => rows
            .first()
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or(Value::None),
        (Builtin::Len, [v]) if collections::len(v).is_some() => {
            Value::Int(collections::len(v).unwrap_or(0))
        }
        (b, args) => {
            if let Some(res) = collections::builtin(b, args) {
                return res;
            }
            let types: Vec<_> = args.iter().map(Value::type_name).collect();
            return Err(format!("{b:?} does not take ({})", types.join(", ")).to_lowercase());
        }
    })
}

pub fn op_text(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Rem => "%",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::And => "and",
        BinOp::Or => "or",
        BinOp::In => "in",
    }
}
