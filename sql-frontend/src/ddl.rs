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

/// The last part of a possibly qualified name (`main.orders` is `orders`).
pub(crate) fn object_name(name: &ast::ObjectName) -> Result<String, Error> {
    match name.0.last().and_then(|p| p.as_ident()) {
        Some(id) => Ok(id.value.clone()),
        None => Err(unsupported(format!("name {name}"), name.span())),
    }
}
