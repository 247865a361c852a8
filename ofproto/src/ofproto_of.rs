//! What the OpenFlow protocol needs of an [`Ofproto`] beyond flow tables:
//! the group table, packet-outs, and the bridge modes a controller
//! connection sets (table misses to the controller, fail-open, port
//! liveness and flooding).

use fvs_datapath::key::FlowKey;

use super::{Change, Ofproto, OfprotoError, RemovedReason, RemovedRule};
use crate::actions::OfAction;
use crate::bridge::Bridge;
use crate::group::{self, GroupEntry, GroupMod};
use crate::xlate::{Xlate, XlateOut};

/// The first group `actions` send to that `br` does not have.
pub(super) fn missing_group(br: &Bridge, actions: &[OfAction]) -> Option<u32> {
    actions.iter().find_map(|a| match a {
        OfAction::Group(g) if !br.groups.contains_key(g) => Some(*g),
        OfAction::WriteActions(list) => missing_group(br, list),
        _ => None,
    })
}

impl Ofproto {
    /// Applies a group-mod; returns the rules deleted with a deleted group.
    pub fn group_mod(&self, bridge: &str, gm: &GroupMod) -> Result<Vec<RemovedRule>, OfprotoError> {
        let (removed, v) = {
            let mut st = self.write();
            let br = st.bridge_mut(bridge)?;
            let id = br.id;
            let rules = group::apply(br, gm).map_err(|error| OfprotoError::GroupMod {
                bridge: bridge.to_string(),
                error,
            })?;
            let mut changes = vec![Change::All];
            changes.extend(rules.iter().map(|r| Change::RuleRemoved { rule_id: r.id }));
            let removed = rules
                .into_iter()
                .map(|rule| RemovedRule {
                    bridge: id,
                    rule,
                    reason: RemovedReason::GroupDelete,
                })
                .collect::<Vec<_>>();
            (removed, self.log_changes(changes))
        };
        self.wait(v);
        Ok(removed)
    }

    /// The groups of a bridge, with fresh counters, by id.
    pub fn groups(&self, bridge: &str) -> Result<Vec<GroupEntry>, OfprotoError> {
        self.sync_stats();
        self.with_bridge(bridge, group::entries)
    }

    /// The name of the bridge with id `id`.
    pub fn bridge_name(&self, id: u32) -> Option<String> {
        self.read().bridges.get(&id).map(|b| b.name.clone())
    }

    fn set_bridge_flag(&self, bridge: &str, f: impl FnOnce(&mut Bridge) -> bool) {
        let v = {
            let mut st = self.write();
            let Ok(br) = st.bridge_mut(bridge) else {
                return;
            };
            if !f(br) {
                return;
            }
            self.log_changes(vec![Change::All])
        };
        self.wait(v);
    }

    /// Table misses become packet-ins (an OpenFlow 1.0 controller listens).
    pub fn set_miss_to_controller(&self, bridge: &str, on: bool) {
        self.set_bridge_flag(bridge, |b| {
            std::mem::replace(&mut b.miss_to_controller, on) != on
        });
    }

    /// Fail-open: the bridge acts as a learning switch (standalone mode
    /// without its controllers).
    pub fn set_fail_open(&self, bridge: &str, on: bool) {
        self.set_bridge_flag(bridge, |b| std::mem::replace(&mut b.fail_open, on) != on);
    }

    pub fn is_fail_open(&self, bridge: &str) -> bool {
        self.with_bridge(bridge, |b| b.fail_open).unwrap_or(false)
    }

    /// Whether a port's link is up (fast-failover groups watch it).
    pub fn set_port_live(&self, bridge: &str, ofport: u16, live: bool) {
        self.set_bridge_flag(bridge, |b| {
            if live {
                b.down_ports.remove(&ofport)
            } else {
                b.down_ports.insert(ofport)
            }
        });
    }

    /// A port's `no_flood` (OpenFlow 1.0's OFPPC_NO_FLOOD).
    pub fn set_port_no_flood(
        &self,
        bridge: &str,
        ofport: u16,
        no_flood: bool,
    ) -> Result<(), OfprotoError> {
        let (name, vlan) = self
            .with_bridge(bridge, |b| {
                b.port(ofport).map(|p| (p.name.clone(), p.vlan.clone()))
            })?
            .ok_or_else(|| OfprotoError::NoSuchPort {
                bridge: bridge.to_string(),
                port: ofport.to_string(),
            })?;
        self.set_port_config(bridge, &name, vlan, no_flood)
    }

    /// Translates a packet-out: `actions` applied to a packet with key
    /// `key` that came in on `in_port` (`output:TABLE` runs the tables).
    pub fn packet_out(
        &self,
        bridge: &str,
        key: &FlowKey,
        in_port: u16,
        actions: &[OfAction],
    ) -> Result<XlateOut, OfprotoError> {
        let st = self.read();
        let br = st.bridge(bridge)?;
        Ok(Xlate::new(self, br, key, in_port, false)
            .with_bridges(&st.bridges)
            .run_packet_out(actions))
    }

    /// Every rule that would be removed with group `id` (for tests).
    pub fn rules_using_group(&self, bridge: &str, id: u32) -> Result<usize, OfprotoError> {
        self.with_bridge(bridge, |b| {
            b.tables
                .iter()
                .flat_map(|t| t.rules())
                .filter(|r| r.outputs_to_group(id))
                .count()
        })
    }
}
