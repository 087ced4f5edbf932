//! Schema discovery: a table's columns, types, key and replica identity, read from the
//! PostgreSQL catalog and turned into an engine [`TableSchema`].

use ciuf_engine::{Column, TableSchema};
use tokio_postgres::Client;

use super::error::PgError;
use super::types::engine_type;

/// A PostgreSQL table as the source follows it.
#[derive(Debug, Clone)]
pub struct PgTable {
    /// The table's oid.
    pub oid: u32,
    /// `schema.table`, quoted for SQL.
    pub qualified: String,
    /// The engine schema (named as the views name it).
    pub schema: TableSchema,
    /// Each column's PostgreSQL type (its oid), in the schema's column order.
    pub pg_types: Vec<u32>,
}

/// Reads table `name` (as the view wrote it) from the catalog.
pub async fn discover(client: &Client, name: &str) -> Result<Option<PgTable>, PgError> {
    let rows = client
        .query(
            "SELECT c.oid::int8, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relname, \
                    c.relreplident::text, c.relkind::text, has_table_privilege(c.oid, 'SELECT') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass($1)",
            &[&name],
        )
        .await
        .map_err(query_error)?;
    let Some(row) = rows.first() else { return Ok(None) };
    let oid = row.get::<_, i64>(0) as u32;
    let qualified: String = row.get(1);
    let relname: String = row.get(2);
    let replident: String = row.get(3);
    let relkind: String = row.get(4);
    if relkind != "r" && relkind != "p" {
        return Err(PgError::Schema(format!(
            "{qualified} is not a table (relkind {relkind}): only tables are replicated"
        )));
    }
    if !row.get::<_, bool>(5) {
        return Err(PgError::Schema(format!(
            "the role may not read {qualified}: GRANT SELECT ON {qualified} TO <user>"
        )));
    }
    let columns = client
        .query(
            "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, a.attnotnull, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped \
               AND a.attgenerated = '' ORDER BY a.attnum",
            &[&(oid as i64)],
        )
        .await
        .map_err(query_error)?;
    let mut cols = Vec::with_capacity(columns.len());
    let mut pg_types = Vec::with_capacity(columns.len());
    for c in &columns {
        let cname: String = c.get(0);
        let type_oid = c.get::<_, i64>(1) as u32;
        let typmod: i32 = c.get(2);
        let Some(t) = engine_type(type_oid, typmod) else {
            let shown: String = c.get(4);
            return Err(PgError::Schema(format!(
                "column {qualified}.{cname} has type {shown}, which ciuf does not replicate (supported: integers, \
                 real/double precision, numeric up to 35 digits, boolean, text/varchar/char/name, date, timestamp, \
                 timestamptz, uuid, json/jsonb, bytea)"
            )));
        };
        let mut column = Column::new(cname, t);
        if c.get::<_, bool>(3) {
            column = column.not_null();
        }
        cols.push(column);
        pg_types.push(type_oid);
    }
    // The key the stream identifies rows by: the replica identity index, else the
    // primary key.
    let key_rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1::int8::oid AND (CASE WHEN $2 = 'i' THEN i.indisreplident ELSE i.indisprimary END) \
             ORDER BY k.ord",
            &[&(oid as i64), &replident],
        )
        .await
        .map_err(query_error)?;
    let key: Vec<String> = key_rows.iter().map(|r| r.get(0)).collect();
    match replident.as_str() {
        "n" => {
            return Err(PgError::Schema(format!(
                "{qualified} has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be followed: \
                 ALTER TABLE {qualified} REPLICA IDENTITY FULL (or give it a primary key)"
            )));
        }
        "d" | "i" if key.is_empty() => {
            return Err(PgError::Schema(format!(
                "{qualified} has no primary key, so its updates and deletes cannot be identified: \
                 ALTER TABLE {qualified} REPLICA IDENTITY FULL (ciuf never changes your tables)"
            )));
        }
        _ => {}
    }
    // Named as the view names it: a table of another schema than the search path's by
    // its qualified name, so that `archive.acct` and `acct` are two tables.
    let mut schema = TableSchema::new(if name.contains('.') { name.to_string() } else { relname }, cols);
    if !key.is_empty() {
        let names: Vec<&str> = key.iter().map(String::as_str).collect();
        schema = schema.with_primary_key(&names);
    }
    Ok(Some(PgTable { oid, qualified, schema, pg_types }))
}

/// A tokio-postgres error as a [`PgError`].
pub fn query_error(e: tokio_postgres::Error) -> PgError {
    match e.as_db_error() {
        Some(db) => PgError::Server(super::error::ServerError {
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            hint: super::error::hint_for(db.code().code(), db.message()),
        }),
        None if e.is_closed() => PgError::Connect { target: "the server".into(), reason: e.to_string() },
        None => PgError::Connect { target: "the server".into(), reason: e.to_string() },
    }
}
