//! A rule in an OpenFlow table. Rules are immutable once in a table: a
//! modification installs a new rule (new id) that keeps the old counters,
//! so megaflows that depended on the old one are recognisably stale.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::actions::OfAction;
use crate::flow::Match;
use crate::flow_mod::FlowModFlags;

/// Traffic counters of a rule, credited from megaflows by the PMD threads.
#[derive(Debug, Default)]
pub struct RuleStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Milliseconds since the ofproto epoch of the last packet (0: none).
    pub used_ms: AtomicU64,
}

impl RuleStats {
    pub fn credit(&self, packets: u64, bytes: u64, used_ms: u64) {
        if packets == 0 {
            return;
        }
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.used_ms.fetch_max(used_ms, Ordering::Relaxed);
    }

    pub fn get(&self) -> (u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug)]
pub struct Rule {
    /// Unique for the life of the process; a modified rule gets a new id.
    pub id: u64,
    pub table_id: u8,
    pub priority: u16,
    pub match_: Match,
    pub cookie: u64,
    pub actions: Arc<[OfAction]>,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub importance: u16,
    pub flags: FlowModFlags,
    /// When the rule was first added (duration).
    pub created: Instant,
    /// When the rule was added or last modified (hard timeout, hard_age).
    pub modified: Instant,
    pub stats: Arc<RuleStats>,
}

impl Rule {
    /// Whether the rule can send packets to `port` (`port::NONE`: any rule).
    pub fn outputs_to(&self, port: u16) -> bool {
        port == crate::actions::port::NONE || self.actions.iter().any(|a| a.outputs_to(port))
    }

    /// Whether the rule can send packets to group `group` (`u32::MAX`: any rule).
    pub fn outputs_to_group(&self, group: u32) -> bool {
        group == u32::MAX || self.actions.iter().any(|a| a.outputs_to_group(group))
    }
}
