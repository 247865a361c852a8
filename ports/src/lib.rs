//! fvs netdev drivers. Each driver implements
//! [`fvs_datapath::netdev::Netdev`]; nearly all `unsafe` of the project
//! lives here, each block with a SAFETY comment.

pub mod memory;
