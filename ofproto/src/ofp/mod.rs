//! The OpenFlow wire protocol, without I/O: a codec for OpenFlow 1.0 (with
//! the Nicira extensions `ovs-ofctl` uses: NXM matches, Nicira actions,
//! NXST_FLOW) and OpenFlow 1.3 (OXM), and a [`Session`] that runs one
//! connection's protocol against an [`Ofproto`](crate::Ofproto): version
//! negotiation, requests to calls and replies, asynchronous messages.
//!
//! Untrusted bytes are read through [`wire::Reader`]'s checked accessors;
//! every malformed message decodes to the error the specification asks the
//! switch to answer with.

pub mod action;
pub mod error;
pub mod match10;
pub mod msg;
pub mod nxm;
pub mod session;
pub mod wire;

pub use error::OfpErr;
pub use msg::{decode, encode, encode_all, Frame, Msg};
pub use session::{BridgeShared, ConnKind, PortInfo, Session, SessionEvents, SwitchView};

/// OpenFlow 1.0's version number.
pub const OFP10: u8 = 0x01;
/// OpenFlow 1.3's version number.
pub const OFP13: u8 = 0x04;
/// The versions fvs speaks, as a hello bitmap.
pub const SUPPORTED: u32 = 1 << OFP10 | 1 << OFP13;

/// Bridge `protocols` names (`OpenFlow10`, …) as a version bitmap of what
/// fvs supports (empty: every supported version). Unknown names are
/// ignored; names of versions fvs lacks select nothing.
pub fn versions_from_names<S: AsRef<str>>(names: &[S]) -> u32 {
    if names.is_empty() {
        return SUPPORTED;
    }
    let mut bits = 0;
    for n in names {
        let v = match n.as_ref() {
            "OpenFlow10" => 1,
            "OpenFlow11" => 2,
            "OpenFlow12" => 3,
            "OpenFlow13" => 4,
            "OpenFlow14" => 5,
            "OpenFlow15" => 6,
            _ => continue,
        };
        bits |= 1 << v;
    }
    bits & SUPPORTED
}

/// `-O`/`--protocols` names for a client (`OpenFlow13`, `OpenFlow10,OpenFlow13`).
pub fn versions_from_option(s: &str) -> Result<u32, String> {
    let mut bits = 0;
    for n in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let v = match n {
            "OpenFlow10" | "OpenFlow10-table_id" => OFP10,
            "OpenFlow13" => OFP13,
            "OpenFlow11" | "OpenFlow12" | "OpenFlow14" | "OpenFlow15" | "OpenFlow16" => {
                return Err(format!("{n}: OpenFlow version not supported by fvs"))
            }
            _ => return Err(format!("{n}: unknown OpenFlow version")),
        };
        bits |= 1 << v;
    }
    if bits == 0 {
        return Err(format!("{s}: no OpenFlow version"));
    }
    Ok(bits)
}

/// The highest version in both bitmaps.
pub fn negotiate(ours: u32, theirs: u32) -> Option<u8> {
    let common = ours & theirs;
    (0..32u8).rev().find(|v| common & (1 << v) != 0)
}

/// `ovs-ofctl`'s name of a version, as it prints it in message headers.
pub fn version_label(version: u8) -> &'static str {
    match version {
        OFP10 => "",
        2 => " (OF1.1)",
        3 => " (OF1.2)",
        OFP13 => " (OF1.3)",
        5 => " (OF1.4)",
        6 => " (OF1.5)",
        _ => " (OF?)",
    }
}
