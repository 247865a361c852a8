//! The MAC learning table of a bridge (the `NORMAL` action's forwarding
//! database): (VLAN, MAC) → port, aged out after 300 s like OVS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// OVS's default `mac-aging-time`.
pub const DEFAULT_AGING: Duration = Duration::from_secs(300);
/// OVS's default `mac-table-size`.
pub const DEFAULT_SIZE: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    pub port: u16,
    pub last_seen: Instant,
}

/// What a learning step changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// Already known on that port (age refreshed).
    Refreshed,
    /// New entry, or the MAC moved to another port.
    Changed,
}

/// One entry of the table as `fdb/show` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdbRow {
    pub port: u16,
    pub vlan: u16,
    pub mac: [u8; 6],
    pub age_secs: u64,
}

#[derive(Debug)]
pub struct Fdb {
    entries: HashMap<(u16, [u8; 6]), FdbEntry>,
    max: usize,
    aging: Duration,
}

impl Default for Fdb {
    fn default() -> Self {
        Fdb::new(DEFAULT_SIZE, DEFAULT_AGING)
    }
}

impl Fdb {
    pub fn new(max: usize, aging: Duration) -> Fdb {
        Fdb {
            entries: HashMap::new(),
            max: max.max(1),
            aging,
        }
    }

    pub fn set_aging(&mut self, aging: Duration) {
        self.aging = aging;
    }

    pub fn aging(&self) -> Duration {
        self.aging
    }

    /// Records that `mac` on `vlan` was seen on `port`. When the table is
    /// full the least recently seen entry makes room (returned).
    pub fn learn(
        &mut self,
        vlan: u16,
        mac: [u8; 6],
        port: u16,
        now: Instant,
    ) -> (Learned, Option<(u16, [u8; 6])>) {
        if let Some(e) = self.entries.get_mut(&(vlan, mac)) {
            let moved = e.port != port;
            e.port = port;
            e.last_seen = now;
            return (
                if moved {
                    Learned::Changed
                } else {
                    Learned::Refreshed
                },
                None,
            );
        }
        let mut evicted = None;
        if self.entries.len() >= self.max {
            if let Some((&k, _)) = self.entries.iter().min_by_key(|(_, e)| e.last_seen) {
                self.entries.remove(&k);
                evicted = Some(k);
            }
        }
        self.entries.insert(
            (vlan, mac),
            FdbEntry {
                port,
                last_seen: now,
            },
        );
        (Learned::Changed, evicted)
    }

    /// The port `mac` on `vlan` was last seen on, if not aged out.
    pub fn lookup(&self, vlan: u16, mac: [u8; 6], now: Instant) -> Option<u16> {
        let e = self.entries.get(&(vlan, mac))?;
        (now.saturating_duration_since(e.last_seen) < self.aging).then_some(e.port)
    }

    /// Removes aged-out entries; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<(u16, [u8; 6])> {
        let aging = self.aging;
        let old: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.last_seen) >= aging)
            .map(|(k, _)| *k)
            .collect();
        for k in &old {
            self.entries.remove(k);
        }
        old
    }

    /// Removes every entry (or those on `port`); returns them.
    pub fn flush(&mut self, port: Option<u16>) -> Vec<(u16, [u8; 6])> {
        let gone: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| port.is_none_or(|p| e.port == p))
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            self.entries.remove(k);
        }
        gone
    }

    /// Every entry, as `fdb/show` lists them (by port, VLAN, MAC).
    pub fn entries(&self, now: Instant) -> Vec<FdbRow> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .map(|((vlan, mac), e)| FdbRow {
                port: e.port,
                vlan: *vlan,
                mac: *mac,
                age_secs: now.saturating_duration_since(e.last_seen).as_secs(),
            })
            .collect();
        v.sort();
        v
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_move_age_evict() {
        let t0 = Instant::now();
        let mut f = Fdb::new(2, Duration::from_secs(300));
        let a = [0, 0, 0, 0, 0, 1];
        let b = [0, 0, 0, 0, 0, 2];
        assert_eq!(f.learn(0, a, 1, t0).0, Learned::Changed);
        assert_eq!(f.learn(0, a, 1, t0).0, Learned::Refreshed);
        assert_eq!(f.learn(0, a, 2, t0).0, Learned::Changed);
        assert_eq!(f.lookup(0, a, t0), Some(2));
        assert_eq!(f.lookup(10, a, t0), None, "VLANs are separate");
        f.learn(0, b, 3, t0 + Duration::from_secs(1));
        let (_, ev) = f.learn(5, a, 1, t0 + Duration::from_secs(2));
        assert_eq!(ev, Some((0, a)), "the least recently seen entry is evicted");
        let later = t0 + Duration::from_secs(302);
        assert_eq!(f.lookup(0, b, later), None);
        assert_eq!(f.expire(later).len(), 2);
        assert!(f.is_empty());
    }
}
