//! From the daemon back to the database: the transaction that reports what
//! the daemon did (ofport, MAC, link state, MTU, errors, statistics,
//! cur_cfg), holding only what changed, so that an idle daemon writes
//! nothing. (The configuration itself is read with `Data::config`.)

use std::collections::BTreeMap;

use fvs_datapath::netdev::NetdevStats;

use super::config::IfaceStatus;
use crate::db::value::{Atom, Datum};
use crate::db::{Data, Txn};

/// Interface statistics as OVS names them in Interface:statistics.
pub fn statistics_map(s: &NetdevStats) -> BTreeMap<String, i64> {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    BTreeMap::from([
        ("rx_packets".to_string(), i(s.rx_packets)),
        ("rx_bytes".to_string(), i(s.rx_bytes)),
        ("rx_dropped".to_string(), i(s.rx_dropped)),
        ("rx_errors".to_string(), i(s.rx_errors)),
        ("tx_packets".to_string(), i(s.tx_packets)),
        ("tx_bytes".to_string(), i(s.tx_bytes)),
        ("tx_dropped".to_string(), i(s.tx_dropped)),
        ("tx_errors".to_string(), i(s.tx_errors)),
    ])
}

fn opt_string(v: &Option<String>) -> Datum {
    Datum::optional(v.as_ref().map(|s| Atom::String(s.clone())))
}

fn opt_int(v: Option<i64>) -> Datum {
    Datum::optional(v.map(Atom::Integer))
}

fn int_map(m: &BTreeMap<String, i64>) -> Datum {
    Datum::Map(
        m.iter()
            .map(|(k, v)| (Atom::String(k.clone()), Atom::Integer(*v)))
            .collect(),
    )
}

/// The transaction that brings the status columns of `data` to what the
/// daemon reports (empty when they already say so). `stats` is `None`
/// when statistics are not due for an update.
pub fn status_txn(
    data: &Data,
    statuses: &BTreeMap<String, IfaceStatus>,
    stats: Option<&BTreeMap<String, NetdevStats>>,
    cur_cfg: Option<i64>,
) -> Txn {
    let mut txn = Txn::new();
    for (uuid, row) in data.rows("Interface") {
        let name = row.str("name");
        let Some(st) = statuses.get(name) else {
            continue;
        };
        let mut set = |column: &str, want: Datum| {
            if row.get(column) != Some(&want) {
                txn.update("Interface", uuid, column, want);
            }
        };
        set("ofport", opt_int(st.ofport));
        set("mac_in_use", opt_string(&st.mac_in_use));
        set("link_state", opt_string(&st.link_state));
        set(
            "admin_state",
            opt_string(&st.link_state.as_ref().map(|_| "up".to_string())),
        );
        set("mtu", opt_int(st.mtu.map(i64::from)));
        set("error", opt_string(&st.error));
        set("status", Datum::string_map(&st.status));
        if let Some(s) = stats.and_then(|m| m.get(name)) {
            let mut m = statistics_map(s);
            for (k, v) in &st.custom_stats {
                m.insert(k.clone(), i64::try_from(*v).unwrap_or(i64::MAX));
            }
            set("statistics", int_map(&m));
        }
    }
    if let (Some(cfg), Some((uuid, root))) = (cur_cfg, data.root()) {
        if root.int("cur_cfg") != Some(cfg) {
            txn.update("Open_vSwitch", uuid, "cur_cfg", Datum::integer(cfg));
        }
    }
    txn
}

/// Status columns of the root row (as ovs-vswitchd sets them): version,
/// supported datapath and interface types, whether DPDK is up.
pub fn root_status_txn(data: &Data, version: &str, hugepages: bool) -> Txn {
    let mut txn = Txn::new();
    let Some((uuid, root)) = data.root() else {
        return txn;
    };
    let mut set = |column: &str, want: Datum| {
        if root.get(column).is_some() && root.get(column) != Some(&want) {
            txn.update("Open_vSwitch", uuid, column, want);
        }
    };
    set("ovs_version", Datum::string(version));
    set("dpdk_initialized", Datum::boolean(hugepages));
    set(
        "datapath_types",
        Datum::set([Atom::String("netdev".into())]),
    );
    set(
        "iface_types",
        Datum::set(
            ["dpdk", "internal", "system", "tap"]
                .into_iter()
                .map(|s| Atom::String(s.into())),
        ),
    );
    txn
}
