//! Group table: OpenFlow groups (ALL, SELECT, INDIRECT, FAST_FAILOVER) of a
//! bridge, and their validation as OpenFlow 1.3 specifies it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;

use crate::actions::OfAction;
use crate::bridge::Bridge;
use crate::rule::{Rule, RuleStats};

/// Largest group id (`OFPG_MAX`).
pub const GROUP_MAX: u32 = 0xffff_ff00;
/// Group id of a delete that removes every group (`OFPG_ALL`).
pub const GROUP_ALL: u32 = 0xffff_fffc;
/// Watch port/group meaning "none" (`OFPP_ANY`, `OFPG_ANY`).
pub const WATCH_NONE: u32 = 0xffff_ffff;
/// Buckets a group may hold.
pub const MAX_BUCKETS: usize = 256;
/// Groups a bridge may hold.
pub const MAX_GROUPS: usize = 65536;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// Every bucket gets a copy (flooding, multicast).
    All,
    /// One bucket, chosen by a hash of the flow (weighted).
    Select,
    /// Exactly one bucket.
    Indirect,
    /// The first bucket whose watched port or group is live.
    FastFailover,
}

impl GroupType {
    pub fn name(self) -> &'static str {
        match self {
            GroupType::All => "all",
            GroupType::Select => "select",
            GroupType::Indirect => "indirect",
            GroupType::FastFailover => "ff",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub weight: u16,
    /// OpenFlow 1.1+ port number, `WATCH_NONE` for none.
    pub watch_port: u32,
    pub watch_group: u32,
    pub actions: Vec<OfAction>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupModCommand {
    Add,
    Modify,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMod {
    pub command: GroupModCommand,
    pub kind: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

/// A group in a bridge's group table.
#[derive(Debug)]
pub struct Group {
    pub id: u32,
    pub kind: GroupType,
    pub buckets: Vec<Bucket>,
    pub created: Instant,
    pub stats: Arc<RuleStats>,
    pub bucket_stats: Vec<Arc<RuleStats>>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum GroupModError {
    #[error("group {0} already exists")]
    Exists(u32),
    #[error("no group {0}")]
    Unknown(u32),
    #[error("{0} is not a valid group id")]
    Invalid(u32),
    #[error("group {0}: {1}")]
    BadBucket(u32, String),
    #[error("group {0}: a fast failover bucket must watch a port or a group")]
    BadWatch(u32),
    #[error("group {0} would forward to itself")]
    Loop(u32),
    #[error("group {0} is used by group {1}")]
    Chained(u32, u32),
    #[error("group table full")]
    Full,
}

/// Groups a group's buckets send to.
fn referenced(buckets: &[Bucket]) -> impl Iterator<Item = u32> + '_ {
    buckets
        .iter()
        .flat_map(|b| b.actions.iter())
        .filter_map(|a| match a {
            OfAction::Group(g) => Some(*g),
            _ => None,
        })
}

fn reaches(groups: &BTreeMap<u32, Arc<Group>>, from: u32, target: u32, depth: u32) -> bool {
    if from == target {
        return true;
    }
    if depth > 32 {
        return true;
    }
    groups
        .get(&from)
        .is_some_and(|g| referenced(&g.buckets).any(|n| reaches(groups, n, target, depth + 1)))
}

fn validate(br: &Bridge, gm: &GroupMod) -> Result<(), GroupModError> {
    let id = gm.group_id;
    if id > GROUP_MAX {
        return Err(GroupModError::Invalid(id));
    }
    if gm.buckets.len() > MAX_BUCKETS {
        return Err(GroupModError::BadBucket(id, "too many buckets".into()));
    }
    if gm.kind == GroupType::Indirect && gm.buckets.len() != 1 {
        return Err(GroupModError::BadBucket(
            id,
            "an indirect group has exactly one bucket".into(),
        ));
    }
    for b in &gm.buckets {
        if gm.kind == GroupType::FastFailover
            && b.watch_port == WATCH_NONE
            && b.watch_group == WATCH_NONE
        {
            return Err(GroupModError::BadWatch(id));
        }
        if b.actions.iter().any(|a| {
            matches!(
                a,
                OfAction::GotoTable(_)
                    | OfAction::WriteMetadata { .. }
                    | OfAction::ClearActions
                    | OfAction::WriteActions(_)
            )
        }) {
            return Err(GroupModError::BadBucket(
                id,
                "instructions are not allowed in a bucket".into(),
            ));
        }
    }
    for n in referenced(&gm.buckets) {
        if n == id || reaches(&br.groups, n, id, 0) {
            return Err(GroupModError::Loop(id));
        }
        if !br.groups.contains_key(&n) {
            return Err(GroupModError::Unknown(n));
        }
    }
    Ok(())
}

fn new_group(gm: &GroupMod, now: Instant) -> Arc<Group> {
    Arc::new(Group {
        id: gm.group_id,
        kind: gm.kind,
        buckets: gm.buckets.clone(),
        created: now,
        stats: Arc::new(RuleStats::default()),
        bucket_stats: gm
            .buckets
            .iter()
            .map(|_| Arc::new(RuleStats::default()))
            .collect(),
    })
}

/// Applies a group-mod to a bridge; returns the rules removed because they
/// sent to a deleted group.
pub(crate) fn apply(br: &mut Bridge, gm: &GroupMod) -> Result<Vec<Arc<Rule>>, GroupModError> {
    let now = Instant::now();
    match gm.command {
        GroupModCommand::Add => {
            if br.groups.contains_key(&gm.group_id) {
                return Err(GroupModError::Exists(gm.group_id));
            }
            if br.groups.len() >= MAX_GROUPS {
                return Err(GroupModError::Full);
            }
            validate(br, gm)?;
            br.groups.insert(gm.group_id, new_group(gm, now));
            Ok(Vec::new())
        }
        GroupModCommand::Modify => {
            if !br.groups.contains_key(&gm.group_id) {
                return Err(GroupModError::Unknown(gm.group_id));
            }
            validate(br, gm)?;
            br.groups.insert(gm.group_id, new_group(gm, now));
            Ok(Vec::new())
        }
        GroupModCommand::Delete => {
            let ids: Vec<u32> = if gm.group_id == GROUP_ALL {
                br.groups.keys().copied().collect()
            } else if br.groups.contains_key(&gm.group_id) {
                vec![gm.group_id]
            } else {
                // Deleting a group that does not exist is not an error.
                return Ok(Vec::new());
            };
            for id in &ids {
                if let Some((user, _)) = br
                    .groups
                    .iter()
                    .find(|(u, g)| !ids.contains(u) && referenced(&g.buckets).any(|n| n == *id))
                {
                    return Err(GroupModError::Chained(*id, *user));
                }
            }
            let mut removed = Vec::new();
            for id in &ids {
                br.groups.remove(id);
                for t in 0..br.tables.len() {
                    let users: Vec<Arc<Rule>> = br.tables[t]
                        .rules()
                        .filter(|r| r.outputs_to_group(*id))
                        .cloned()
                        .collect();
                    for r in users {
                        br.tables[t].remove(&r.match_, r.priority);
                        removed.push(r);
                    }
                }
            }
            Ok(removed)
        }
    }
}

/// Whether a bucket may be used (fast failover): its watched port is up,
/// or its watched group has a live bucket.
pub(crate) fn bucket_live(br: &Bridge, b: &Bucket, depth: u32) -> bool {
    if b.watch_port != WATCH_NONE {
        let p = crate::ofp::nxm::port_from_32(b.watch_port);
        let up = p.is_some_and(|p| br.ports.contains_key(&p) && !br.down_ports.contains(&p));
        if !up {
            return false;
        }
    }
    if b.watch_group != WATCH_NONE {
        if depth > 8 {
            return false;
        }
        let Some(g) = br.groups.get(&b.watch_group) else {
            return false;
        };
        if !g.buckets.iter().any(|gb| bucket_live(br, gb, depth + 1)) {
            return false;
        }
    }
    true
}

/// A group as `dump-groups` reports it, with its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    pub id: u32,
    pub kind: GroupType,
    pub buckets: Vec<Bucket>,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub ref_count: u32,
    pub packets: u64,
    pub bytes: u64,
    pub bucket_counts: Vec<(u64, u64)>,
}

pub(crate) fn entries(br: &Bridge) -> Vec<GroupEntry> {
    let now = Instant::now();
    br.groups
        .values()
        .map(|g| {
            let d = now.saturating_duration_since(g.created);
            let ref_count = br
                .tables
                .iter()
                .flat_map(|t| t.rules())
                .filter(|r| r.outputs_to_group(g.id))
                .count() as u32;
            let (packets, bytes) = g.stats.get();
            GroupEntry {
                id: g.id,
                kind: g.kind,
                buckets: g.buckets.clone(),
                duration_sec: d.as_secs() as u32,
                duration_nsec: d.subsec_millis() * 1_000_000,
                ref_count,
                packets,
                bytes,
                bucket_counts: g.bucket_stats.iter().map(|s| s.get()).collect(),
            }
        })
        .collect()
}
