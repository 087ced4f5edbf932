//! CREATE TABLE to a table schema.

use ciuf_engine::{Column, Error, SchemaError, TableSchema};
use sqlparser::ast::{self, ColumnOption, Spanned, TableConstraint};

use crate::error::unsupported;
use crate::types::sql_type;

/// The schema a CREATE TABLE statement declares.
pub(crate) fn create_table(ct: &ast::CreateTable) -> Result<TableSchema, Error> {
    let name = object_name(&ct.name)?;
    if ct.query.is_some() {
        return Err(unsupported("CREATE TABLE … AS SELECT", ct.name.span()));
    }
    let mut columns = Vec::with_capacity(ct.columns.len());
    let mut key: Option<Vec<String>> = None;
    for c in &ct.columns {
        let mut col =
            Column::new(c.name.value.clone(), sql_type(&c.data_type, c.name.span, ciuf_engine::Dialect::Sqlite)?);
        for opt in &c.options {
            match &opt.option {
                ColumnOption::NotNull => col.nullable = false,
                ColumnOption::Null => col.nullable = true,
                ColumnOption::PrimaryKey(_) => {
                    if key.is_some() {
                        return Err(invalid(&name, "more than one PRIMARY KEY"));
                    }
                    key = Some(vec![c.name.value.clone()]);
                }
                // Defaults, uniqueness, checks and references are the source database's
                // to enforce; ciuf maintains views over whatever rows arrive.
                _ => {}
            }
        }
        columns.push(col);
    }
    for constraint in &ct.constraints {
        if let TableConstraint::PrimaryKey(pk) = constraint {
            if key.is_some() {
                return Err(invalid(&name, "more than one PRIMARY KEY"));
            }
            let mut names = Vec::new();
            for ic in &pk.columns {
                match &ic.column.expr {
                    ast::Expr::Identifier(id) => names.push(id.value.clone()),
                    other => {
                        return Err(unsupported(format!("PRIMARY KEY on expression {other}"), other.span()));
                    }
                }
            }
            key = Some(names);
        }
    }
    let mut schema = TableSchema::new(name.clone(), columns);
    if let Some(names) = key {
        let mut positions = Vec::new();
        for n in &names {
            let Some(i) = schema.column_index(n) else {
                return Err(invalid(&name, &format!("PRIMARY KEY names {n}, which is not a column")));
            };
            schema.columns[i].nullable = false;
            positions.push(i);
        }
        schema.primary_key = Some(positions);
    }
    Ok(schema)
}

fn invalid(table: &str, detail: &str) -> Error {
    SchemaError::InvalidTable { table: table.to_string(), detail: detail.to_string() }.into()
}

/// A name of one part; `main.orders` is `orders` (SQLite's schema of the database
/// itself). Any other qualifier is refused: it would name a table ciuf does not hold.
pub(crate) fn object_name(name: &ast::ObjectName) -> Result<String, Error> {
    table_name(name, ciuf_engine::Dialect::Sqlite).map(|t| t.catalog)
}

/// A table's name as the catalog knows it, and the qualifier its columns take.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableName {
    /// What the catalog is asked for: `orders`, or under PostgreSQL `archive.orders`
    /// for a table of another schema than `public`.
    pub catalog: String,
    /// The table's own name (`orders`), by which its columns may be qualified.
    pub qualifier: String,
}

/// Resolves a possibly qualified table name. Under SQLite the only schemas are `main`
/// and `temp`, which ciuf's tables are all in; under PostgreSQL `public.t` is `t` and
/// another schema's table is asked for by its qualified name (the PostgreSQL source
/// finds and follows that schema's table). A database qualifier, or any schema the
/// dialect does not have, is an error naming it.
pub(crate) fn table_name(name: &ast::ObjectName, dialect: ciuf_engine::Dialect) -> Result<TableName, Error> {
    let parts: Vec<&ast::Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
    if parts.len() != name.0.len() || parts.is_empty() {
        return Err(unsupported(format!("name {name}"), name.span()));
    }
    let table = parts[parts.len() - 1].value.clone();
    let plain = TableName { catalog: table.clone(), qualifier: table.clone() };
    let unknown = |what: &str| {
        Err(ciuf_engine::SqlError::new(ciuf_engine::SqlErrorKind::UnknownTable, what.to_string())
            .at(crate::error::position(name.span()))
            .into())
    };
    match (parts.as_slice(), dialect) {
        ([_], _) => Ok(plain),
        ([schema, _], ciuf_engine::Dialect::Sqlite) => {
            if schema.value.eq_ignore_ascii_case("main") || schema.value.eq_ignore_ascii_case("temp") {
                Ok(plain)
            } else {
                unknown(&format!(
                    "unknown schema {} in {name}: ciuf's tables are in SQLite's main schema (write {table} or main.{table})",
                    schema.value
                ))
            }
        }
        ([schema, _], ciuf_engine::Dialect::Postgres) => {
            if schema.value == "public" && schema.quote_style.is_none() {
                Ok(plain)
            } else {
                // As PostgreSQL spells it: quoted parts keep their case.
                let quoted = |i: &ast::Ident| match i.quote_style {
                    Some(_) => format!("\"{}\"", i.value.replace('"', "\"\"")),
                    None => i.value.clone(),
                };
                Ok(TableName { catalog: format!("{}.{}", quoted(schema), quoted(parts[1])), qualifier: table })
            }
        }
        _ => unknown(&format!("{name} names a table of another database, which ciuf does not follow")),
    }
}
