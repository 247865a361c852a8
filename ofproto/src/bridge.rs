//! A bridge: its OpenFlow tables, its ports and their VLAN configuration,
//! and its MAC learning table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::actions::port;
use crate::classifier::Classifier;
use crate::fdb::Fdb;

/// Tables 0–254.
pub const N_TABLES: usize = 255;

/// How a port treats VLANs for the `NORMAL` action (OVS's `vlan_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VlanMode {
    #[default]
    Trunk,
    Access,
    NativeTagged,
    NativeUntagged,
}

impl VlanMode {
    pub fn as_str(self) -> &'static str {
        match self {
            VlanMode::Trunk => "trunk",
            VlanMode::Access => "access",
            VlanMode::NativeTagged => "native-tagged",
            VlanMode::NativeUntagged => "native-untagged",
        }
    }

    pub fn parse(s: &str) -> Option<VlanMode> {
        Some(match s {
            "trunk" => VlanMode::Trunk,
            "access" => VlanMode::Access,
            "native-tagged" => VlanMode::NativeTagged,
            "native-untagged" => VlanMode::NativeUntagged,
            _ => return None,
        })
    }
}

/// A port's VLAN configuration (Port table `tag`, `trunks`, `vlan_mode`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VlanConfig {
    pub tag: Option<u16>,
    /// Empty: every VLAN.
    pub trunks: Vec<u16>,
    /// `None`: OVS's default (access if `tag` is set, else trunk).
    pub mode: Option<VlanMode>,
}

impl VlanConfig {
    pub fn access(tag: u16) -> VlanConfig {
        VlanConfig {
            tag: Some(tag),
            trunks: Vec::new(),
            mode: None,
        }
    }

    pub fn effective_mode(&self) -> VlanMode {
        self.mode.unwrap_or(if self.tag.is_some() {
            VlanMode::Access
        } else {
            VlanMode::Trunk
        })
    }

    fn trunks(&self, vlan: u16) -> bool {
        self.trunks.is_empty() || self.trunks.contains(&vlan)
    }

    /// The VLAN a packet arriving here belongs to (`vid` 0 = untagged or
    /// priority-tagged), or `None` if the port must drop it.
    pub fn input_vlan(&self, vid: u16) -> Option<u16> {
        let tag = self.tag.unwrap_or(0);
        match self.effective_mode() {
            VlanMode::Access => (vid == 0).then_some(tag),
            VlanMode::Trunk => self.trunks(vid).then_some(vid),
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                if vid == 0 {
                    Some(tag)
                } else {
                    (self.trunks(vid) || vid == tag).then_some(vid)
                }
            }
        }
    }

    /// Whether packets of `vlan` leave through this port, and tagged or not.
    pub fn output(&self, vlan: u16) -> Option<bool> {
        let tag = self.tag.unwrap_or(0);
        match self.effective_mode() {
            VlanMode::Access => (vlan == tag).then_some(false),
            VlanMode::Trunk => self.trunks(vlan).then_some(vlan != 0),
            VlanMode::NativeTagged => (vlan == tag || self.trunks(vlan)).then_some(vlan != 0),
            VlanMode::NativeUntagged => {
                if vlan == tag {
                    Some(false)
                } else {
                    self.trunks(vlan).then_some(vlan != 0)
                }
            }
        }
    }
}

/// A port of a bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgePort {
    pub name: String,
    pub ofport: u16,
    /// The datapath port number it maps to.
    pub odp_port: u32,
    pub vlan: VlanConfig,
    /// Excluded from `FLOOD` and from flooding by `NORMAL`.
    pub no_flood: bool,
}

pub struct Bridge {
    pub id: u32,
    pub name: String,
    pub(crate) tables: Vec<Classifier>,
    pub(crate) ports: BTreeMap<u16, BridgePort>,
    pub(crate) fdb: Mutex<Fdb>,
    /// Forward reserved multicast (STP, LACP…) in `NORMAL` (`other_config:forward-bpdu`).
    pub forward_bpdu: bool,
    /// The group table.
    pub(crate) groups: BTreeMap<u32, Arc<crate::group::Group>>,
    /// Ports whose link is down (fast-failover liveness).
    pub(crate) down_ports: BTreeSet<u16>,
    /// A table miss sends the packet to the controller (an OpenFlow 1.0
    /// controller is connected), as OVS's default table-miss behaviour.
    pub(crate) miss_to_controller: bool,
    /// Fail-open: no controller for a while in standalone mode, so the
    /// bridge acts as a learning switch whatever its tables say.
    pub(crate) fail_open: bool,
}

impl Bridge {
    pub(crate) fn new(id: u32, name: &str) -> Bridge {
        Bridge {
            id,
            name: name.to_string(),
            tables: (0..N_TABLES).map(|_| Classifier::default()).collect(),
            ports: BTreeMap::new(),
            fdb: Mutex::new(Fdb::default()),
            forward_bpdu: false,
            groups: BTreeMap::new(),
            down_ports: BTreeSet::new(),
            miss_to_controller: false,
            fail_open: false,
        }
    }

    pub fn ports(&self) -> impl Iterator<Item = &BridgePort> {
        self.ports.values()
    }

    pub fn port(&self, ofport: u16) -> Option<&BridgePort> {
        self.ports.get(&ofport)
    }

    pub fn port_by_name(&self, name: &str) -> Option<&BridgePort> {
        self.ports.values().find(|p| p.name == name)
    }

    pub fn n_rules(&self) -> usize {
        self.tables.iter().map(|t| t.len()).sum()
    }

    pub fn table(&self, id: u8) -> Option<&Classifier> {
        self.tables.get(id as usize)
    }

    /// The lowest free OpenFlow port number (1…), honouring a request.
    pub(crate) fn choose_ofport(&self, name: &str, request: Option<u16>) -> Option<u16> {
        if name == self.name {
            return Some(port::LOCAL);
        }
        if let Some(r) = request {
            if (1..port::MAX).contains(&r) && !self.ports.contains_key(&r) {
                return Some(r);
            }
        }
        (1..port::MAX).find(|p| !self.ports.contains_key(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_modes() {
        let access = VlanConfig::access(10);
        assert_eq!(access.input_vlan(0), Some(10));
        assert_eq!(access.input_vlan(20), None);
        assert_eq!(access.output(10), Some(false));
        assert_eq!(access.output(20), None);
        let trunk = VlanConfig {
            tag: None,
            trunks: vec![10, 20],
            mode: None,
        };
        assert_eq!(trunk.input_vlan(10), Some(10));
        assert_eq!(trunk.input_vlan(30), None);
        assert_eq!(trunk.output(20), Some(true));
        let all = VlanConfig::default();
        assert_eq!(all.input_vlan(0), Some(0));
        assert_eq!(all.output(0), Some(false));
        assert_eq!(all.output(7), Some(true));
        let nu = VlanConfig {
            tag: Some(5),
            trunks: vec![6],
            mode: Some(VlanMode::NativeUntagged),
        };
        assert_eq!(nu.input_vlan(0), Some(5));
        assert_eq!(nu.input_vlan(6), Some(6));
        assert_eq!(nu.output(5), Some(false));
        assert_eq!(nu.output(6), Some(true));
        let nt = VlanConfig {
            tag: Some(5),
            trunks: vec![6],
            mode: Some(VlanMode::NativeTagged),
        };
        assert_eq!(nt.output(5), Some(true));
    }
}
