//! Lowering a parsed statement (sqlparser's AST) into the model's subset: the statements,
//! their tables, projections, ORDER BY and LIMIT, and expressions.

use std::cell::Cell;

use sqlparser::ast::{
    self, BinaryOperator, SelectItem, SetExpr, Statement, TableFactor, UnaryOperator,
};

use super::clauses::{check_select_clauses, isolation_mode, lock_mode, shared_lock};
use super::{clip, dollar_number, Placeholders, MAX_DEPTH};
use crate::ir::sql::{
    ArithOp, CmpOp, Delete, Expr, Insert, Projection, Select, Session, Stmt, Strength, Update,
};
use crate::ir::Value;
use crate::sql::ddl;
use crate::sql::expr::Scope;
use crate::sql::subset::{ident, object_name, unsupported};

/// The lowering of one statement; `qualifiers` are the names a column may be prefixed with.
pub(super) struct Lower<'a> {
    pub(super) placeholders: &'a Placeholders,
    pub(super) qualifiers: Vec<String>,
    /// How deeply the expression being lowered is nested, against [`MAX_DEPTH`].
    pub(super) depth: Cell<usize>,
}

impl Lower<'_> {
    pub(super) fn statement(&mut self, s: &Statement) -> Result<Stmt, String> {
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
    pub(super) fn table(&mut self, t: &ast::TableWithJoins) -> Result<String, String> {
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

    pub(super) fn select(&mut self, q: &ast::Query) -> Result<Select, String> {
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

    pub(super) fn projection(&self, items: &[SelectItem]) -> Result<Projection, String> {
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

    pub(super) fn order_by(
        &self,
        order: Option<&ast::OrderBy>,
    ) -> Result<Vec<(Expr, bool)>, String> {
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

    pub(super) fn limit(&self, limit: Option<&ast::LimitClause>) -> Result<Option<Expr>, String> {
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

    pub(super) fn update(&mut self, u: &ast::Update) -> Result<Update, String> {
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

    pub(super) fn delete(&mut self, d: &ast::Delete) -> Result<Delete, String> {
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

    pub(super) fn insert(&mut self, i: &ast::Insert) -> Result<Insert, String> {
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
    pub(super) fn expr(&self, e: &ast::Expr) -> Result<Expr, String> {
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

    pub(super) fn expr_at_depth(&self, e: &ast::Expr) -> Result<Expr, String> {
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

    pub(super) fn qualified(&self, parts: &[ast::Ident]) -> Result<Expr, String> {
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

    pub(super) fn value(&self, v: &ast::ValueWithSpan) -> Result<Expr, String> {
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
    pub(super) fn constant(&self, e: &ast::Expr) -> Result<Value, String> {
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
