//! OpenFlow flow syntax exactly as `ovs-ofctl` (Open vSwitch 3.1) reads and
//! prints it: matches, actions, flow-mod lines (`add-flow`, `mod-flows`,
//! `del-flows`, `add-flows` files), `dump-flows` filters and `dump-flows`
//! output lines.
//!
//! Parsing follows OVS's parser item by item (lib/ofp-flow.c,
//! lib/ofp-actions.c, lib/meta-flow.c); printing follows `match_format()`,
//! `ofpacts_format()`, `ofputil_flow_mod_format()` and
//! `ofputil_flow_stats_format()`. Actions print as OVS prints what it
//! parsed (before any OpenFlow-version translation), so `pop_vlan` stays
//! `pop_vlan` and `goto_table:1` stays `goto_table:1`.
//!
//! Where OVS silently accepts nonsense, fvs refuses it: out-of-range values
//! that OVS truncates (`nw_dst=10.0.0.300` is 10.0.0.44 to OVS, `dl_vlan=4096`
//! is 0, `nw_tos=5` is 4) and junk OVS reads as 0 (`dec_ttl(x)`,
//! `tp_src=0x`). Values are stored masked, in matches as in `set_field`.

mod action;
mod error;
mod field;
mod flow_mod;
mod group;
mod lex;
mod matching;
mod port;
mod value;

pub use action::{check_actions, format_actions, format_actions_with, parse_actions};
pub use error::ParseError;
pub use field::normalize_match;
pub use flow_mod::{
    flow_stats_to_flow_mod, format_duration, format_flow_mod, format_flow_mod_line,
    format_flow_stats, format_flow_stats_with, parse_flow_filter, parse_flow_mod,
    parse_flow_mod_line, parse_flow_mods, parse_flow_stats, FlowFilter,
};
pub use group::{format_group, parse_group_mod};
pub use matching::{format_match, format_match_with, parse_match};
pub use port::{PortMap, PortNames};

// Pieces other modules of this crate parse and print with (`ofproto/trace`).
pub(crate) use field::{field_by_name, fmt_subfield, fmt_value, mf_name, parse_value, prereq_met};
pub(crate) use lex::key_values;
pub(crate) use matching::protocol;
pub(crate) use value::{hex, parse_field_int, NumErr};
