//! The small interface every query is written against ([`Sql`]), implemented for rusqlite and
//! the synchronous `postgres` client: query parameters ([`Val`]), result rows ([`Row`]), and the
//! mapping of each engine's errors to [`StoreError`].

use std::borrow::Cow;

use postgres::GenericClient;
use rusqlite::Connection;

use super::StoreError;

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    /// A 64-bit integer, or NULL.
    Int(Option<i64>),
    /// Text, or NULL.
    Text(Option<&'a str>),
    /// Bytes, or NULL.
    Blob(Option<&'a [u8]>),
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val<'_> {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}
impl From<u64> for Val<'_> {
    fn from(v: u64) -> Self {
        // Versions, rounds and members stay far below 2^63.
        Val::Int(Some(v as i64))
    }
}
impl From<u32> for Val<'_> {
    fn from(v: u32) -> Self {
        Val::Int(Some(i64::from(v)))
    }
}
impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Val<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Val::Text(v)
    }
}
impl<'a> From<&'a [u8]> for Val<'a> {
    fn from(v: &'a [u8]) -> Self {
        Val::Blob(Some(v))
    }
}

impl<'a> From<Option<&'a [u8]>> for Val<'a> {
    fn from(v: Option<&'a [u8]>) -> Self {
        Val::Blob(v)
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Val::Int(v) => v.to_sql(),
            Val::Text(v) => v.to_sql(),
            Val::Blob(v) => v.to_sql(),
        }
    }
}

impl postgres::types::ToSql for Val<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // Delegate with the inner type's own check, so a mismatch is an error, not garbage.
        match self {
            Val::Int(v) => v.to_sql_checked(ty, out),
            Val::Text(v) => v.to_sql_checked(ty, out),
            Val::Blob(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// `params![a, b]`: a slice of [`Val`].
macro_rules! params {
    ($($v:expr),* $(,)?) => { &[$(Val::from($v)),*][..] };
}

/// One value of a result row.
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A result row, read out of either engine.
pub(crate) struct Row(Vec<Cell>);

/// A column type the store reads.
pub(crate) trait FromCell: Sized {
    const WHAT: &'static str;
    fn from_cell(c: Cell) -> Option<Self>;
}

impl FromCell for i64 {
    const WHAT: &'static str = "an integer";
    fn from_cell(c: Cell) -> Option<Self> {
        match c {
            Cell::Int(v) => Some(v),
            _ => None,
        }
    }
}

impl FromCell for String {
    const WHAT: &'static str = "text";
    fn from_cell(c: Cell) -> Option<Self> {
        match c {
            Cell::Text(v) => Some(v),
            _ => None,
        }
    }
}

impl FromCell for Vec<u8> {
    const WHAT: &'static str = "a blob";
    fn from_cell(c: Cell) -> Option<Self> {
        match c {
            Cell::Blob(v) => Some(v),
            _ => None,
        }
    }
}

impl Row {
    /// Column `i` (moved out of the row), NULL as `None`.
    pub(crate) fn opt<T: FromCell>(&mut self, i: usize) -> Result<Option<T>, StoreError> {
        let cell = self
            .0
            .get_mut(i)
            .map(|c| std::mem::replace(c, Cell::Null))
            .ok_or_else(|| StoreError::internal(format!("database: no column {i}")))?;
        match cell {
            Cell::Null => Ok(None),
            c => T::from_cell(c).map(Some).ok_or_else(|| {
                StoreError::internal(format!("database: column {i} is not {}", T::WHAT))
            }),
        }
    }

    /// Column `i`, which must not be NULL.
    pub(crate) fn get<T: FromCell>(&mut self, i: usize) -> Result<T, StoreError> {
        self.opt(i)?
            .ok_or_else(|| StoreError::internal(format!("database: column {i} is NULL")))
    }

    pub(crate) fn int(&mut self, i: usize) -> Result<i64, StoreError> {
        self.get(i)
    }
    pub(crate) fn opt_int(&mut self, i: usize) -> Result<Option<i64>, StoreError> {
        self.opt(i)
    }
    pub(crate) fn text(&mut self, i: usize) -> Result<String, StoreError> {
        self.get(i)
    }
    pub(crate) fn opt_text(&mut self, i: usize) -> Result<Option<String>, StoreError> {
        self.opt(i)
    }
    pub(crate) fn opt_blob(&mut self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        self.opt(i)
    }
}

/// What the store's queries need of a connection (or an open transaction on one).
pub(crate) trait Sql {
    /// Run a statement; rows affected.
    fn exec(&mut self, sql: &str, args: &[Val<'_>]) -> Result<u64, StoreError>;
    /// Run a query; every row.
    fn query(&mut self, sql: &str, args: &[Val<'_>]) -> Result<Vec<Row>, StoreError>;
    /// Run a query; its first row, if any.
    fn first(&mut self, sql: &str, args: &[Val<'_>]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }
}

pub(crate) fn lite_err(e: rusqlite::Error) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
        return StoreError::conflict(format!("database: {e}"));
    }
    StoreError::internal(format!("database: {e}"))
}

/// An error with its causes ("error performing TLS handshake: invalid peer certificate: ...").
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

pub(crate) fn pg_err(e: postgres::Error) -> StoreError {
    if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
        return StoreError::conflict(format!("database: {e}"));
    }
    if e.is_closed() {
        // The connection is gone (the database restarted, the network dropped): retryable.
        return StoreError::unavailable(format!("database unavailable: {e}"));
    }
    StoreError::internal(format!("database: {e}"))
}

/// A SQLite connection or transaction.
pub(crate) struct Lite<'a>(pub(crate) &'a Connection);

impl Sql for Lite<'_> {
    fn exec(&mut self, sql: &str, args: &[Val<'_>]) -> Result<u64, StoreError> {
        let mut st = self.0.prepare_cached(sql).map_err(lite_err)?;
        st.execute(rusqlite::params_from_iter(args.iter()))
            .map(|n| n as u64)
            .map_err(lite_err)
    }

    fn query(&mut self, sql: &str, args: &[Val<'_>]) -> Result<Vec<Row>, StoreError> {
        use rusqlite::types::ValueRef;
        let mut st = self.0.prepare_cached(sql).map_err(lite_err)?;
        let n = st.column_count();
        let mut rows = st
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(lite_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(lite_err)? {
            let mut cells = Vec::with_capacity(n);
            for i in 0..n {
                cells.push(match r.get_ref(i).map_err(lite_err)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Real(v) => Cell::Text(v.to_string()),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}

/// `?N` placeholders (SQLite) as `$N` (PostgreSQL). Our SQL has no `?` inside literals.
pub(crate) fn pg_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(sql.replace('?', "$"))
}

/// A PostgreSQL client or transaction.
pub(crate) struct Pg<'a, C: GenericClient>(pub(crate) &'a mut C);

impl<C: GenericClient> Pg<'_, C> {
    fn args<'v>(args: &'v [Val<'_>]) -> Vec<&'v (dyn postgres::types::ToSql + Sync)> {
        args.iter()
            .map(|a| a as &(dyn postgres::types::ToSql + Sync))
            .collect()
    }
}

impl<C: GenericClient> Sql for Pg<'_, C> {
    fn exec(&mut self, sql: &str, args: &[Val<'_>]) -> Result<u64, StoreError> {
        self.0
            .execute(pg_sql(sql).as_ref(), &Self::args(args))
            .map_err(pg_err)
    }

    fn query(&mut self, sql: &str, args: &[Val<'_>]) -> Result<Vec<Row>, StoreError> {
        use postgres::types::Type;
        let rows = self
            .0
            .query(pg_sql(sql).as_ref(), &Self::args(args))
            .map_err(pg_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut cells = Vec::with_capacity(r.len());
            for (i, col) in r.columns().iter().enumerate() {
                let ty = col.type_();
                let cell = if *ty == Type::INT8 {
                    r.try_get::<_, Option<i64>>(i).map(|v| v.map(Cell::Int))
                } else if *ty == Type::INT4 {
                    r.try_get::<_, Option<i32>>(i)
                        .map(|v| v.map(|v| Cell::Int(i64::from(v))))
                } else if *ty == Type::BOOL {
                    r.try_get::<_, Option<bool>>(i)
                        .map(|v| v.map(|v| Cell::Int(i64::from(v))))
                } else if *ty == Type::BYTEA {
                    r.try_get::<_, Option<Vec<u8>>>(i)
                        .map(|v| v.map(Cell::Blob))
                } else if *ty == Type::VOID {
                    Ok(None)
                } else {
                    r.try_get::<_, Option<String>>(i).map(|v| v.map(Cell::Text))
                };
                cells.push(cell.map_err(pg_err)?.unwrap_or(Cell::Null));
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}
