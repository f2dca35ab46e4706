//! `prepare`: SQL text → a small statement tree the model executes.
//!
//! Parsing is sqlparser's (GenericDialect, which accepts both MySQL's and PostgreSQL's spellings);
//! this module lowers its very general AST to the subset the model implements and refuses
//! everything else by name, so a scenario never runs a statement whose clauses were silently
//! ignored. Placeholders are numbered here, once, in the order they appear in the text.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use sqlparser::ast::{
    self, BinaryOperator, SelectItem, SetExpr, Statement, TableFactor, UnaryOperator,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::ir::Value;

use super::ddl;
use super::expr::Scope;
use super::subset::{ident, object_name, unsupported};
use crate::ir::sql::{
    ArithOp, CmpOp, Delete, Expr, Insert, Level, LockMode, Prepared, Projection, Select, Session,
    Stmt, Strength, Update,
};

/// Limits that keep parsing, lowering and evaluation well inside the stack.
const MAX_TOKENS: usize = 4000;
const MAX_DEPTH: usize = 64;

/// Parses `sql` (one statement) and lowers it to the subset, or says what is not supported.
///
/// Placeholders: `?`, Python DB-API's `%s` (rewritten to `?` before parsing, outside quotes),
/// or PostgreSQL's `$1`, `$2`, … — not mixed.
pub fn prepare(sql: &str) -> Result<Arc<Prepared>, String> {
    let (text, weaker) = weaker_lock_clause(&rewrite_pyformat(sql));
    let placeholders = Placeholders::scan(&text)?;
    let dialect = GenericDialect {};
    let statements = Parser::parse_sql(&dialect, &text)
        .map_err(|e| format!("cannot parse `{}`: {e}", clip(sql)))?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err("empty SQL: expected one statement".to_string()),
        more => {
            return Err(format!(
                "expected one statement, found {} in `{}`",
                more.len(),
                clip(sql)
            ))
        }
    };
    let mut stmt = Lower {
        placeholders: &placeholders,
        qualifiers: Vec::new(),
        depth: Cell::new(0),
    }
    .statement(statement)?;
    if let (Stmt::Select(s), Some(strength)) = (&mut stmt, weaker) {
        s.strength = strength;
    }
    if let Stmt::SetLevel { session, .. } = &mut stmt {
        // sqlparser drops MySQL's SESSION keyword in SET SESSION TRANSACTION; the text keeps it.
        let words: Vec<String> = text
            .split_whitespace()
            .take(3)
            .map(str::to_ascii_uppercase)
            .collect();
        if *session == Session::Transaction && words.get(1).is_some_and(|w| w == "SESSION") {
            *session = Session::MySql;
        } else if words.get(1).is_some_and(|w| w == "GLOBAL" || w == "LOCAL") {
            return Err(unsupported("SET GLOBAL/LOCAL TRANSACTION (the model sets the transaction's or the session's level)"));
        }
    }
    Ok(Arc::new(Prepared {
        sql: sql.to_string(),
        params: placeholders.count,
        stmt,
    }))
}

/// PostgreSQL's `FOR KEY SHARE` and `FOR NO KEY UPDATE`, which sqlparser does not read:
/// rewritten to `FOR SHARE` / `FOR UPDATE` (the same length, padded, so positions in error
/// messages hold), with the strength they stand for.
fn weaker_lock_clause(text: &str) -> (String, Option<Strength>) {
    let upper = text.to_ascii_uppercase();
    let words: Vec<(usize, &str)> = upper
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - upper.as_ptr() as usize, w))
        .collect();
    for i in 0..words.len() {
        let at = |k: usize| words.get(i + k).map(|(_, w)| *w);
        let (strength, last) = match (at(0), at(1), at(2), at(3)) {
            (Some("FOR"), Some("KEY"), Some(w), _) if w.starts_with("SHARE") => {
                (Strength::KeyShare, 2)
            }
            (Some("FOR"), Some("NO"), Some("KEY"), Some(w)) if w.starts_with("UPDATE") => {
                (Strength::NoKeyUpdate, 3)
            }
            _ => continue,
        };
        let start = words[i].0;
        let keyword = if strength == Strength::KeyShare {
            "SHARE"
        } else {
            "UPDATE"
        };
        let end = words[i + last].0 + keyword.len();
        let replacement = format!("FOR {keyword}");
        let padded = format!("{replacement:<width$}", width = end - start);
        let mut out = String::with_capacity(text.len());
        out.push_str(&text[..start]);
        out.push_str(&padded);
        out.push_str(&text[end..]);
        return (out, Some(strength));
    }
    (text.to_string(), None)
}

/// The statement with `FOR KEY SHARE` / `FOR NO KEY UPDATE` written as `FOR SHARE` / `FOR
/// UPDATE`, for parsers that know only those (the result columns do not depend on it).
pub fn with_plain_lock_clause(sql: &str) -> String {
    weaker_lock_clause(sql).0
}

/// The first 80 characters of a statement, for messages.
fn clip(sql: &str) -> String {
    let sql = sql.trim();
    match sql.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &sql[..i]),
        None => sql.to_string(),
    }
}

/// Replaces `%s` outside quotes and comments by `? ` (same length, so error positions hold).
fn rewrite_pyformat(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        out.push(c);
        match quote {
            Some('-') if c == '\n' => quote = None,
            Some(q) if c == q && q != '-' => quote = None,
            Some(_) => {}
            None if matches!(c, '\'' | '"' | '`') => quote = Some(c),
            None if c == '-' && chars.peek() == Some(&'-') => quote = Some('-'),
            None if c == '%' && chars.peek() == Some(&'s') => {
                chars.next();
                out.pop();
                out.push_str("? ");
            }
            None => {}
        }
    }
    out
}

/// Where each placeholder is in the text, and so which parameter it takes.
struct Placeholders {
    /// `?` placeholders by (line, column), numbered in text order.
    positional: BTreeMap<(u64, u64), usize>,
    count: usize,
}

impl Placeholders {
    fn scan(text: &str) -> Result<Placeholders, String> {
        let tokens = Tokenizer::new(&GenericDialect {}, text)
            .tokenize_with_location()
            .map_err(|e| format!("cannot parse `{}`: {e}", clip(text)))?;
        let words = tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .count();
        if words > MAX_TOKENS {
            return Err(format!(
                "statement too long for the model: {words} tokens (at most {MAX_TOKENS})"
            ));
        }
        let mut positional = BTreeMap::new();
        let mut numbered = 0;
        for t in &tokens {
            let Token::Placeholder(p) = &t.token else {
                continue;
            };
            if p == "?" {
                let n = positional.len();
                positional.insert((t.span.start.line, t.span.start.column), n);
            } else {
                numbered = numbered.max(dollar_number(p)?);
            }
        }
        if !positional.is_empty() && numbered > 0 {
            return Err("mixed placeholder styles: use either ?/%s or $1, $2, …".to_string());
        }
        Ok(Placeholders {
            count: positional.len().max(numbered),
            positional,
        })
    }
}

fn dollar_number(p: &str) -> Result<usize, String> {
    p.strip_prefix('$')
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("unsupported placeholder `{p}`: use ?, %s or $1, $2, …"))
}

/// The lowering of one statement; `qualifiers` are the names a column may be prefixed with.
struct Lower<'a> {
    placeholders: &'a Placeholders,
    qualifiers: Vec<String>,
    /// How deeply the expression being lowered is nested, against [`MAX_DEPTH`].
    depth: Cell<usize>,
}

impl Lower<'_> {
    fn statement(&mut self, s: &Statement) -> Result<Stmt, String> {
        match s {
            Statement::CreateTable(c) => {
                ddl::create_table(c, &|e| self.constant(e)).map(Stmt::Create)
            }
            Statement::Insert(i) => self.insert(i).map(Stmt::Insert),
            Statement::Query(q) => self.select(q).map(Stmt::Select),
            Statement::Update(u) => self.update(u).map(Stmt::Update),
            Statement::Delete(d) => self.delete(d).map(Stmt::Delete),
            Statement::StartTransaction {
                modes,
                statements,
                exception,
                modifier,
                ..
            } => {
                if !statements.is_empty() || exception.is_some() {
                    return Err(unsupported("BEGIN ... END blocks"));
                }
                use ast::TransactionModifier as M;
                let immediate = match modifier {
                    None | Some(M::Deferred) => false,
                    Some(M::Immediate | M::Exclusive) => true,
                    Some(other) => return Err(unsupported(format!("BEGIN {other}"))),
                };
                Ok(Stmt::Begin {
                    level: isolation_mode(modes)?,
                    immediate,
                })
            }
            Statement::Set(ast::Set::SetTransaction {
                modes,
                snapshot: None,
                session,
            }) => {
                let level = isolation_mode(modes)?
                    .ok_or_else(|| unsupported("SET TRANSACTION without ISOLATION LEVEL"))?;
                Ok(Stmt::SetLevel {
                    level,
                    session: if *session {
                        Session::Characteristics
                    } else {
                        Session::Transaction
                    },
                })
            }
            Statement::Commit {
                chain: false,
                modifier: None,
                ..
            } => Ok(Stmt::Commit),
            Statement::Rollback {
                chain: false,
                savepoint: None,
            } => Ok(Stmt::Rollback),
            Statement::Rollback {
                savepoint: Some(name),
                chain: false,
            } => Ok(Stmt::RollbackTo(name.value.to_lowercase())),
            Statement::Savepoint { name } => Ok(Stmt::Savepoint(name.value.to_lowercase())),
            Statement::ReleaseSavepoint { name } => Ok(Stmt::Release(name.value.to_lowercase())),
            other => Err(unsupported(format!(
                "the statement `{}`",
                clip(&other.to_string())
            ))),
        }
    }

    /// A plain table reference `t` or `t [AS] alias`; its names become the column qualifiers.
    fn table(&mut self, t: &ast::TableWithJoins) -> Result<String, String> {
        if !t.joins.is_empty() {
            return Err(unsupported("joins"));
        }
        let TableFactor::Table { name, alias, .. } = &t.relation else {
            return Err(unsupported(format!("the table reference `{}`", t.relation)));
        };
        let expected = match alias {
            Some(a) => format!("{name} {a}"),
            None => name.to_string(),
        };
        if t.relation.to_string() != expected
            || alias.as_ref().is_some_and(|a| !a.columns.is_empty())
        {
            return Err(unsupported(format!("the table reference `{}`", t.relation)));
        }
        let table = object_name(name)?;
        self.qualifiers.push(table.clone());
        self.qualifiers.extend(alias.iter().map(|a| ident(&a.name)));
        Ok(table)
    }

    fn select(&mut self, q: &ast::Query) -> Result<Select, String> {
        let extra = [
            (q.with.is_some(), "WITH"),
            (q.fetch.is_some(), "FETCH"),
            (q.for_clause.is_some(), "FOR XML/JSON"),
            (
                q.settings.is_some() || q.format_clause.is_some() || !q.pipe_operators.is_empty(),
                "this query syntax",
            ),
        ];
        if let Some((_, what)) = extra.iter().find(|(present, _)| *present) {
            return Err(unsupported(*what));
        }
        let SetExpr::Select(s) = q.body.as_ref() else {
            return Err(unsupported(format!(
                "the query `{}` (only a single SELECT ... FROM one table)",
                clip(&q.body.to_string())
            )));
        };
        check_select_clauses(s)?;
        let [from] = s.from.as_slice() else {
            return Err(unsupported("SELECT without exactly one table in FROM"));
        };
        let table = self.table(from)?;
        Ok(Select {
            table,
            projection: self.projection(&s.projection)?,
            filter: s.selection.as_ref().map(|e| self.expr(e)).transpose()?,
            order: self.order_by(q.order_by.as_ref())?,
            limit: self.limit(q.limit_clause.as_ref())?,
            lock: lock_mode(&q.locks)?,
            strength: if shared_lock(&q.locks) {
                Strength::Share
            } else {
                Strength::Update
            },
        })
    }

    fn projection(&self, items: &[SelectItem]) -> Result<Projection, String> {
        if let [item] = items {
            let text = item.to_string();
            if text == "*" {
                return Ok(Projection::Star);
            }
            if text.eq_ignore_ascii_case("COUNT(*)") {
                return Ok(Projection::CountStar);
            }
        }
        let exprs = items.iter().map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => self.expr(e),
            other => Err(unsupported(format!(
                "the select item `{other}` (use *, COUNT(*) alone, or columns)"
            ))),
        });
        exprs.collect::<Result<_, _>>().map(Projection::Exprs)
    }

    fn order_by(&self, order: Option<&ast::OrderBy>) -> Result<Vec<(Expr, bool)>, String> {
        let Some(order) = order else {
            return Ok(Vec::new());
        };
        let ast::OrderByKind::Expressions(exprs) = &order.kind else {
            return Err(unsupported(format!("`{order}`")));
        };
        let lower = |o: &ast::OrderByExpr| {
            if o.options.nulls_first.is_some() || o.with_fill.is_some() {
                return Err(unsupported(format!("`{o}` (NULLS FIRST/LAST)")));
            }
            let desc = match &o.options.sort {
                None | Some(ast::OrderBySort::Asc) => false,
                Some(ast::OrderBySort::Desc) => true,
                Some(ast::OrderBySort::Using(_)) => return Err(unsupported("ORDER BY ... USING")),
            };
            Ok((self.expr(&o.expr)?, desc))
        };
        exprs.iter().map(lower).collect()
    }

    fn limit(&self, limit: Option<&ast::LimitClause>) -> Result<Option<Expr>, String> {
        match limit {
            None => Ok(None),
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset: None,
                limit_by,
            }) if limit_by.is_empty() => limit.as_ref().map(|e| self.expr(e)).transpose(),
            Some(other) => Err(unsupported(format!(
                "`{}` (only LIMIT n)",
                other.to_string().trim()
            ))),
        }
    }

    fn update(&mut self, u: &ast::Update) -> Result<Update, String> {
        let extra = [
            (u.from.is_some(), "UPDATE ... FROM"),
            (u.returning.is_some() || u.output.is_some(), "RETURNING"),
            (u.or.is_some(), "UPDATE OR ..."),
            (
                !u.order_by.is_empty() || u.limit.is_some(),
                "UPDATE ... ORDER BY/LIMIT",
            ),
            (
                u.on_cluster.is_some() || u.settings.is_some() || !u.optimizer_hints.is_empty(),
                "this UPDATE syntax",
            ),
        ];
        if let Some((_, what)) = extra.iter().find(|(present, _)| *present) {
            return Err(unsupported(*what));
        }
        let table = self.table(&u.table)?;
        let sets = u.assignments.iter().map(|a| match &a.target {
            ast::AssignmentTarget::ColumnName(name) => {
                Ok((object_name(name)?, self.expr(&a.value)?))
            }
            ast::AssignmentTarget::Tuple(_) => Err(unsupported("tuple assignment in SET")),
        });
        let sets = sets.collect::<Result<_, _>>()?;
        Ok(Update {
            table,
            sets,
            filter: u.selection.as_ref().map(|e| self.expr(e)).transpose()?,
        })
    }

    fn delete(&mut self, d: &ast::Delete) -> Result<Delete, String> {
        let extra = [
            (
                !d.tables.is_empty() || d.using.is_some(),
                "multi-table DELETE",
            ),
            (d.returning.is_some() || d.output.is_some(), "RETURNING"),
            (
                !d.order_by.is_empty() || d.limit.is_some(),
                "DELETE ... ORDER BY/LIMIT",
            ),
            (
                d.on_cluster.is_some() || d.settings.is_some() || !d.optimizer_hints.is_empty(),
                "this DELETE syntax",
            ),
        ];
        if let Some((_, what)) = extra.iter().find(|(present, _)| *present) {
            return Err(unsupported(*what));
        }
        let ast::FromTable::WithFromKeyword(from) = &d.from else {
            return Err(unsupported("DELETE without FROM"));
        };
        let [from] = from.as_slice() else {
            return Err(unsupported("DELETE from more than one table"));
        };
        let table = self.table(from)?;
        Ok(Delete {
            table,
            filter: d.selection.as_ref().map(|e| self.expr(e)).transpose()?,
        })
    }

    fn insert(&mut self, i: &ast::Insert) -> Result<Insert, String> {
        let extra = [
            (i.on.is_some(), "ON CONFLICT / ON DUPLICATE KEY UPDATE"),
            (i.ignore, "INSERT IGNORE"),
            (i.replace_into, "REPLACE"),
            (i.returning.is_some() || i.output.is_some(), "RETURNING"),
            (i.or.is_some(), "INSERT OR ..."),
            (!i.assignments.is_empty(), "INSERT ... SET"),
            (
                i.table_alias.is_some() || i.insert_alias.is_some(),
                "aliases in INSERT",
            ),
            (
                i.overwrite
                    || i.partitioned.is_some()
                    || !i.after_columns.is_empty()
                    || i.has_table_keyword,
                "this INSERT syntax",
            ),
            (
                i.overriding.is_some()
                    || i.priority.is_some()
                    || i.settings.is_some()
                    || i.format_clause.is_some(),
                "this INSERT syntax",
            ),
            (
                i.multi_table_insert_type.is_some() || !i.optimizer_hints.is_empty(),
                "this INSERT syntax",
            ),
        ];
        if let Some((_, what)) = extra.iter().find(|(present, _)| *present) {
            return Err(unsupported(*what));
        }
        let ast::TableObject::TableName(name) = &i.table else {
            return Err(unsupported("INSERT into a table function"));
        };
        let table = object_name(name)?;
        let columns = i
            .columns
            .iter()
            .map(object_name)
            .collect::<Result<Vec<_>, _>>()?;
        let values = match i.source.as_deref() {
            Some(ast::Query {
                body,
                order_by: None,
                limit_clause: None,
                with: None,
                locks,
                ..
            }) if locks.is_empty() => match body.as_ref() {
                SetExpr::Values(v) => v,
                other => {
                    return Err(unsupported(format!(
                        "INSERT ... `{}` (only VALUES)",
                        clip(&other.to_string())
                    )))
                }
            },
            _ => return Err(unsupported("INSERT without VALUES")),
        };
        let rows = values.rows.iter().map(|row| {
            row.content
                .iter()
                .map(|e| self.expr(e))
                .collect::<Result<Vec<_>, _>>()
        });
        Ok(Insert {
            table,
            columns: (!columns.is_empty()).then_some(columns),
            rows: rows.collect::<Result<_, _>>()?,
        })
    }

    /// Lowers an expression, refusing nesting deeper than [`MAX_DEPTH`]: a left-deep chain of a
    /// thousand ORs is valid SQL, but lowering and evaluating it recursively would overflow the
    /// stack.
    fn expr(&self, e: &ast::Expr) -> Result<Expr, String> {
        let depth = self.depth.get();
        if depth >= MAX_DEPTH {
            return Err(format!(
                "expression nested more than {MAX_DEPTH} levels deep; the model refuses it"
            ));
        }
        self.depth.set(depth + 1);
        let lowered = self.expr_at_depth(e);
        self.depth.set(depth);
        lowered
    }

    fn expr_at_depth(&self, e: &ast::Expr) -> Result<Expr, String> {
        use ast::Expr as E;
        let b = |e: &ast::Expr| self.expr(e).map(Box::new);
        Ok(match e {
            E::Identifier(id) => Expr::Col(ident(id)),
            E::CompoundIdentifier(parts) => self.qualified(parts)?,
            E::Value(v) => self.value(v)?,
            E::Nested(inner) => self.expr(inner)?,
            E::UnaryOp { op: UnaryOperator::Minus, expr } => Expr::Neg(b(expr)?),
            E::UnaryOp { op: UnaryOperator::Plus, expr } => self.expr(expr)?,
            E::UnaryOp { op: UnaryOperator::Not, expr } => Expr::Not(b(expr)?),
            E::BinaryOp { left, op, right } => binary(op, b(left)?, b(right)?).ok_or_else(|| unsupported(format!("the operator {op} in `{e}`")))?,
            E::IsNull(inner) => Expr::IsNull { expr: b(inner)?, negated: false },
            E::IsNotNull(inner) => Expr::IsNull { expr: b(inner)?, negated: true },
            E::In { expr, target: ast::InTarget::List(list), negated, global: false } => {
                Expr::InList { expr: b(expr)?, list: list.iter().map(|e| self.expr(e)).collect::<Result<_, _>>()?, negated: *negated }
            }
            E::Between { expr, negated, low, high } => {
                let x = b(expr)?;
                let between = Expr::And(Box::new(Expr::Cmp(CmpOp::Ge, x.clone(), b(low)?)), Box::new(Expr::Cmp(CmpOp::Le, x, b(high)?)));
                if *negated {
                    Expr::Not(Box::new(between))
                } else {
                    between
                }
            }
            other => return Err(unsupported(format!("the expression `{other}` (expressions: literals, placeholders, columns, = <> < <= > >=, IS [NOT] NULL, [NOT] IN, BETWEEN, AND/OR/NOT, + - * / %)"))),
        })
    }

    fn qualified(&self, parts: &[ast::Ident]) -> Result<Expr, String> {
        match parts {
            [q, col] if self.qualifiers.contains(&ident(q)) => Ok(Expr::Col(ident(col))),
            _ => Err(format!(
                "unknown table in column reference `{}`",
                parts
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join(".")
            )),
        }
    }

    fn value(&self, v: &ast::ValueWithSpan) -> Result<Expr, String> {
        use ast::Value as V;
        Ok(match &v.value {
            V::Number(n, _) => {
                Expr::Lit(Value::Int(n.parse().map_err(|_| {
                    unsupported(format!("the number {n} (only 64-bit integers)"))
                })?))
            }
            V::SingleQuotedString(s) | V::DoubleQuotedString(s) => Expr::Lit(Value::str(s)),
            V::Boolean(b) => Expr::Lit(Value::Bool(*b)),
            V::Null => Expr::Lit(Value::None),
            V::Placeholder(p) if p == "?" => {
                let at = (v.span.start.line, v.span.start.column);
                Expr::Param(
                    *self
                        .placeholders
                        .positional
                        .get(&at)
                        .ok_or("internal: placeholder not found by position")?,
                )
            }
            V::Placeholder(p) => Expr::Param(dollar_number(p)? - 1),
            other => return Err(unsupported(format!("the literal {other}"))),
        })
    }

    /// A DEFAULT: a literal (possibly negative), evaluated once.
    fn constant(&self, e: &ast::Expr) -> Result<Value, String> {
        let e = self.expr(e)?;
        let scope = Scope {
            params: &[],
            row: None,
        };
        e.eval(&scope)
            .map_err(|_| unsupported(format!("the DEFAULT {e:?} (only constants)")))
    }
}

fn binary(op: &BinaryOperator, l: Box<Expr>, r: Box<Expr>) -> Option<Expr> {
    use BinaryOperator as B;
    let cmp = match op {
        B::Eq => Some(CmpOp::Eq),
        B::NotEq => Some(CmpOp::Ne),
        B::Lt => Some(CmpOp::Lt),
        B::LtEq => Some(CmpOp::Le),
        B::Gt => Some(CmpOp::Gt),
        B::GtEq => Some(CmpOp::Ge),
        _ => None,
    };
    let arith = match op {
        B::Plus => Some(ArithOp::Add),
        B::Minus => Some(ArithOp::Sub),
        B::Multiply => Some(ArithOp::Mul),
        B::Divide => Some(ArithOp::Div),
        B::Modulo => Some(ArithOp::Rem),
        _ => None,
    };
    match (cmp, arith, op) {
        (Some(c), _, _) => Some(Expr::Cmp(c, l, r)),
        (_, Some(a), _) => Some(Expr::Arith(a, l, r)),
        (_, _, B::And) => Some(Expr::And(l, r)),
        (_, _, B::Or) => Some(Expr::Or(l, r)),
        _ => None,
    }
}

fn check_select_clauses(s: &ast::Select) -> Result<(), String> {
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
fn isolation_mode(modes: &[ast::TransactionMode]) -> Result<Option<Level>, String> {
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

fn lock_mode(locks: &[ast::LockClause]) -> Result<Option<LockMode>, String> {
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
fn shared_lock(locks: &[ast::LockClause]) -> bool {
    matches!(
        locks,
        [ast::LockClause {
            lock_type: ast::LockType::Share,
            ..
        }]
    )
}
