//! Typed views for the daemon: what to reconcile ([`Data::config`]) and
//! transactions that report status back ([`Txn`]'s `set_*` helpers).

use std::collections::BTreeMap;

use super::data::{Data, Row, Txn};
use super::value::{Atom, Datum, Uuid};

/// Switch-wide settings (`Open_vSwitch`) and every bridge, ports and
/// interfaces included, each list in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwitchConfig {
    pub uuid: Uuid,
    pub next_cfg: i64,
    pub cur_cfg: i64,
    /// dpdk-init, pmd-cpu-mask, … (unknown keys are kept, as in OVS).
    pub other_config: BTreeMap<String, String>,
    /// system-id, hostname, …
    pub external_ids: BTreeMap<String, String>,
    pub bridges: Vec<BridgeConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeConfig {
    pub uuid: Uuid,
    pub name: String,
    /// `""` (system) or `netdev`.
    pub datapath_type: String,
    /// `standalone`, `secure`, or unset (standalone).
    pub fail_mode: Option<String>,
    pub protocols: Vec<String>,
    pub other_config: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    pub controllers: Vec<ControllerConfig>,
    pub ports: Vec<PortConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerConfig {
    pub uuid: Uuid,
    pub target: String,
    pub inactivity_probe: Option<i64>,
    pub max_backoff: Option<i64>,
    pub connection_mode: Option<String>,
    pub other_config: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortConfig {
    pub uuid: Uuid,
    pub name: String,
    /// Access VLAN (0..=4095).
    pub tag: Option<u16>,
    /// Trunk VLANs; empty means all VLANs.
    pub trunks: Vec<u16>,
    /// `trunk`, `access`, `native-tagged`, `native-untagged`, `dot1q-tunnel`.
    pub vlan_mode: Option<String>,
    pub bond_mode: Option<String>,
    pub other_config: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    pub interfaces: Vec<InterfaceConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub uuid: Uuid,
    pub name: String,
    /// The `type` column: `""` (system), `internal`, `tap`, `dpdk`, `dpdkvhostuser`, …
    pub kind: String,
    pub options: BTreeMap<String, String>,
    pub ofport_request: Option<u16>,
    pub mtu_request: Option<u32>,
    pub mac: Option<String>,
    pub other_config: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

fn by_name<T>(mut v: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    v.sort_by(|a, b| name(a).cmp(name(b)));
    v
}

impl Data {
    /// The configuration to reconcile, read from the rows reachable from
    /// the `Open_vSwitch` row.
    pub fn config(&self) -> SwitchConfig {
        let Some((uuid, root)) = self.root() else {
            return SwitchConfig::default();
        };
        let bridges = root
            .uuids("bridges")
            .into_iter()
            .filter_map(|u| Some(self.bridge_config(u, self.row("Bridge", u)?)))
            .collect();
        SwitchConfig {
            uuid,
            next_cfg: root.int("next_cfg").unwrap_or(0),
            cur_cfg: root.int("cur_cfg").unwrap_or(0),
            other_config: root.string_map("other_config"),
            external_ids: root.string_map("external_ids"),
            bridges: by_name(bridges, |b: &BridgeConfig| &b.name),
        }
    }

    fn bridge_config(&self, uuid: Uuid, r: &Row) -> BridgeConfig {
        let controllers = r
            .uuids("controller")
            .into_iter()
            .filter_map(|u| {
                let c = self.row("Controller", u)?;
                Some(ControllerConfig {
                    uuid: u,
                    target: c.str("target").into(),
                    inactivity_probe: c.int("inactivity_probe"),
                    max_backoff: c.int("max_backoff"),
                    connection_mode: c.opt_str("connection_mode").map(String::from),
                    other_config: c.string_map("other_config"),
                })
            })
            .collect();
        let ports = r
            .uuids("ports")
            .into_iter()
            .filter_map(|u| Some(self.port_config(u, self.row("Port", u)?)))
            .collect();
        BridgeConfig {
            uuid,
            name: r.str("name").into(),
            datapath_type: r.str("datapath_type").into(),
            fail_mode: r.opt_str("fail_mode").map(String::from),
            protocols: r.strs("protocols"),
            other_config: r.string_map("other_config"),
            external_ids: r.string_map("external_ids"),
            controllers: by_name(controllers, |c: &ControllerConfig| &c.target),
            ports: by_name(ports, |p: &PortConfig| &p.name),
        }
    }

    fn port_config(&self, uuid: Uuid, r: &Row) -> PortConfig {
        let interfaces = r
            .uuids("interfaces")
            .into_iter()
            .filter_map(|u| {
                let i = self.row("Interface", u)?;
                Some(InterfaceConfig {
                    uuid: u,
                    name: i.str("name").into(),
                    kind: i.str("type").into(),
                    options: i.string_map("options"),
                    ofport_request: i.int("ofport_request").map(|v| v as u16),
                    mtu_request: i.int("mtu_request").map(|v| v as u32),
                    mac: i.opt_str("mac").map(String::from),
                    other_config: i.string_map("other_config"),
                    external_ids: i.string_map("external_ids"),
                })
            })
            .collect();
        PortConfig {
            uuid,
            name: r.str("name").into(),
            tag: r.int("tag").map(|v| v as u16),
            trunks: r.ints("trunks").into_iter().map(|v| v as u16).collect(),
            vlan_mode: r.opt_str("vlan_mode").map(String::from),
            bond_mode: r.opt_str("bond_mode").map(String::from),
            other_config: r.string_map("other_config"),
            external_ids: r.string_map("external_ids"),
            interfaces: by_name(interfaces, |i: &InterfaceConfig| &i.name),
        }
    }

    /// The row of `table` whose `name` column is `name` (Bridge, Port,
    /// Interface, Mirror…).
    pub fn find_by_name(&self, table: &str, name: &str) -> Option<(Uuid, &Row)> {
        self.rows(table)
            .find(|(_, r)| r.opt_str("name") == Some(name))
    }
}

fn opt_str(v: Option<&str>) -> Datum {
    Datum::optional(v.map(|s| Atom::String(s.into())))
}

fn opt_int(v: Option<i64>) -> Datum {
    Datum::optional(v.map(Atom::Integer))
}

/// Status columns the daemon writes. Each call adds to this transaction;
/// commit it with `Db::commit(&txn, None)`. Ephemeral columns
/// (`mac_in_use`, `link_state`, `statistics`, `mtu`, `status`, controller
/// status…) are kept in memory only and do not move the generation.
impl Txn {
    /// `ofport` (-1 tells ovs-vsctl users the interface failed).
    pub fn set_ofport(&mut self, iface: Uuid, ofport: Option<i64>) -> &mut Self {
        self.update("Interface", iface, "ofport", opt_int(ofport))
    }

    pub fn set_mac_in_use(&mut self, iface: Uuid, mac: Option<&str>) -> &mut Self {
        self.update("Interface", iface, "mac_in_use", opt_str(mac))
    }

    /// `link_state`: `Some(true)` is "up", `Some(false)` "down".
    pub fn set_link_state(&mut self, iface: Uuid, up: Option<bool>) -> &mut Self {
        let s = up.map(|u| if u { "up" } else { "down" });
        self.update("Interface", iface, "link_state", opt_str(s))
    }

    pub fn set_admin_state(&mut self, iface: Uuid, up: Option<bool>) -> &mut Self {
        let s = up.map(|u| if u { "up" } else { "down" });
        self.update("Interface", iface, "admin_state", opt_str(s))
    }

    pub fn set_mtu(&mut self, iface: Uuid, mtu: Option<i64>) -> &mut Self {
        self.update("Interface", iface, "mtu", opt_int(mtu))
    }

    pub fn set_ifindex(&mut self, iface: Uuid, ifindex: Option<i64>) -> &mut Self {
        self.update("Interface", iface, "ifindex", opt_int(ifindex))
    }

    /// `statistics` (rx_packets, rx_bytes, tx_dropped, …).
    pub fn set_statistics<'a>(
        &mut self,
        iface: Uuid,
        stats: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> &mut Self {
        let m = stats
            .into_iter()
            .map(|(k, v)| (Atom::String(k.into()), Atom::Integer(v)))
            .collect();
        self.update("Interface", iface, "statistics", Datum::Map(m))
    }

    /// `error`: why the interface could not be set up, or `None`.
    pub fn set_iface_error(&mut self, iface: Uuid, error: Option<&str>) -> &mut Self {
        self.update("Interface", iface, "error", opt_str(error))
    }

    /// `status` (driver_name, …).
    pub fn set_iface_status<'a>(
        &mut self,
        iface: Uuid,
        status: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.update("Interface", iface, "status", Datum::string_map(status))
    }

    /// `cur_cfg`: the `next_cfg` the daemon has applied (ovs-vsctl waits on it).
    pub fn set_cur_cfg(&mut self, root: Uuid, cur_cfg: i64) -> &mut Self {
        self.update("Open_vSwitch", root, "cur_cfg", Datum::integer(cur_cfg))
    }

    pub fn set_dpdk_initialized(&mut self, root: Uuid, initialized: bool) -> &mut Self {
        self.update(
            "Open_vSwitch",
            root,
            "dpdk_initialized",
            Datum::boolean(initialized),
        )
    }

    /// `ovs_version`, `db_version`, `datapath_types`, `iface_types`…: any
    /// optional string column of `Open_vSwitch`.
    pub fn set_root_string(&mut self, root: Uuid, column: &str, value: Option<&str>) -> &mut Self {
        self.update("Open_vSwitch", root, column, opt_str(value))
    }

    /// Controller connection status (`is_connected`, `role`, `status`).
    pub fn set_controller_status<'a>(
        &mut self,
        controller: Uuid,
        is_connected: bool,
        role: Option<&str>,
        status: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.update(
            "Controller",
            controller,
            "is_connected",
            Datum::boolean(is_connected),
        )
        .update("Controller", controller, "role", opt_str(role))
        .update(
            "Controller",
            controller,
            "status",
            Datum::string_map(status),
        )
    }

    /// `datapath_id` of a bridge (16 hex digits), ephemeral.
    pub fn set_datapath_id(&mut self, bridge: Uuid, dpid: Option<&str>) -> &mut Self {
        self.update("Bridge", bridge, "datapath_id", opt_str(dpid))
    }
}
