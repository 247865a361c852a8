//! The configuration database: OVS's tables and columns (the embedded
//! `vswitch.ovsschema`), transactional and durable.
//!
//! # API
//!
//! ```text
//! Db::open(path) -> Result<Db, DbError>           creates the file (one Open_vSwitch row) if missing;
//! Db::open_with(path, DbOptions)                   … with compaction thresholds
//! db.data() -> &Data                               committed contents, ephemeral columns included
//! db.generation() -> u64                           == db.data().generation()
//! db.commit(&txn, expected_generation: Option<u64>) -> Result<Commit, DbError>
//!                                                  atomic and fsync'ed; DbError::Stale if the generation moved
//! db.compact() -> Result<(), DbError>              also automatic when the journal grows
//!
//! Data: Clone + Serialize + Deserialize (what the daemon sends to fvs-vsctl)
//!   data.generation(), data.rows(table), data.row(table, uuid), data.root(),
//!   data.apply(&txn) / data.applied(&txn) (the commit rules, in memory only),
//!   data.find_by_name(table, name), data.config() -> SwitchConfig (bridges → ports →
//!   interfaces with type/options/ofport_request/tag/trunks/vlan_mode/mtu_request, …)
//! Row: get(column) -> Option<&Datum>, str/opt_str/int/bool/ints/strs/uuids/string_map/int_map
//! Txn: Serialize + Deserialize; insert/update/delete ops, Txn::diff(old, new),
//!   status helpers set_ofport, set_mac_in_use, set_link_state, set_statistics,
//!   set_iface_error, set_cur_cfg, set_dpdk_initialized, set_controller_status, …
//! ```
//!
//! # Rules (OVSDB's)
//!
//! A transaction commits entirely or not at all. It fails, naming the
//! table, column and value, on an unknown table or column, a value outside
//! its column's type or constraints, a write to a read-only column (`name`),
//! a strong reference to a missing row, more rows than `maxRows`, or two
//! rows with the same index value (bridge, port and interface names). After
//! it, rows of non-root tables that no root row reaches through strong
//! references are deleted (so deleting a bridge's reference to a port
//! deletes the port and its interfaces), and weak references to deleted
//! rows vanish.
//!
//! Ephemeral columns (statistics, link_state, mac_in_use, controller
//! status…) live in memory only: a transaction that changes only them
//! writes nothing and leaves the generation alone, so the daemon can update
//! them often without making fvs-vsctl snapshots stale.
//!
//! The file format and its crash safety are described in `store.rs`.

mod config;
mod data;
mod error;
mod schema;
mod store;
pub mod value;

pub use config::{BridgeConfig, ControllerConfig, InterfaceConfig, PortConfig, SwitchConfig};
pub use data::{Changes, Data, Op, Row, Txn};
pub use error::DbError;
pub use schema::{schema, BaseType, ColumnSchema, Schema, TableSchema, Type};
pub use store::{check, crc32c, recover, CheckReport, Commit, Db, DbOptions, Recovery};
pub use value::{
    check_constraints, is_delim, json_string, parse_atom, parse_token, Atom, AtomicType, Datum,
    Symbol, Symtab, Uuid,
};
