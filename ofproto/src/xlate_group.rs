//! Translation of groups, the action set (`write_actions`), table misses
//! sent to the controller, packet-outs and fail-open bridges.

use std::sync::Arc;

use super::{NoteKind, Xlate, XlateOut, MAX_NESTING};
use crate::actions::{OfAction, PacketInReason};
use crate::fields::{FieldId, Prereq};
use crate::flow::{ofs, OfFlow};
use crate::group::{bucket_live, Group, GroupType};

/// Internal packet-in reason of a `controller` action in a table-miss rule
/// (OVS's `OFPR_EXPLICIT_MISS`): `action` to OpenFlow 1.0, `no_match` to 1.3.
pub const EXPLICIT_MISS: u8 = 3;

/// Where an action goes in the action set (OpenFlow 1.3's execution
/// order), and what it replaces there.
fn set_slot(a: &OfAction) -> (u8, u32) {
    match a {
        OfAction::PopVlan { .. } => (1, 0),
        OfAction::PushVlan { .. } => (3, 0),
        OfAction::DecTtl { .. } => (5, 0),
        OfAction::SetField { field, .. } => (6, *field as u32),
        OfAction::SetEthSrc(_) => (6, FieldId::EthSrc as u32),
        OfAction::SetEthDst(_) => (6, FieldId::EthDst as u32),
        OfAction::SetIpv4Src(_) => (6, FieldId::Ipv4Src as u32),
        OfAction::SetIpv4Dst(_) => (6, FieldId::Ipv4Dst as u32),
        OfAction::SetIpDscp(_) => (6, FieldId::IpDscp as u32),
        OfAction::SetIpEcn(_) => (6, FieldId::IpEcn as u32),
        OfAction::SetIpTtl(_) => (6, FieldId::IpTtl as u32),
        OfAction::SetL4SrcPort(_) => (6, FieldId::TcpSrc as u32),
        OfAction::SetL4DstPort(_) => (6, FieldId::TcpDst as u32),
        OfAction::SetVlanVid { .. } => (6, FieldId::VlanVid as u32),
        OfAction::SetVlanPcp { .. } => (6, FieldId::DlVlanPcp as u32),
        OfAction::SetTunnel { .. } => (6, FieldId::TunId as u32),
        OfAction::Group(_) => (9, 0),
        OfAction::Output { .. } | OfAction::Controller { .. } => (10, 0),
        _ => (7, 0),
    }
}

impl<'a> Xlate<'a> {
    /// A lookup found no rule: OpenFlow 1.0 controllers get the packet.
    pub(super) fn table_miss(&mut self) {
        if self.br.miss_to_controller && self.depth == 0 && !self.packet_out {
            self.controller(u16::MAX, PacketInReason::NoMatch, 0);
        }
    }

    /// `write_actions`: merges into the action set.
    pub(super) fn write_actions(&mut self, list: &[OfAction]) {
        for a in list {
            let slot = set_slot(a);
            if slot.0 != 7 {
                self.action_set.retain(|b| set_slot(b) != slot);
            }
            self.action_set.push(a.clone());
        }
    }

    /// Executes the action set at the end of the pipeline: in OpenFlow's
    /// order, and a group instead of an output when there is one.
    pub(super) fn run_action_set(&mut self) {
        if self.action_set.is_empty() || self.error.is_some() {
            return;
        }
        let mut set = std::mem::take(&mut self.action_set);
        set.sort_by_key(|a| set_slot(a).0);
        if set.iter().any(|a| matches!(a, OfAction::Group(_))) {
            set.retain(|a| set_slot(a).0 != 10);
        }
        let _ = self.do_actions(&set);
    }

    /// The `group` action.
    pub(super) fn group(&mut self, id: u32) {
        if self.depth >= MAX_NESTING {
            self.note(NoteKind::Error, || "over max translation depth".into());
            return;
        }
        let Some(g) = self.br.groups.get(&id).cloned() else {
            self.note(NoteKind::Warn, || format!("no group {id}, dropping"));
            return;
        };
        self.deps.rules.push((0, g.stats.clone()));
        match g.kind {
            GroupType::All => {
                for i in 0..g.buckets.len() {
                    self.bucket(&g, i);
                }
            }
            GroupType::Indirect => {
                if !g.buckets.is_empty() {
                    self.bucket(&g, 0);
                }
            }
            GroupType::FastFailover => {
                match (0..g.buckets.len()).find(|&i| bucket_live(self.br, &g.buckets[i], 0)) {
                    Some(i) => self.bucket(&g, i),
                    None => self.note(NoteKind::Warn, || {
                        format!("group {id}: no live bucket, dropping")
                    }),
                }
            }
            GroupType::Select => match self.select_bucket(&g) {
                Some(i) => self.bucket(&g, i),
                None => self.note(NoteKind::Warn, || {
                    format!("group {id}: no live bucket, dropping")
                }),
            },
        }
    }

    /// A SELECT group's bucket for this flow: a hash of its addresses and
    /// ports (read, so the decision's megaflow covers them), weighted.
    fn select_bucket(&mut self, g: &Group) -> Option<usize> {
        let live: Vec<(usize, u64)> = g
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.weight > 0 && bucket_live(self.br, b, 0))
            .map(|(i, b)| (i, b.weight as u64))
            .collect();
        let total: u64 = live.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |v: u128| {
            for b in v.to_le_bytes() {
                h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
        };
        mix(self.read(FieldId::EthSrc, u128::MAX));
        mix(self.read(FieldId::EthDst, u128::MAX));
        mix(self.read(FieldId::EthType, u128::MAX));
        if self.prereq(Prereq::Ipv4) {
            mix(self.read(FieldId::Ipv4Src, u128::MAX));
            mix(self.read(FieldId::Ipv4Dst, u128::MAX));
        } else if self.prereq(Prereq::Ipv6) {
            mix(self.read(FieldId::Ipv6Src, u128::MAX));
            mix(self.read(FieldId::Ipv6Dst, u128::MAX));
        }
        if self.prereq(Prereq::Tcp) || self.prereq(Prereq::Udp) || self.prereq(Prereq::Sctp) {
            mix(self.read(FieldId::TcpSrc, u128::MAX));
            mix(self.read(FieldId::TcpDst, u128::MAX));
        }
        let mut pick = h % total;
        for (i, w) in live {
            if pick < w {
                return Some(i);
            }
            pick -= w;
        }
        None
    }

    /// Executes bucket `i` of `g` on a copy of the packet: what the bucket
    /// changes is undone for what follows it.
    fn bucket(&mut self, g: &Arc<Group>, i: usize) {
        let Some(b) = g.buckets.get(i) else { return };
        if let Some(s) = g.bucket_stats.get(i) {
            self.deps.rules.push((0, s.clone()));
        }
        self.note(NoteKind::Detail, || format!("group {}: bucket {i}", g.id));
        let (flow, known, tpid, stop) = (self.flow, self.known, self.push_tpid, self.stop_list);
        let dirty = self.dirty;
        let saved_set = self.action_set.clone();
        self.depth += 1;
        let _ = self.do_actions(&b.actions);
        self.depth -= 1;
        self.flow = flow;
        self.known = known;
        self.push_tpid = tpid;
        self.stop_list = stop;
        self.action_set = saved_set;
        // Headers the bucket committed must be written back before the next
        // output, which depends on what the packet had there.
        let mut back = OfFlow::ZERO;
        for i in 0..ofs::METADATA {
            if self.base.b[i] != self.flow.b[i] {
                back.b[i] = 0xff;
            }
        }
        for i in 0..ofs::METADATA {
            self.wc.b[i] |= back.b[i] & !self.known.b[i];
        }
        self.dirty = dirty;
        self.dirty.or_assign(&back);
    }

    /// Translates a packet-out's actions (`output:TABLE` runs the pipeline).
    pub(crate) fn run_packet_out(mut self, actions: &[OfAction]) -> XlateOut {
        self.packet_out = true;
        let _ = self.do_actions(actions);
        self.run_action_set();
        self.finish()
    }

    /// A fail-open bridge: the learning switch alone decides.
    pub(crate) fn run_normal(mut self) -> XlateOut {
        self.normal();
        self.finish()
    }

    fn finish(self) -> XlateOut {
        XlateOut {
            actions: self.actions,
            wc: self.wc,
            deps: self.deps,
            flow: self.flow,
            trace: self.trace.unwrap_or_default(),
            error: self.error,
        }
    }
}
