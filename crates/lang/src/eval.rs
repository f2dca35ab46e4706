//! Evaluation of pure expressions: arithmetic, comparisons, strings, stat fields and world queries.

use std::borrow::Cow;

use crate::collections;
use crate::ir::{BinOp, Builtin, PExpr, Query, Reg, StatField, Value};

/// What an expression may look at while it is evaluated.
pub trait Env {
    fn reg(&self, r: Reg) -> Value;
    /// Register `r` borrowed, for an environment that keeps its registers: reading a register
    /// then costs no clone (no reference count moves for a string). `None` falls back to
    /// [`Env::reg`].
    fn reg_ref(&self, _r: Reg) -> Option<&Value> {
        None
    }
    fn self_name(&self) -> Option<&str>;
    /// The running actor's thread-local variable (none outside an actor).
    fn local(&self, _l: u32) -> Value {
        Value::None
    }
    /// Thread-local `l` borrowed, as [`Env::reg_ref`].
    fn local_ref(&self, _l: u32) -> Option<&Value> {
        None
    }
    fn query(&self, q: Query, args: &[Value]) -> Result<Value, String>;
}

/// Evaluates `e`. Errors are type errors in the scenario ("cannot add string and int"), reported
/// as the actor's failure at run time; the checker catches what it can before that.
///
/// Generic over the environment so that the machine's evaluation is monomorphised (its
/// register reads inline) rather than dispatched through a vtable at every node.
pub fn eval<E: Env + ?Sized>(e: &PExpr, env: &E) -> Result<Value, String> {
    eval_ref(e, env).map(Cow::into_owned)
}

/// Evaluates a condition: `Ok(b)` for a bool, the type error otherwise. Tests and
/// comparisons of registers and constants (every branch of a lowered `match`, most `if`s and
/// invariants) are answered here without building a value or descending into the tree.
pub fn eval_bool<E: Env + ?Sized>(e: &PExpr, env: &E) -> Result<bool, String> {
    match e {
        PExpr::IsOk(r) => Ok(!matches!(reg_of(env, *r).as_ref(), Value::Err(_))),
        PExpr::IsErrno(r, x) => Ok(matches!(reg_of(env, *r).as_ref(), Value::Err(y) if y == x)),
        PExpr::Not(e) => Ok(!eval_bool(e, env)?),
        PExpr::Bin(BinOp::And, a, b) => Ok(eval_bool(a, env)? && eval_bool(b, env)?),
        PExpr::Bin(BinOp::Or, a, b) => Ok(eval_bool(a, env)? || eval_bool(b, env)?),
        PExpr::Bin(
            op @ (BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge),
            a,
            b,
        ) => match (leaf(a, env), leaf(b, env)) {
            (Some(x), Some(y)) => compare(*op, x, y),
            // An invariant's `holders(s) <= 1`, `count(log) == 0`: the world's answer
            // compared where it lands.
            (None, Some(y)) => match &**a {
                PExpr::Query(q, args) if args.is_empty() => compare(*op, &env.query(*q, &[])?, y),
                _ => compare(*op, &*eval_ref(a, env)?, y),
            },
            _ => compare(*op, &*eval_ref(a, env)?, &*eval_ref(b, env)?),
        },
        _ => truthy(&*eval_ref(e, env)?),
    }
}

/// A constant, register or thread-local, borrowed; `None` for anything to evaluate (or a
/// register the environment does not lend).
#[inline(always)]
fn leaf<'a, E: Env + ?Sized>(e: &'a PExpr, env: &'a E) -> Option<&'a Value> {
    match e {
        PExpr::Const(v) => Some(v),
        PExpr::Reg(r) => env.reg_ref(*r),
        PExpr::Local(l) => env.local_ref(*l),
        _ => None,
    }
}

/// Evaluates `e`, borrowing constants and registers instead of cloning them: comparisons,
/// tests and field reads on the hot path then build no value at all. The rare forms
/// (strings built, collections, builtins, queries with arguments) are in [`eval_other`], so
/// that this function's frame stays small.
pub(crate) fn eval_ref<'a, E: Env + ?Sized>(
    e: &'a PExpr,
    env: &'a E,
) -> Result<Cow<'a, Value>, String> {
    Ok(Cow::Owned(match e {
        PExpr::Const(v) => return Ok(Cow::Borrowed(v)),
        PExpr::Reg(r) => return Ok(reg_of(env, *r)),
        PExpr::Local(l) => {
            return Ok(match env.local_ref(*l) {
                Some(v) => Cow::Borrowed(v),
                None => Cow::Owned(env.local(*l)),
            })
        }
        PExpr::Neg(e) => match &*eval_ref(e, env)? {
            Value::Int(n) => Value::Int(n.wrapping_neg()),
            v => return Err(cannot_negate(v)),
        },
        PExpr::IsOk(_) | PExpr::IsErrno(..) | PExpr::Not(_) => Value::Bool(eval_bool(e, env)?),
        PExpr::Bin(BinOp::And | BinOp::Or, ..) => Value::Bool(eval_bool(e, env)?),
        PExpr::Bin(op, a, b) => match (leaf(a, env), leaf(b, env)) {
            (Some(x), Some(y)) => binary(*op, x, y)?,
            _ => binary(*op, &*eval_ref(a, env)?, &*eval_ref(b, env)?)?,
        },
        PExpr::Field(e, f) => match &*eval_ref(e, env)? {
            Value::Stat(s) => Value::Int(match f {
                StatField::Nlink => s.nlink,
                StatField::Mtime => s.mtime,
                StatField::Size => s.size,
                StatField::Ino => s.ino,
            }),
            v => return Err(no_fields(v)),
        },
        PExpr::Query(q, args) if args.is_empty() => env.query(*q, &[])?,
        _ => return eval_other(e, env),
    }))
}

#[cold]
fn cannot_negate(v: &Value) -> String {
    format!("cannot negate a {}", v.type_name())
}

#[cold]
fn no_fields(v: &Value) -> String {
    format!("a {} has no fields; only stat results do", v.type_name())
}

/// The forms [`eval_ref`] leaves out: each builds a value (a string, a collection) or
/// gathers arguments anyway, so a call more costs them nothing.
#[inline(never)]
fn eval_other<'a, E: Env + ?Sized>(e: &'a PExpr, env: &'a E) -> Result<Cow<'a, Value>, String> {
    Ok(Cow::Owned(match e {
        PExpr::SelfName => match env.self_name() {
            Some(s) => Value::str(s),
            None => return Err("`self` is only defined inside an actor".into()),
        },
        PExpr::Concat(parts) => {
            let mut s = String::new();
            for p in parts {
                use std::fmt::Write;
                let _ = write!(s, "{}", eval_ref(p, env)?);
            }
            Value::str(&s)
        }
        PExpr::ErrName(r) => {
            let v = reg_of(env, *r);
            let name = match v.as_ref() {
                Value::Err(e) => Some(e.name()),
                _ => None,
            };
            match name {
                Some(name) => Value::str(name),
                None => return Ok(v),
            }
        }
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
        PExpr::Index { coll, key, at } => {
            collections::index(&*eval_ref(coll, env)?, &*eval_ref(key, env)?)
                .map_err(|msg| format!("{at}: {msg}"))?
        }
        // The hot forms, should a caller come here directly.
        _ => return eval_ref(e, env),
    }))
}

/// Register `r`, borrowed where the environment allows.
#[inline(always)]
fn reg_of<E: Env + ?Sized>(env: &E, r: Reg) -> Cow<'_, Value> {
    match env.reg_ref(r) {
        Some(v) => Cow::Borrowed(v),
        None => Cow::Owned(env.reg(r)),
    }
}

pub fn truthy(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        v => Err(format!("expected a bool, found a {} ({v})", v.type_name())),
    }
}

/// `==`, `!=`, `<`, `<=`, `>`, `>=`: ints and strings are ordered, anything compares equal.
fn compare(op: BinOp, a: &Value, b: &Value) -> Result<bool, String> {
    use Value::{Int, Str};
    let ord = match (op, a, b) {
        (BinOp::Eq, ..) => return Ok(a == b),
        (BinOp::Ne, ..) => return Ok(a != b),
        (_, Int(x), Int(y)) => x.cmp(y),
        (_, Str(x), Str(y)) => x.cmp(y),
        _ => return Err(type_error(op, a, b)),
    };
    Ok(match op {
        BinOp::Lt => ord.is_lt(),
        BinOp::Le => ord.is_le(),
        BinOp::Gt => ord.is_gt(),
        _ => ord.is_ge(),
    })
}

#[cold]
fn type_error(op: BinOp, a: &Value, b: &Value) -> String {
    format!(
        "cannot apply `{}` to {} and {}",
        op_text(op),
        a.type_name(),
        b.type_name()
    )
}

fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    use Value::{Bool, Int, Str};
    let type_err = |a: &Value, b: &Value| -> Result<Value, String> { Err(type_error(op, a, b)) };
    Ok(match op {
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            Bool(compare(op, a, b)?)
        }
        BinOp::Add => match (a, b) {
            (Int(x), Int(y)) => Int(x.wrapping_add(*y)),
            (Str(x), Str(y)) => Value::str(&format!("{x}{y}")),
            _ => return type_err(a, b),
        },
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => match (a, b) {
            (Int(_), Int(0)) if matches!(op, BinOp::Div | BinOp::Rem) => {
                return Err(String::from("division by zero"))
            }
            (Int(x), Int(y)) => Int(match op {
                BinOp::Sub => x.wrapping_sub(*y),
                BinOp::Mul => x.wrapping_mul(*y),
                BinOp::Div => x.wrapping_div(*y),
                _ => x.wrapping_rem(*y),
            }),
            _ => return type_err(a, b),
        },
        BinOp::In => Bool(collections::contains(a, b)?),
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

pub(crate) fn op_text(op: BinOp) -> &'static str {
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
