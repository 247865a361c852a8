//! The database file: a JSON journal, one record per line. The first record
//! is a snapshot of every durable row; each later record holds the durable
//! changes of one committed transaction. A commit returns only after its
//! record is written and fsync'ed, so `kill -9` at any instant leaves
//! exactly the committed transactions, plus perhaps a torn last record.
//!
//! # Telling a torn write from damage
//!
//! Each record line ends with a tab and the CRC-32C of the JSON before it
//! (`{...}\t1a2b3c4d`), so flipped bytes inside a record are detected.
//! Files written before checksums existed (no suffix) still load; once a
//! record carries a checksum, every later one must.
//!
//! After each durable commit (and compaction) the daemon records, in the
//! lock file `.<name>.~lock~` it holds anyway, how many bytes of the journal
//! have been acknowledged and the checksum of the snapshot record (which
//! identifies the file). This note is written after the fsync of the
//! data and is not itself fsync'ed: it survives a crash of the process, and
//! after a power cut it can only be older than the journal, never newer.
//! With it, `open` decides:
//!
//! - damage (bad JSON, a checksum mismatch, a generation out of order …)
//!   inside the acknowledged bytes is corruption: `open` refuses, naming the
//!   file, the record and its byte offset;
//! - a file that ends before the acknowledged length was truncated:
//!   refused too (committed transactions are missing);
//! - anything after the acknowledged length was never acknowledged: a torn
//!   write, dropped with a note (the daemon logs it).
//!
//! Without a usable note (lock file missing, or it describes another file),
//! only the final line may be torn, as before. The snapshot (the first
//! record) is never torn: a file without a whole one, an empty file
//! included, is refused.
//!
//! `fvs-dbtool check` reports the same verdicts without opening the
//! database; `fvs-dbtool recover` keeps the longest valid prefix and
//! writes the rest aside.
//!
//! A write that fails (a full disk: ENOSPC) is cut back to the last whole
//! record and the commit fails, so the in-memory state never moves ahead of
//! the file.
//!
//! When the journal has grown enough it is compacted: a new file holding a
//! single snapshot is written and fsync'ed, renamed over the old one, and
//! the directory is fsync'ed, so a crash leaves either file complete.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
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
    /// Holds the lock, and the note of the acknowledged length.
    lock: File,
    /// CRC-32C of the current snapshot record (identifies the file in the note).
    snapshot_crc: u32,
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

/// CRC-32C (Castagnoli) table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0x82f6_3b78 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32C of `bytes` (the checksum of iSCSI, ext4 metadata, …).
pub fn crc32c(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| {
        CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// A record's line: its JSON, a tab, its CRC-32C in hex, a newline.
fn record_line(record: &Record) -> Vec<u8> {
    let mut line = serde_json::to_vec(record).expect("records serialize");
    let sum = crc32c(&line);
    line.extend_from_slice(format!("\t{sum:08x}\n").as_bytes());
    line
}

/// Splits a line (without its newline) into the JSON and its checksum, if
/// it has one. serde_json never writes a raw tab, so a tab nine bytes from
/// the end can only be the separator.
fn split_checksum(line: &[u8]) -> Result<(&[u8], Option<u32>), String> {
    let Some(tab) = line.len().checked_sub(9) else {
        return Ok((line, None));
    };
    if line[tab] != b'\t' {
        return Ok((line, None));
    }
    let hex = std::str::from_utf8(&line[tab + 1..])
        .ok()
        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or("malformed checksum")?;
    Ok((&line[..tab], Some(hex)))
}

/// The acknowledged length of the journal, kept in the lock file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ack {
    /// Bytes of the journal acknowledged to a caller.
    len: u64,
    /// CRC-32C of the snapshot record's JSON: which file this is about.
    snapshot: u32,
}

const ACK_TAG: &str = "fvs-db-ack";

impl Ack {
    /// A fixed-width line, so rewriting it in place never leaves a tail.
    fn line(self) -> String {
        let body = format!(
            "{ACK_TAG} len={:020} snapshot={:08x}",
            self.len, self.snapshot
        );
        format!("{body} sum={:08x}\n", crc32c(body.as_bytes()))
    }

    fn parse(bytes: &[u8]) -> Option<Ack> {
        let text = std::str::from_utf8(bytes).ok()?;
        let line = text.lines().next()?;
        let (body, sum) = line.rsplit_once(" sum=")?;
        if u32::from_str_radix(sum, 16).ok()? != crc32c(body.as_bytes()) {
            return None;
        }
        let rest = body.strip_prefix(ACK_TAG)?.trim_start();
        let (len, snapshot) = rest.split_once(' ')?;
        Some(Ack {
            len: len.strip_prefix("len=")?.parse().ok()?,
            snapshot: u32::from_str_radix(snapshot.strip_prefix("snapshot=")?, 16).ok()?,
        })
    }

    fn read(lock: &File) -> Option<Ack> {
        let mut buf = [0u8; 128];
        let n = lock.read_at(&mut buf, 0).ok()?;
        Ack::parse(&buf[..n])
    }

    /// Best effort: a lost note only makes `open` more lenient.
    fn write(self, lock: &File) {
        let _ = lock.write_all_at(self.line().as_bytes(), 0);
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.~lock~"))
}

/// Holds an exclusive lock on `<dir>/.<name>.~lock~` (like ovsdb-server)
/// for as long as the returned file is open.
fn lock(path: &Path) -> Result<File, DbError> {
    let lock_path = lock_path(path);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
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
/// fsyncs it. Returns the temporary path and the snapshot's length and
/// checksum. A failed write (a full disk) removes the temporary file.
fn write_snapshot_tmp(path: &Path, data: &Data) -> Result<(PathBuf, Ack), DbError> {
    let tmp = temp_path(path);
    let line = record_line(&Record {
        format: Some(FORMAT.into()),
        generation: data.generation(),
        date: Some(now_ms()),
        comment: None,
        changes: encode(&data.durable_snapshot()),
    });
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(&line)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    let json = &line[..line.len() - 10];
    Ok((
        tmp,
        Ack {
            len: line.len() as u64,
            snapshot: crc32c(json),
        },
    ))
}

/// What reading a journal found.
struct Scan {
    data: Data,
    /// Records that read back whole and valid.
    records: usize,
    /// Length of the valid prefix.
    valid_len: u64,
    snapshot_len: u64,
    /// CRC-32C of the snapshot's JSON (0 without a valid snapshot).
    snapshot_crc: u32,
    /// A torn, unacknowledged tail that can be dropped (why).
    torn: Option<String>,
    /// Damage to acknowledged data: the journal must not be used as it is.
    error: Option<DbError>,
}

/// Reads one complete line as a record, checking its checksum.
fn parse_line(line: &[u8], checksummed: &mut bool) -> Result<(Record, u32), String> {
    let (json, sum) = split_checksum(line)?;
    let crc = crc32c(json);
    match sum {
        Some(sum) if sum != crc => {
            return Err(format!(
                "checksum mismatch (stored {sum:08x}, computed {crc:08x}): bytes changed on disk"
            ))
        }
        Some(_) => *checksummed = true,
        None if *checksummed => {
            return Err("record has no checksum although earlier records do".into())
        }
        None => {}
    }
    let record = serde_json::from_slice::<Record>(json).map_err(|e| e.to_string())?;
    Ok((record, crc))
}

/// Replays a journal. `ack` is the acknowledged length from the lock file.
fn scan(path: &Path, bytes: &[u8], ack: Option<Ack>) -> Scan {
    let mut out = Scan {
        data: Data::empty(),
        records: 0,
        valid_len: 0,
        snapshot_len: 0,
        snapshot_crc: 0,
        torn: None,
        error: None,
    };
    let corrupt = |record: usize, offset: usize, reason: String| DbError::Corrupt {
        path: path.to_path_buf(),
        record,
        offset: offset as u64,
        reason,
    };
    if bytes.is_empty() {
        out.error = Some(corrupt(
            1,
            0,
            "empty file (truncated to zero length?)".into(),
        ));
        return out;
    }
    // The note counts only if it describes this file (same snapshot).
    let first_json = bytes
        .iter()
        .position(|&b| b == b'\n')
        .and_then(|i| split_checksum(&bytes[..i]).ok())
        .map(|(json, _)| crc32c(json));
    let acked = ack
        .filter(|a| Some(a.snapshot) == first_json)
        .map_or(0, |a| a.len as usize);
    let mut checksummed = false;
    let mut pos = 0usize;
    let mut n = 0usize;
    while pos < bytes.len() {
        n += 1;
        let rest = &bytes[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            // A record without its newline: the file ends inside it.
            let why = format!("the file ends at byte {} inside this record", bytes.len());
            if n == 1 {
                out.error = Some(corrupt(n, pos, format!("incomplete snapshot: {why}")));
            } else if pos < acked {
                out.error = Some(corrupt(
                    n,
                    pos,
                    format!("truncated: {why}, but {acked} bytes were acknowledged"),
                ));
            } else {
                out.torn = Some(format!(
                    "{}: discarded torn record {n} at byte offset {pos} ({} bytes, never acknowledged)",
                    path.display(),
                    rest.len()
                ));
            }
            break;
        };
        let line = &rest[..nl];
        let end = pos + nl + 1;
        // Everything up to decoding is checked before any state changes,
        // so a record rejected here may still be dropped as torn.
        let checked = parse_line(line, &mut checksummed).and_then(|(record, crc)| {
            match (n, &record.format) {
                (1, Some(f)) if f == FORMAT => {}
                (1, Some(f)) => return Err(format!("unsupported format \"{f}\"")),
                (1, None) => return Err("missing snapshot header".into()),
                (_, Some(_)) => return Err("unexpected second snapshot".into()),
                (_, None) if record.generation != out.data.generation() + 1 => {
                    return Err(format!(
                        "generation {} does not follow {}",
                        record.generation,
                        out.data.generation()
                    ))
                }
                (_, None) => {}
            }
            let generation = record.generation;
            Ok((decode(record.changes)?, generation, crc))
        });
        let (changes, generation, crc) = match checked {
            Ok(c) => c,
            Err(e) => {
                // Past the acknowledged bytes (or, without a note, the last
                // line): a write that never completed. Else: damage.
                let unacked = if acked > 0 {
                    pos >= acked
                } else {
                    end == bytes.len()
                };
                if n > 1 && unacked {
                    out.torn = Some(format!(
                        "{}: discarded torn record {n} at byte offset {pos} ({e}; never acknowledged)",
                        path.display()
                    ));
                } else {
                    out.error = Some(corrupt(n, pos, e));
                }
                break;
            }
        };
        if let Err(e) = out.data.apply_changes(&changes) {
            out.error = Some(corrupt(n, pos, e));
            break;
        }
        out.data.set_generation(generation);
        out.records = n;
        pos = end;
        out.valid_len = pos as u64;
        if n == 1 {
            out.snapshot_len = pos as u64;
            out.snapshot_crc = crc;
        }
    }
    if out.error.is_none() {
        if let Err(e) = out.data.check_integrity() {
            out.error = Some(corrupt(out.records, pos, e.to_string()));
        } else if out.torn.is_none() && (out.valid_len as usize) < acked {
            out.error = Some(corrupt(
                out.records + 1,
                out.valid_len as usize,
                format!(
                    "truncated: the file ends at byte {}, but {acked} bytes were acknowledged",
                    out.valid_len
                ),
            ));
        }
    }
    out
}

/// What `fvs-dbtool check` reports about a database file.
#[derive(Debug)]
pub struct CheckReport {
    pub path: PathBuf,
    pub file_len: u64,
    /// Records (snapshot included) that read back whole and valid.
    pub records: usize,
    /// Length of that valid prefix.
    pub valid_len: u64,
    /// The generation the valid prefix reaches.
    pub generation: u64,
    /// Acknowledged length from the lock file's note, if it describes this file.
    pub acknowledged: Option<u64>,
    /// A torn, unacknowledged tail that opening would drop.
    pub torn: Option<String>,
    /// Damage that makes fvs-vswitchd refuse the file.
    pub problem: Option<DbError>,
}

impl CheckReport {
    /// Whether fvs-vswitchd would open the file.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, DbError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    Ok(bytes)
}

fn report(path: &Path, bytes: &[u8], ack: Option<Ack>) -> (CheckReport, Scan) {
    let scan = scan(path, bytes, ack);
    let acknowledged = ack
        .filter(|a| scan.records > 0 && a.snapshot == scan.snapshot_crc)
        .map(|a| a.len);
    let report = CheckReport {
        path: path.to_path_buf(),
        file_len: bytes.len() as u64,
        records: scan.records,
        valid_len: scan.valid_len,
        generation: scan.data.generation(),
        acknowledged,
        torn: scan.torn.clone(),
        problem: None,
    };
    (report, scan)
}

/// Reads the database at `path` the way `Db::open` would, without locking
/// or changing anything (it may be in use), and reports what it found.
pub fn check(path: impl AsRef<Path>) -> Result<CheckReport, DbError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    let ack = File::open(lock_path(path)).ok().and_then(|f| Ack::read(&f));
    let (mut report, scan) = report(path, &bytes, ack);
    report.problem = scan.error;
    Ok(report)
}

/// What `fvs-dbtool recover` did.
#[derive(Debug)]
pub struct Recovery {
    /// The file as found.
    pub before: CheckReport,
    /// Where the bytes after the valid prefix went (None: nothing to set aside).
    pub aside: Option<PathBuf>,
    /// Bytes removed from the database file.
    pub removed: u64,
    /// Acknowledged bytes that were already missing from the file.
    pub missing: u64,
}

/// Keeps the longest valid prefix of the database at `path` and writes the
/// rest to `<path>.corrupt-<unix time>`. Takes the database lock, so it
/// refuses while fvs-vswitchd has the database open. A file without a
/// valid snapshot is moved aside whole (fvs-vswitchd then starts empty).
pub fn recover(path: impl AsRef<Path>) -> Result<Recovery, DbError> {
    let path = path.as_ref();
    let lock = lock(path)?;
    let bytes = read_file(path)?;
    let ack = Ack::read(&lock);
    let (mut before, scan) = report(path, &bytes, ack);
    before.problem = scan.error;
    let keep = if scan.records == 0 { 0 } else { scan.valid_len };
    let missing = before
        .acknowledged
        .map_or(0, |a| a.saturating_sub(bytes.len() as u64));
    let mut aside = None;
    if keep < bytes.len() as u64 {
        let secs = now_ms() / 1000;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dst = path.with_file_name(format!("{name}.corrupt-{secs}"));
        let written = File::create(&dst).and_then(|mut f| {
            f.write_all(&bytes[keep as usize..])?;
            f.sync_all()
        });
        written.map_err(io_err(&dst))?;
        aside = Some(dst);
        if keep == 0 {
            fs::remove_file(path).map_err(io_err(path))?;
        } else {
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            f.set_len(keep)
                .and_then(|()| f.sync_all())
                .map_err(io_err(path))?;
        }
        sync_dir(path)?;
    }
    if keep > 0 {
        Ack {
            len: keep,
            snapshot: scan.snapshot_crc,
        }
        .write(&lock);
    } else {
        let _ = lock.set_len(0);
    }
    Ok(Recovery {
        before,
        aside,
        removed: bytes.len() as u64 - keep,
        missing,
    })
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
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (tmp, ack) = write_snapshot_tmp(&path, &Data::initial())?;
                fs::rename(&tmp, &path).map_err(io_err(&path))?;
                sync_dir(&path)?;
                ack.write(&lock);
            }
            Err(e) => return Err(io_err(&path)(e)),
            Ok(_) => {}
        }
        let bytes = read_file(&path)?;
        let scan = scan(&path, &bytes, Ack::read(&lock));
        if let Some(e) = scan.error {
            return Err(e);
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if scan.valid_len < bytes.len() as u64 {
            // Cut the torn tail so the next record starts on a fresh line.
            file.set_len(scan.valid_len)
                .and_then(|()| file.sync_all())
                .map_err(io_err(&path))?;
        }
        let ack = Ack {
            len: scan.valid_len,
            snapshot: scan.snapshot_crc,
        };
        ack.write(&lock);
        Ok(Db {
            path,
            file,
            lock,
            snapshot_crc: scan.snapshot_crc,
            data: scan.data,
            len: scan.valid_len,
            snapshot_len: scan.snapshot_len,
            options,
            poisoned: false,
            recovery_note: scan.torn,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file beside the database (it also holds the note of the
    /// acknowledged length).
    pub fn lock_path(&self) -> PathBuf {
        lock_path(&self.path)
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
        // Durable now: from here the record is acknowledged.
        self.ack();
        Ok(())
    }

    fn ack(&self) {
        Ack {
            len: self.len,
            snapshot: self.snapshot_crc,
        }
        .write(&self.lock);
    }

    /// Rewrites the file as a single snapshot of the current contents.
    pub fn compact(&mut self) -> Result<(), DbError> {
        if self.poisoned {
            return Err(DbError::Poisoned {
                path: self.path.clone(),
            });
        }
        let (tmp, ack) = write_snapshot_tmp(&self.path, &self.data)?;
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&self.path)(e));
        }
        // From here the old inode is gone: appending to it would lose
        // commits, and so would appending before the rename is durable.
        let reopened = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path));
        match reopened.and_then(|f| sync_dir(&self.path).map(|()| f)) {
            Ok(f) => {
                self.file = f;
                self.len = ack.len;
                self.snapshot_len = ack.len;
                self.snapshot_crc = ack.snapshot;
                self.ack();
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }
}
