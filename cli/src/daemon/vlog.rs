//! The daemon's log, in OVS's format
//! (`2026-11-30T12:00:00.123Z|00001|bridge|INFO|message`), with per-module
//! levels set by `vlog/set`, and reopened on SIGHUP.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Off,
    Emer,
    Err,
    Warn,
    Info,
    Dbg,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "off" => Level::Off,
            "emer" => Level::Emer,
            "err" => Level::Err,
            "warn" => Level::Warn,
            "info" => Level::Info,
            "dbg" | "debug" => Level::Dbg,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Level::Off => "OFF",
            Level::Emer => "EMER",
            Level::Err => "ERR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Dbg => "DBG",
        }
    }
}

/// The modules the daemon logs under (what `vlog/set` accepts besides ANY).
pub const MODULES: &[&str] = &[
    "bridge",
    "dpdk",
    "dpif_netdev",
    "netdev",
    "ofproto",
    "unixctl",
    "vswitchd",
];

pub struct Vlog {
    path: Option<PathBuf>,
    file: Mutex<Option<File>>,
    /// Level per module for the file destination; `ANY` is the default.
    levels: Mutex<BTreeMap<String, Level>>,
    console: bool,
    seq: AtomicU64,
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a time since the epoch.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

impl Vlog {
    /// A log to `path` (if any), and to stderr when `console`.
    pub fn new(path: Option<PathBuf>, console: bool) -> std::io::Result<Vlog> {
        let file = match &path {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        let mut levels = BTreeMap::new();
        levels.insert("ANY".to_string(), Level::Info);
        Ok(Vlog {
            path,
            file: Mutex::new(file),
            levels: Mutex::new(levels),
            console,
            seq: AtomicU64::new(1),
        })
    }

    /// Reopens the log file (after rotation; on SIGHUP).
    pub fn reopen(&self) -> std::io::Result<()> {
        if let Some(p) = &self.path {
            let f = OpenOptions::new().create(true).append(true).open(p)?;
            *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        }
        Ok(())
    }

    fn level_of(&self, module: &str) -> Level {
        let levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        levels
            .get(module)
            .or_else(|| levels.get("ANY"))
            .copied()
            .unwrap_or(Level::Info)
    }

    pub fn log(&self, level: Level, module: &str, msg: &str) {
        if level > self.level_of(module) {
            return;
        }
        let line = format!(
            "{}|{:05}|{module}|{}|{msg}\n",
            timestamp(SystemTime::now()),
            self.seq.fetch_add(1, Ordering::Relaxed),
            level.name()
        );
        if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
        if self.console {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    pub fn err(&self, module: &str, msg: &str) {
        self.log(Level::Err, module, msg)
    }
    pub fn warn(&self, module: &str, msg: &str) {
        self.log(Level::Warn, module, msg)
    }
    pub fn info(&self, module: &str, msg: &str) {
        self.log(Level::Info, module, msg)
    }
    pub fn dbg(&self, module: &str, msg: &str) {
        self.log(Level::Dbg, module, msg)
    }

    /// `vlog/set` specs: `[module][:dest][:level]`, e.g. `dbg`, `bridge:dbg`,
    /// `ANY:file:info` (destinations are accepted and apply to the file).
    pub fn set(&self, spec: &str) -> Result<(), String> {
        let mut module = "ANY".to_string();
        let mut level = None;
        for part in spec.split(':') {
            if let Some(l) = Level::parse(part) {
                level = Some(l);
            } else if matches!(part, "file" | "console" | "syslog" | "any" | "ANY") {
                if part == "ANY" {
                    module = "ANY".into();
                }
            } else if MODULES.contains(&part) {
                module = part.to_string();
            } else {
                return Err(format!("unknown module \"{part}\""));
            }
        }
        let level = level.unwrap_or(Level::Dbg);
        let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        if module == "ANY" {
            levels.clear();
        }
        levels.insert(module, level);
        Ok(())
    }

    /// `vlog/list`, in OVS's layout (fvs logs to its file only).
    pub fn list(&self) -> String {
        let mut s = String::from(
            "                 console    syslog    file\n                 -------    ------    ------\n",
        );
        for m in MODULES {
            s += &format!(
                "{m:<16}  {:>4}       {:>4}       {:>4}\n",
                "OFF",
                "OFF",
                self.level_of(m).name()
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_millis(1_796_043_600_123)),
            "2026-11-30T13:00:00.123Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn levels() {
        let v = Vlog::new(None, false).unwrap();
        assert_eq!(v.level_of("bridge"), Level::Info);
        v.set("bridge:file:dbg").unwrap();
        assert_eq!(v.level_of("bridge"), Level::Dbg);
        assert_eq!(v.level_of("netdev"), Level::Info);
        v.set("warn").unwrap();
        assert_eq!(v.level_of("bridge"), Level::Warn);
        assert!(v.set("bridge:loud").is_err());
    }
}
