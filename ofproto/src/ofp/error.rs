//! OpenFlow errors: one name per error, encoded as the (type, code) pair
//! of the negotiated version (OVS's `ofperr` table, reduced to the errors
//! fvs sends or decodes). An error that a version cannot express is sent
//! as OVS sends it: `NXBRC_UNENCODABLE_ERROR`.

use super::OFP10;

macro_rules! errors {
    ($( $id:ident : $name:literal, $v10:expr, $v13:expr ; )*) => {
        /// An OpenFlow error, independent of the version.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum OfpErr { $( $id, )* }

        static TABLE: &[(OfpErr, &str, Option<(u16, u16)>, Option<(u16, u16)>)] = &[
            $( (OfpErr::$id, $name, $v10, $v13), )*
        ];
    };
}

const fn c(t: u16, code: u16) -> Option<(u16, u16)> {
    Some((t, code))
}
const NONE: Option<(u16, u16)> = None;

errors! {
    HelloIncompatible: "OFPHFC_INCOMPATIBLE", c(0, 0), c(0, 0);
    HelloEperm: "OFPHFC_EPERM", c(0, 1), c(0, 1);
    BadVersion: "OFPBRC_BAD_VERSION", c(1, 0), c(1, 0);
    BadType: "OFPBRC_BAD_TYPE", c(1, 1), c(1, 1);
    BadStat: "OFPBRC_BAD_STAT", c(1, 2), c(1, 2);
    BadVendor: "OFPBRC_BAD_VENDOR", c(1, 3), c(1, 3);
    BadSubtype: "OFPBRC_BAD_SUBTYPE", c(1, 4), c(1, 4);
    BrcEperm: "OFPBRC_EPERM", c(1, 5), c(1, 5);
    BadLen: "OFPBRC_BAD_LEN", c(1, 6), c(1, 6);
    BufferEmpty: "OFPBRC_BUFFER_EMPTY", c(1, 7), c(1, 7);
    BufferUnknown: "OFPBRC_BUFFER_UNKNOWN", c(1, 8), c(1, 8);
    BrcBadTableId: "OFPBRC_BAD_TABLE_ID", c(1, 512), c(1, 9);
    IsSlave: "OFPBRC_IS_SLAVE", c(1, 5), c(1, 10);
    BrcBadPort: "OFPBRC_BAD_PORT", c(1, 514), c(1, 11);
    BadPacket: "OFPBRC_BAD_PACKET", NONE, c(1, 12);
    MultipartBufferOverflow: "OFPBRC_MULTIPART_BUFFER_OVERFLOW", NONE, c(1, 13);
    NxmInvalid: "NXBRC_NXM_INVALID", c(1, 256), NONE;
    Unencodable: "NXBRC_UNENCODABLE_ERROR", c(1, 521), NONE;
    BacBadType: "OFPBAC_BAD_TYPE", c(2, 0), c(2, 0);
    BacBadLen: "OFPBAC_BAD_LEN", c(2, 1), c(2, 1);
    BacBadVendor: "OFPBAC_BAD_VENDOR", c(2, 2), c(2, 2);
    BacBadVendorType: "OFPBAC_BAD_VENDOR_TYPE", c(2, 3), c(2, 3);
    BadOutPort: "OFPBAC_BAD_OUT_PORT", c(2, 4), c(2, 4);
    BadArgument: "OFPBAC_BAD_ARGUMENT", c(2, 5), c(2, 5);
    BacEperm: "OFPBAC_EPERM", c(2, 6), c(2, 6);
    TooMany: "OFPBAC_TOO_MANY", c(2, 7), c(2, 7);
    BadQueue: "OFPBAC_BAD_QUEUE", c(2, 8), c(2, 8);
    BadOutGroup: "OFPBAC_BAD_OUT_GROUP", NONE, c(2, 9);
    MatchInconsistent: "OFPBAC_MATCH_INCONSISTENT", c(1, 522), c(2, 10);
    UnsupportedOrder: "OFPBAC_UNSUPPORTED_ORDER", NONE, c(2, 11);
    BadTag: "OFPBAC_BAD_TAG", NONE, c(2, 12);
    BadSetType: "OFPBAC_BAD_SET_TYPE", c(1, 523), c(2, 13);
    BadSetLen: "OFPBAC_BAD_SET_LEN", c(1, 524), c(2, 14);
    BadSetArgument: "OFPBAC_BAD_SET_ARGUMENT", c(1, 525), c(2, 15);
    UnknownInst: "OFPBIC_UNKNOWN_INST", NONE, c(3, 0);
    UnsupInst: "OFPBIC_UNSUP_INST", c(2, 257), c(3, 1);
    BicBadTableId: "OFPBIC_BAD_TABLE_ID", NONE, c(3, 2);
    UnsupMetadata: "OFPBIC_UNSUP_METADATA", NONE, c(3, 3);
    UnsupMetadataMask: "OFPBIC_UNSUP_METADATA_MASK", NONE, c(3, 4);
    BicBadExperimenter: "OFPBIC_BAD_EXPERIMENTER", NONE, c(3, 5);
    BicBadExpType: "OFPBIC_BAD_EXP_TYPE", NONE, c(3, 6);
    BicBadLen: "OFPBIC_BAD_LEN", NONE, c(3, 7);
    BicEperm: "OFPBIC_EPERM", NONE, c(3, 8);
    BmcBadType: "OFPBMC_BAD_TYPE", NONE, c(4, 0);
    BmcBadLen: "OFPBMC_BAD_LEN", NONE, c(4, 1);
    BmcBadTag: "OFPBMC_BAD_TAG", NONE, c(4, 2);
    BadDlAddrMask: "OFPBMC_BAD_DL_ADDR_MASK", NONE, c(4, 3);
    BadNwAddrMask: "OFPBMC_BAD_NW_ADDR_MASK", NONE, c(4, 4);
    BadWildcards: "OFPBMC_BAD_WILDCARDS", c(1, 262), c(4, 5);
    BadField: "OFPBMC_BAD_FIELD", c(0, 263), c(4, 6);
    BadValue: "OFPBMC_BAD_VALUE", c(1, 258), c(4, 7);
    BadMask: "OFPBMC_BAD_MASK", c(1, 259), c(4, 8);
    BadPrereq: "OFPBMC_BAD_PREREQ", c(1, 260), c(4, 9);
    DupField: "OFPBMC_DUP_FIELD", c(1, 261), c(4, 10);
    BmcEperm: "OFPBMC_EPERM", NONE, c(4, 11);
    FmUnknown: "OFPFMFC_UNKNOWN", NONE, c(5, 0);
    TableFull: "OFPFMFC_TABLE_FULL", c(3, 0), c(5, 1);
    FmBadTableId: "OFPFMFC_BAD_TABLE_ID", NONE, c(5, 2);
    Overlap: "OFPFMFC_OVERLAP", c(3, 1), c(5, 3);
    FmEperm: "OFPFMFC_EPERM", c(3, 2), c(5, 4);
    BadTimeout: "OFPFMFC_BAD_TIMEOUT", NONE, c(5, 5);
    BadEmergTimeout: "OFPFMFC_BAD_EMERG_TIMEOUT", c(3, 3), NONE;
    BadCommand: "OFPFMFC_BAD_COMMAND", c(3, 4), c(5, 6);
    BadFlags: "OFPFMFC_BAD_FLAGS", c(3, 258), c(5, 7);
    FmUnsupported: "OFPFMFC_UNSUPPORTED", c(3, 5), NONE;
    NxBadTableId: "NXFMFC_BAD_TABLE_ID", c(3, 257), NONE;
    GroupExists: "OFPGMFC_GROUP_EXISTS", NONE, c(6, 0);
    InvalidGroup: "OFPGMFC_INVALID_GROUP", NONE, c(6, 1);
    WeightUnsupported: "OFPGMFC_WEIGHT_UNSUPPORTED", NONE, c(6, 2);
    OutOfGroups: "OFPGMFC_OUT_OF_GROUPS", NONE, c(6, 3);
    OutOfBuckets: "OFPGMFC_OUT_OF_BUCKETS", NONE, c(6, 4);
    ChainingUnsupported: "OFPGMFC_CHAINING_UNSUPPORTED", NONE, c(6, 5);
    WatchUnsupported: "OFPGMFC_WATCH_UNSUPPORTED", NONE, c(6, 6);
    GroupLoop: "OFPGMFC_LOOP", NONE, c(6, 7);
    UnknownGroup: "OFPGMFC_UNKNOWN_GROUP", NONE, c(6, 8);
    ChainedGroup: "OFPGMFC_CHAINED_GROUP", NONE, c(6, 9);
    GroupBadType: "OFPGMFC_BAD_TYPE", NONE, c(6, 10);
    GroupBadCommand: "OFPGMFC_BAD_COMMAND", NONE, c(6, 11);
    BadBucket: "OFPGMFC_BAD_BUCKET", NONE, c(6, 12);
    BadWatch: "OFPGMFC_BAD_WATCH", NONE, c(6, 13);
    GroupEperm: "OFPGMFC_EPERM", NONE, c(6, 14);
    PmBadPort: "OFPPMFC_BAD_PORT", c(4, 0), c(7, 0);
    BadHwAddr: "OFPPMFC_BAD_HW_ADDR", c(4, 1), c(7, 1);
    PmBadConfig: "OFPPMFC_BAD_CONFIG", NONE, c(7, 2);
    BadAdvertise: "OFPPMFC_BAD_ADVERTISE", NONE, c(7, 3);
    TmBadTable: "OFPTMFC_BAD_TABLE", NONE, c(8, 0);
    TmBadConfig: "OFPTMFC_BAD_CONFIG", NONE, c(8, 1);
    QofBadPort: "OFPQOFC_BAD_PORT", c(5, 0), c(9, 0);
    QofBadQueue: "OFPQOFC_BAD_QUEUE", c(5, 1), c(9, 1);
    ScBadFlags: "OFPSCFC_BAD_FLAGS", NONE, c(10, 0);
    ScBadLen: "OFPSCFC_BAD_LEN", NONE, c(10, 1);
    RoleStale: "OFPRRFC_STALE", NONE, c(11, 0);
    RoleUnsup: "OFPRRFC_UNSUP", NONE, c(11, 1);
    BadRole: "OFPRRFC_BAD_ROLE", c(1, 513), c(11, 2);
    MeterUnknown: "OFPMMFC_UNKNOWN", NONE, c(12, 0);
    TfBadTable: "OFPTFFC_BAD_TABLE", NONE, c(13, 0);
    TfBadArgument: "OFPTFFC_BAD_ARGUMENT", NONE, c(13, 4);
    TfEperm: "OFPTFFC_EPERM", NONE, c(13, 5);
}

impl OfpErr {
    /// OVS's name for the error (`OFPBRC_BAD_LEN`), as `ovs-ofctl` prints it.
    pub fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|e| e.0 == self)
            .map(|e| e.1)
            .unwrap_or("?")
    }

    /// The (type, code) of this error in `version` (`NXBRC_UNENCODABLE_ERROR`
    /// where that version has no code for it).
    pub fn code(self, version: u8) -> (u16, u16) {
        let Some(e) = TABLE.iter().find(|e| e.0 == self) else {
            return (1, 521);
        };
        let c = if version == OFP10 { e.2 } else { e.3 };
        c.unwrap_or(if version == OFP10 { (1, 521) } else { (1, 5) })
    }

    /// The error a (type, code) pair of `version` names, if fvs knows it.
    pub fn from_code(version: u8, t: u16, code: u16) -> Option<OfpErr> {
        TABLE
            .iter()
            .find(|e| {
                let c = if version == OFP10 { e.2 } else { e.3 };
                c == Some((t, code))
            })
            .map(|e| e.0)
    }

    /// `OFPET_*` name of an error type, for printing unknown codes.
    pub fn type_name(version: u8, t: u16) -> &'static str {
        let names13: &[&str] = &[
            "OFPET_HELLO_FAILED",
            "OFPET_BAD_REQUEST",
            "OFPET_BAD_ACTION",
            "OFPET_BAD_INSTRUCTION",
            "OFPET_BAD_MATCH",
            "OFPET_FLOW_MOD_FAILED",
            "OFPET_GROUP_MOD_FAILED",
            "OFPET_PORT_MOD_FAILED",
            "OFPET_TABLE_MOD_FAILED",
            "OFPET_QUEUE_OP_FAILED",
            "OFPET_SWITCH_CONFIG_FAILED",
            "OFPET_ROLE_REQUEST_FAILED",
            "OFPET_METER_MOD_FAILED",
            "OFPET_TABLE_FEATURES_FAILED",
        ];
        let names10: &[&str] = &[
            "OFPET_HELLO_FAILED",
            "OFPET_BAD_REQUEST",
            "OFPET_BAD_ACTION",
            "OFPET_FLOW_MOD_FAILED",
            "OFPET_PORT_MOD_FAILED",
            "OFPET_QUEUE_OP_FAILED",
        ];
        let names = if version == OFP10 { names10 } else { names13 };
        names.get(t as usize).copied().unwrap_or("OFPET_UNKNOWN")
    }
}

impl std::fmt::Display for OfpErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for OfpErr {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofp::OFP13;

    #[test]
    fn codes_round_trip() {
        for e in TABLE {
            for v in [OFP10, OFP13] {
                let (t, c) = e.0.code(v);
                let back = OfpErr::from_code(v, t, c).expect("known code");
                // Merged codes (OFPBRC_EPERM and IS_SLAVE in 1.0) decode to the first.
                assert_eq!(back.code(v), (t, c), "{}", e.1);
            }
        }
    }
}
