//! The database file: a JSON journal, one record per line. The first record
//! is a snapshot of every durable row; each later record holds the durable
//! changes of one committed transaction. A commit returns only after its
//! record is written and fsync'ed, so `kill -9` at any instant leaves
//! exactly the committed transactions (plus perhaps a torn last line, which
//! was never acknowledged and is discarded on open). Anything else that
//! does not read back — a bad record before the last, a wrong generation,
//! an unknown table — makes `open` refuse, naming the file and the record.
//!
//! When the journal has grown enough it is compacted: a new file holding a
//! single snapshot is written and fsync'ed, renamed over the old one, and
//! the directory is fsync'ed, so a crash leaves either file complete.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::data::{datum_from_json, Changes, Data, Txn};
use super::error::DbError;
use super::schema::schema;
use super::value::Uuid;

/// Marks the first (snapshot) record and the file format version.
const FORMAT: &str = "fvs-conf-db/1";

/// When to compact: once the file is larger than both `min_bytes` and
/// `factor` times the size of its snapshot record.
#[derive(Clone, Copy, Debug)]
pub struct DbOptions {
    pub compact_min_bytes: u64,
    pub compact_factor: u64,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            compact_min_bytes: 4 << 20,
            compact_factor: 4,
        }
    }
}

/// The outcome of a successful commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The database generation after the commit.
    pub generation: u64,
    /// False when the transaction changed only ephemeral columns (nothing
    /// was written to disk and the generation did not move).
    pub durable: bool,
}

/// An open, locked configuration database.
pub struct Db {
    path: PathBuf,
    file: File,
    _lock: File,
    data: Data,
    /// Length of the valid journal, where the next record goes.
    len: u64,
    snapshot_len: u64,
    options: DbOptions,
    poisoned: bool,
    recovery_note: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    date: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    changes: BTreeMap<String, BTreeMap<Uuid, Option<BTreeMap<String, Value>>>>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DbError + '_ {
    move |source| DbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn encode(changes: &Changes) -> BTreeMap<String, BTreeMap<Uuid, Option<BTreeMap<String, Value>>>> {
    changes
        .iter()
        .map(|(t, rows)| {
            let rows = rows
                .iter()
                .map(|(u, c)| {
                    (
                        *u,
                        c.as_ref().map(|cols| {
                            cols.iter().map(|(k, d)| (k.clone(), d.to_json())).collect()
                        }),
                    )
                })
                .collect();
            (t.clone(), rows)
        })
        .collect()
}

fn decode(
    raw: BTreeMap<String, BTreeMap<Uuid, Option<BTreeMap<String, Value>>>>,
) -> Result<Changes, String> {
    let mut out = Changes::new();
    for (t, rows) in raw {
        let ts = schema()
            .table(&t)
            .ok_or_else(|| format!("unknown table \"{t}\""))?;
        let dst = out.entry(t.clone()).or_default();
        for (u, cols) in rows {
            let cols = cols
                .map(|cols| {
                    cols.iter()
                        .map(|(c, v)| {
                            Ok((
                                c.clone(),
                                datum_from_json(ts, c, v).map_err(|e| e.to_string())?,
                            ))
                        })
                        .collect::<Result<BTreeMap<_, _>, String>>()
                })
                .transpose()?;
            dst.insert(u, cols);
        }
    }
    Ok(out)
}

fn record_line(record: &Record) -> Vec<u8> {
    let mut line = serde_json::to_vec(record).expect("records serialize");
    line.push(b'\n');
    line
}

/// Holds an exclusive lock on `<dir>/.<name>.~lock~` (like ovsdb-server)
/// for as long as the returned file is open.
fn lock(path: &Path) -> Result<File, DbError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock_path = path.with_file_name(format!(".{name}.~lock~"));
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    // SAFETY: flock only reads the descriptor, which `f` keeps open for the
    // duration of the call; no memory is passed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(if e.kind() == io::ErrorKind::WouldBlock {
            DbError::Locked {
                path: path.to_path_buf(),
            }
        } else {
            DbError::Io {
                path: lock_path,
                source: e,
            }
        });
    }
    Ok(f)
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

fn sync_dir(path: &Path) -> Result<(), DbError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes a snapshot of `data` to a temporary file next to `path` and
/// fsyncs it. Returns the temporary path and the snapshot's size.
fn write_snapshot_tmp(path: &Path, data: &Data) -> Result<(PathBuf, u64), DbError> {
    let tmp = temp_path(path);
    let line = record_line(&Record {
        format: Some(FORMAT.into()),
        generation: data.generation(),
        date: Some(now_ms()),
        comment: None,
        changes: encode(&data.durable_snapshot()),
    });
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&line)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&tmp))?;
    Ok((tmp, line.len() as u64))
}

/// Replays a journal. Returns the data, the length of the valid prefix,
/// the snapshot's length, and a note if a torn last record was dropped.
fn replay(path: &Path, bytes: &[u8]) -> Result<(Data, u64, u64, Option<String>), DbError> {
    let corrupt = |record: usize, reason: String| DbError::Corrupt {
        path: path.to_path_buf(),
        record,
        reason,
    };
    let mut data = Data::empty();
    let mut pos = 0usize;
    let mut snapshot_len = 0u64;
    let mut note = None;
    let mut n = 0usize;
    while pos < bytes.len() {
        n += 1;
        let rest = &bytes[pos..];
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        let is_last = !complete || pos + line.len() + 1 == bytes.len();
        let parsed = if complete {
            serde_json::from_slice::<Record>(line).map_err(|e| e.to_string())
        } else {
            Err("incomplete last record".to_string())
        };
        let record = match parsed {
            Ok(r) => r,
            // A commit writes one line and fsyncs it before returning, so a
            // bad final line was never acknowledged: it is a torn write.
            Err(e) if is_last && n > 1 => {
                note = Some(format!(
                    "{}: discarded torn record {n} ({e})",
                    path.display()
                ));
                break;
            }
            Err(e) => return Err(corrupt(n, e)),
        };
        match (n, &record.format) {
            (1, Some(f)) if f == FORMAT => {}
            (1, Some(f)) => return Err(corrupt(n, format!("unsupported format \"{f}\""))),
            (1, None) => return Err(corrupt(n, "missing snapshot header".into())),
            (_, Some(_)) => return Err(corrupt(n, "unexpected second snapshot".into())),
            (_, None) => {
                if record.generation != data.generation() + 1 {
                    return Err(corrupt(
                        n,
                        format!(
                            "generation {} does not follow {}",
                            record.generation,
                            data.generation()
                        ),
                    ));
                }
            }
        }
        let changes = decode(record.changes).map_err(|e| corrupt(n, e))?;
        data.apply_changes(&changes).map_err(|e| corrupt(n, e))?;
        data.set_generation(record.generation);
        pos += line.len() + 1;
        if n == 1 {
            snapshot_len = pos as u64;
        }
    }
    if n == 0 {
        return Err(corrupt(1, "empty file".into()));
    }
    data.check_integrity()
        .map_err(|e| corrupt(n, e.to_string()))?;
    Ok((data, pos as u64, snapshot_len, note))
}

impl Db {
    /// Opens (or creates, with one `Open_vSwitch` row) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Db, DbError> {
        Db::open_with(path, DbOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: DbOptions) -> Result<Db, DbError> {
        let path = path.as_ref().to_path_buf();
        let lock = lock(&path)?;
        let _ = fs::remove_file(temp_path(&path));
        let snapshot_len_new = match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (tmp, len) = write_snapshot_tmp(&path, &Data::initial())?;
                fs::rename(&tmp, &path).map_err(io_err(&path))?;
                sync_dir(&path)?;
                Some(len)
            }
            Err(e) => return Err(io_err(&path)(e)),
            Ok(_) => None,
        };
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(&path))?;
        let (data, len, snapshot_len, recovery_note) = replay(&path, &bytes)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if len < bytes.len() as u64 {
            // Cut the torn tail so the next record starts on a fresh line.
            file.set_len(len)
                .and_then(|()| file.sync_all())
                .map_err(io_err(&path))?;
        }
        Ok(Db {
            path,
            file,
            _lock: lock,
            data,
            len,
            snapshot_len: snapshot_len_new.unwrap_or(snapshot_len),
            options,
            poisoned: false,
            recovery_note,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The committed contents (ephemeral columns included).
    pub fn data(&self) -> &Data {
        &self.data
    }

    pub fn generation(&self) -> u64 {
        self.data.generation()
    }

    /// Set when `open` dropped a torn last record (worth a log line).
    pub fn recovery_note(&self) -> Option<&str> {
        self.recovery_note.as_deref()
    }

    /// Commits `txn` atomically and durably. With `expected_generation`,
    /// fails with [`DbError::Stale`] if the database moved since the snapshot
    /// the transaction was computed from.
    pub fn commit(
        &mut self,
        txn: &Txn,
        expected_generation: Option<u64>,
    ) -> Result<Commit, DbError> {
        if self.poisoned {
            return Err(DbError::Poisoned {
                path: self.path.clone(),
            });
        }
        if let Some(expected) = expected_generation {
            if expected != self.data.generation() {
                return Err(DbError::Stale {
                    expected,
                    current: self.data.generation(),
                });
            }
        }
        let (new, changes) = self.data.applied(txn)?;
        let durable = !changes.is_empty();
        if durable {
            let line = record_line(&Record {
                format: None,
                generation: new.generation(),
                date: Some(now_ms()),
                comment: txn.comment.clone(),
                changes: encode(&changes),
            });
            self.append(&line)?;
        }
        self.data = new;
        if durable
            && self.len
                > self
                    .options
                    .compact_min_bytes
                    .max(self.options.compact_factor * self.snapshot_len)
        {
            // The commit is already durable; a failed compaction leaves the
            // old journal valid and is retried after the next commit.
            let _ = self.compact();
        }
        Ok(Commit {
            generation: self.data.generation(),
            durable,
        })
    }

    fn append(&mut self, line: &[u8]) -> Result<(), DbError> {
        let result = self
            .file
            .write_all(line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = result {
            // Undo a partial record so the journal stays a list of whole
            // records; if even that fails, refuse further commits.
            if self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_all())
                .is_err()
            {
                self.poisoned = true;
            }
            return Err(io_err(&self.path)(e));
        }
        self.len += line.len() as u64;
        Ok(())
    }

    /// Rewrites the file as a single snapshot of the current contents.
    pub fn compact(&mut self) -> Result<(), DbError> {
        if self.poisoned {
            return Err(DbError::Poisoned {
                path: self.path.clone(),
            });
        }
        let (tmp, snapshot_len) = write_snapshot_tmp(&self.path, &self.data)?;
        fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        // From here the old inode is gone: appending to it would lose
        // commits, and so would appending before the rename is durable.
        let reopened = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path));
        match reopened.and_then(|f| sync_dir(&self.path).map(|()| f)) {
            Ok(f) => {
                self.file = f;
                self.len = snapshot_len;
                self.snapshot_len = snapshot_len;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }
}
