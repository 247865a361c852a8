//! fvs control plane: OpenFlow tables and their classifier, flow syntax,
//! translation of packets into datapath actions, MAC learning and
//! revalidation of the datapath's caches.

pub mod actions;
pub mod bridge;
pub mod classifier;
pub mod fdb;
pub mod fields;
pub mod flow;
pub mod flow_mod;
pub mod group;
pub mod ofp;
pub mod ofproto;
pub mod rule;
pub mod syntax;
pub mod trace;
pub mod tunnel;
pub mod xlate;

pub use ofproto::{Ofproto, PortConfig};
