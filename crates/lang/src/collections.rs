//! Lists and maps at run time: indexing, membership and the builtins that return updated copies.
//!
//! Values are immutable and shared (`Arc`), so an "update" builds a new list or map; the
//! scenario's variable or cell then holds the new one. Maps are `BTreeMap`s: a state holding
//! one hashes and compares the same way on every run, which the state-caching engines need.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ir::{Builtin, Value};

/// `coll[key]`: an element of a list (by position from 0) or the value of a map's key.
pub(crate) fn index(coll: &Value, key: &Value) -> Result<Value, String> {
    match (coll, key) {
        (Value::List(items), Value::Int(i)) => position(items, *i).map(|i| items[i].clone()),
        (Value::List(_), k) => Err(format!("a list is indexed by an int, not {}", a_type(k))),
        (Value::Map(entries), k) => entries.get(k).cloned().ok_or_else(|| {
            format!(
                "no key {} in the map ({})",
                quoted(k),
                describe_keys(entries)
            )
        }),
        (v, _) => Err(format!(
            "{} cannot be indexed; only lists and maps can",
            a_type(v)
        )),
    }
}

/// `x in coll`: an element of a list, a key of a map, a substring of a string.
pub(crate) fn contains(x: &Value, coll: &Value) -> Result<bool, String> {
    match (x, coll) {
        (x, Value::List(items)) => Ok(items.contains(x)),
        (x, Value::Map(entries)) => Ok(entries.contains_key(x)),
        (Value::Str(sub), Value::Str(s)) => Ok(s.contains(&**sub)),
        (x, c) => Err(format!(
            "cannot apply `in` to {} and {}: the right side is a list, a map or (for a string) a string",
            x.type_name(),
            c.type_name()
        )),
    }
}

/// `len` of a list or a map; `None` for any other value.
pub(crate) fn len(v: &Value) -> Option<i64> {
    match v {
        Value::List(items) => Some(items.len() as i64),
        Value::Map(entries) => Some(entries.len() as i64),
        _ => None,
    }
}

/// The collection builtins (`push`, `put`, `rest`, `remove`, and `for`'s `Items`); `None` when
/// `b` is not one of them or the arguments do not fit, so the caller reports the types.
pub(crate) fn builtin(b: Builtin, args: &[Value]) -> Option<Result<Value, String>> {
    Some(match (b, args) {
        (Builtin::Push, [Value::List(items), v]) => {
            let mut items = items.as_ref().clone();
            items.push(v.clone());
            Ok(list(items))
        }
        (Builtin::Put, [Value::Map(entries), k, v]) => {
            let mut entries = entries.as_ref().clone();
            entries.insert(k.clone(), v.clone());
            Ok(Value::Map(Arc::new(entries)))
        }
        (Builtin::Put, [Value::List(items), Value::Int(i), v]) => position(items, *i).map(|i| {
            let mut items = items.as_ref().clone();
            items[i] = v.clone();
            list(items)
        }),
        (Builtin::Rest, [Value::List(items)]) => Ok(list(items.iter().skip(1).cloned().collect())),
        (Builtin::Remove, [Value::Map(entries), k]) => {
            let mut entries = entries.as_ref().clone();
            entries.remove(k);
            Ok(Value::Map(Arc::new(entries)))
        }
        (Builtin::Remove, [Value::List(items), v]) => {
            let mut items = items.as_ref().clone();
            if let Some(i) = items.iter().position(|x| x == v) {
                items.remove(i);
            }
            Ok(list(items))
        }
        (Builtin::Items, [v @ Value::List(_)]) => Ok(v.clone()),
        (Builtin::Items, [Value::Map(entries)]) => Ok(list(entries.keys().cloned().collect())),
        (Builtin::Items, [v]) => Err(format!(
            "`for` goes over a list or a map, not {} ({v})",
            a_type(v)
        )),
        (Builtin::Push | Builtin::Rest, [v, ..]) => Err(format!(
            "`{}` takes a list first, not {}",
            name(b),
            a_type(v)
        )),
        (Builtin::Put | Builtin::Remove, [v, ..]) if len(v).is_none() => Err(format!(
            "`{}` takes a map or a list first, not {}",
            name(b),
            a_type(v)
        )),
        _ => return None,
    })
}

fn name(b: Builtin) -> String {
    format!("{b:?}").to_lowercase()
}

/// "an int", "a map": a value's type with its article, for messages.
pub(crate) fn a_type(v: &Value) -> String {
    let t = v.type_name();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// `put(coll, key, value)`, with the type error when `coll` is neither a map nor a list.
pub fn put(coll: &Value, key: &Value, value: &Value) -> Result<Value, String> {
    let args = [coll.clone(), key.clone(), value.clone()];
    builtin(Builtin::Put, &args).unwrap_or_else(|| {
        Err(match coll {
            Value::List(_) => format!("a list is indexed by an int, not {}", a_type(key)),
            v => format!(
                "{} has no entries to set; only lists and maps do",
                a_type(v)
            ),
        })
    })
}

/// Builds a map from its entries in the order written; a key written twice keeps its last value.
pub(crate) fn map(entries: impl IntoIterator<Item = (Value, Value)>) -> Value {
    Value::Map(Arc::new(entries.into_iter().collect::<BTreeMap<_, _>>()))
}

pub(crate) fn list(items: Vec<Value>) -> Value {
    Value::List(Arc::new(items))
}

/// Position `i` of `items`, or the error for an index out of range (negative ones included).
fn position(items: &[Value], i: i64) -> Result<usize, String> {
    usize::try_from(i)
        .ok()
        .filter(|&i| i < items.len())
        .ok_or_else(|| match items.len() {
            0 => format!("index {i} is out of range: the list is empty"),
            n => format!(
                "index {i} is out of range of a list of {n} (0 to {})",
                n - 1
            ),
        })
}

fn quoted(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{s:?}"),
        v => v.to_string(),
    }
}

/// The keys a map has, for the message about one it does not (at most five shown).
fn describe_keys(entries: &BTreeMap<Value, Value>) -> String {
    if entries.is_empty() {
        return "it is empty".into();
    }
    let shown: Vec<String> = entries.keys().take(5).map(quoted).collect();
    let more = if entries.len() > 5 { ", …" } else { "" };
    format!("its keys: {}{more}", shown.join(", "))
}
