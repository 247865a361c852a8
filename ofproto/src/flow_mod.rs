//! Flow-table modification requests and flow statistics entries, as
//! `fvs-ofctl` and (later) the OpenFlow wire produce and consume them.

use crate::actions::{port, OfAction};
use crate::flow::Match;

/// The default rule priority (OpenFlow's `OFP_DEFAULT_PRIORITY`).
pub const DEFAULT_PRIORITY: u16 = 0x8000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    Add,
    Modify,
    ModifyStrict,
    Delete,
    DeleteStrict,
}

impl FlowModCommand {
    pub fn is_strict(self) -> bool {
        matches!(
            self,
            FlowModCommand::ModifyStrict | FlowModCommand::DeleteStrict
        )
    }
}

/// Flow-mod flags (`send_flow_rem`, `check_overlap`, `reset_counts`,
/// `no_packet_counts`, `no_byte_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowModFlags {
    pub send_flow_rem: bool,
    pub check_overlap: bool,
    pub reset_counts: bool,
    pub no_packet_counts: bool,
    pub no_byte_counts: bool,
}

impl FlowModFlags {
    pub fn is_empty(&self) -> bool {
        *self == FlowModFlags::default()
    }
}

/// One flow-table modification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    pub command: FlowModCommand,
    /// `None`: table 0 for add, every table for modify/delete.
    pub table_id: Option<u8>,
    pub priority: u16,
    pub match_: Match,
    /// Cookie given to added (or, with `new_cookie`, modified) rules.
    pub cookie: u64,
    /// Selects rules by `cookie & cookie_mask` (modify/delete); 0 = all.
    pub cookie_mask: u64,
    /// For modify: replace the cookie of the modified rules by `cookie`.
    pub modify_cookie: bool,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub importance: u16,
    pub flags: FlowModFlags,
    /// Delete/modify only rules that output to this port (`port::NONE` = any).
    pub out_port: u16,
    /// Delete/modify only rules that output to this group (`u32::MAX` = any).
    pub out_group: u32,
    /// The rule's actions and instructions (empty: drop).
    pub actions: Vec<OfAction>,
}

impl FlowMod {
    pub fn new(command: FlowModCommand) -> FlowMod {
        FlowMod {
            command,
            table_id: None,
            priority: DEFAULT_PRIORITY,
            match_: Match::catchall(),
            cookie: 0,
            cookie_mask: 0,
            modify_cookie: false,
            idle_timeout: 0,
            hard_timeout: 0,
            importance: 0,
            flags: FlowModFlags::default(),
            out_port: port::NONE,
            out_group: u32::MAX,
            actions: Vec::new(),
        }
    }
}

/// One rule as `dump-flows` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStats {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: FlowModFlags,
    pub importance: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    /// Seconds since the rule last matched a packet (or since it was added).
    pub idle_age: u32,
    /// Seconds since the rule was added or last modified.
    pub hard_age: u32,
    pub match_: Match,
    pub actions: Vec<OfAction>,
}
