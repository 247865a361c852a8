//! Errors of the configuration database, each one line naming what it is about.

use std::path::PathBuf;

use super::value::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file could not be read, written or synced (the errno's name,
    /// e.g. ENOSPC, follows the message so scripts and people can match it).
    #[error("{}: {source}{}", path.display(), errno_suffix(source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The file holds something other than committed transactions.
    #[error("{}: record {record} (byte offset {offset}): {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        record: usize,
        /// Where the record starts in the file.
        offset: u64,
        reason: String,
    },

    /// Another process has the database open.
    #[error("{}: database is locked by another process", path.display())]
    Locked { path: PathBuf },

    /// An earlier write failed half way and could not be undone.
    #[error("{}: database is unusable after a failed write; reopen it", path.display())]
    Poisoned { path: PathBuf },

    /// The transaction was computed against an older snapshot.
    #[error("database changed (generation {current}, transaction expected {expected}); retry")]
    Stale { expected: u64, current: u64 },

    #[error("unknown table \"{0}\"")]
    NoSuchTable(String),

    #[error("table {table} has no column \"{column}\"")]
    NoSuchColumn { table: String, column: String },

    #[error("no row {uuid} in table {table}")]
    NoSuchRow { table: String, uuid: Uuid },

    #[error("row {uuid} already exists (inserted into table {table})")]
    DuplicateUuid { table: String, uuid: Uuid },

    /// A value that does not fit its column's type or constraints.
    #[error("{table} column {column}: {reason}")]
    BadValue {
        table: String,
        column: String,
        reason: String,
    },

    #[error("cannot modify read-only column {column} in table {table}")]
    ReadOnly { table: String, column: String },

    /// OVSDB's "referential integrity violation" (details as OVSDB words them).
    #[error("referential integrity violation: {0}")]
    Referential(String),

    /// OVSDB's "constraint violation" for indexes and row counts.
    #[error("constraint violation: {0}")]
    Constraint(String),
}

/// " (ENOSPC)" and the like for the errors a disk gives; empty otherwise.
fn errno_suffix(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => " (ENOSPC)",
        Some(libc::EDQUOT) => " (EDQUOT)",
        Some(libc::EFBIG) => " (EFBIG)",
        Some(libc::EIO) => " (EIO)",
        Some(libc::EROFS) => " (EROFS)",
        Some(libc::EACCES) => " (EACCES)",
        Some(libc::EPERM) => " (EPERM)",
        _ => "",
    }
}

impl DbError {
    /// OVSDB's error tag and details, as ovs-vsctl prints them in
    /// `transaction error: {"details":…,"error":…}`.
    pub fn ovsdb_error(&self) -> (&'static str, String) {
        match self {
            DbError::Referential(d) => ("referential integrity violation", d.clone()),
            DbError::Constraint(d) => ("constraint violation", d.clone()),
            DbError::BadValue { reason, .. } if reason.starts_with("constraint violation: ") => (
                "constraint violation",
                reason["constraint violation: ".len()..].to_string(),
            ),
            DbError::BadValue { .. } | DbError::ReadOnly { .. } => {
                ("constraint violation", self.to_string())
            }
            DbError::Stale { .. } => ("try again", self.to_string()),
            _ => ("I/O error", self.to_string()),
        }
    }
}
