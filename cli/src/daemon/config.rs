//! The switch-wide knobs the daemon reads from `Open_vSwitch other_config`,
//! and the status it reports back for each interface.

use std::collections::BTreeMap;

use fvs_datapath::dpcls::MAX_FLOWS_PER_PMD;
use fvs_datapath::pmd::PmdConfig;

/// What the daemon reports for an interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IfaceStatus {
    pub ofport: Option<i64>,
    pub mac_in_use: Option<String>,
    pub link_state: Option<String>,
    pub mtu: Option<u32>,
    pub error: Option<String>,
    /// `Interface:status`: the driver's own state (mode, socket, …).
    pub status: BTreeMap<String, String>,
    /// The driver's own counters, added to `Interface:statistics`.
    pub custom_stats: BTreeMap<String, u64>,
}

/// The knobs of Open_vSwitch other_config the daemon honours (unknown keys
/// are stored and ignored, as OVS does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalCfg {
    /// `dpdk-init`: `true`/`try` give a hugepage-backed packet pool.
    pub dpdk_init: DpdkInit,
    /// `dpdk-socket-mem` in MB (the pool's size).
    pub socket_mem_mb: usize,
    /// `pmd-cpu-mask`: the cores of the PMD threads (`None`: one unpinned thread).
    pub pmd_cores: Option<Vec<usize>>,
    /// `dpdk-lcore-mask`: cores for the daemon's other threads.
    pub lcore_cores: Option<Vec<usize>>,
    pub pmd: PmdConfig,
    /// `pmd-rxq-assign`: `roundrobin` or `cycles` (default) or `group`.
    pub rxq_assign: String,
    /// `vhost-sock-dir`: where `dpdkvhostuser` sockets go (relative to the
    /// run directory; empty: the run directory itself).
    pub vhost_sock_dir: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpdkInit {
    No,
    Try,
    Yes,
}

/// Parses a CPU mask (`0x6`, `6`) into core numbers.
pub fn parse_cpu_mask(s: &str) -> Result<Vec<usize>, String> {
    let hex = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("invalid CPU mask \"{s}\""));
    }
    let mut cores = Vec::new();
    for (i, c) in hex.chars().rev().enumerate() {
        let nibble = c.to_digit(16).unwrap_or(0);
        for b in 0..4 {
            if nibble & (1 << b) != 0 {
                cores.push(i * 4 + b);
            }
        }
    }
    Ok(cores)
}

impl GlobalCfg {
    /// Reads the honoured keys; a bad value is reported and its default kept.
    pub fn from_other_config(oc: &BTreeMap<String, String>) -> (GlobalCfg, Vec<String>) {
        let mut errors = Vec::new();
        let mut pmd = PmdConfig::default();
        let num = |k: &str, errors: &mut Vec<String>| -> Option<u64> {
            let v = oc.get(k)?;
            match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.push(format!("other_config:{k}: \"{v}\" is not a number"));
                    None
                }
            }
        };
        if let Some(n) = num("emc-insert-inv-prob", &mut errors) {
            pmd.emc_insert_inv_prob = n.min(u32::MAX as u64) as u32;
        }
        if let Some(n) = num("pmd-sleep-max", &mut errors) {
            pmd.sleep_max_us = n.min(10_000);
        }
        // OVS's max-idle has a minimum of 500 ms.
        if let Some(n) = num("max-idle", &mut errors) {
            pmd.max_idle_ms = n.max(500);
        }
        if let Some(n) = num("upcall-rate", &mut errors) {
            pmd.upcall_rate = n.min(u32::MAX as u64) as u32;
        }
        if let Some(n) = num("upcall-burst", &mut errors) {
            pmd.upcall_burst = n.clamp(1, u32::MAX as u64) as u32;
        }
        let flow_limit = num("flow-limit", &mut errors);
        let socket_mem_mb = oc
            .get("dpdk-socket-mem")
            .map(|v| {
                // "1024" or per-NUMA "1024,1024": the sum.
                v.split(',')
                    .filter_map(|x| x.trim().parse::<usize>().ok())
                    .sum::<usize>()
            })
            .filter(|&mb| mb > 0)
            .unwrap_or(256);
        let mask = |k: &str, errors: &mut Vec<String>| {
            oc.get(k).and_then(|v| match parse_cpu_mask(v) {
                Ok(c) if !c.is_empty() => Some(c),
                Ok(_) => None,
                Err(e) => {
                    errors.push(format!("other_config:{k}: {e}"));
                    None
                }
            })
        };
        let dpdk_init = match oc.get("dpdk-init").map(String::as_str) {
            Some("true") => DpdkInit::Yes,
            Some("try") => DpdkInit::Try,
            _ => DpdkInit::No,
        };
        let pmd_cores = mask("pmd-cpu-mask", &mut errors);
        if let Some(limit) = flow_limit {
            // flow-limit counts the whole datapath's megaflows: each PMD
            // thread gets its share.
            let n_pmds = pmd_cores.as_ref().map_or(1, Vec::len).max(1) as u64;
            pmd.max_flows = (limit / n_pmds).clamp(1, MAX_FLOWS_PER_PMD as u64) as usize;
        }
        let cfg = GlobalCfg {
            dpdk_init,
            socket_mem_mb,
            pmd_cores,
            lcore_cores: mask("dpdk-lcore-mask", &mut errors),
            pmd,
            rxq_assign: oc
                .get("pmd-rxq-assign")
                .cloned()
                .unwrap_or_else(|| "cycles".into()),
            vhost_sock_dir: oc.get("vhost-sock-dir").cloned().unwrap_or_default(),
        };
        (cfg, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_masks() {
        assert_eq!(parse_cpu_mask("0x6").unwrap(), vec![1, 2]);
        assert_eq!(parse_cpu_mask("1").unwrap(), vec![0]);
        assert_eq!(parse_cpu_mask("0x10").unwrap(), vec![4]);
        assert!(parse_cpu_mask("0xz").is_err());
        let oc: BTreeMap<String, String> = [
            ("pmd-cpu-mask", "0x2"),
            ("pmd-sleep-max", "500"),
            ("emc-insert-inv-prob", "x"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let (g, errs) = GlobalCfg::from_other_config(&oc);
        assert_eq!(g.pmd_cores, Some(vec![1]));
        assert_eq!(g.pmd.sleep_max_us, 500);
        assert_eq!(
            errs,
            vec!["other_config:emc-insert-inv-prob: \"x\" is not a number"]
        );
    }

    #[test]
    fn flow_limit_max_idle_and_upcall_rate() {
        let cfg = |kv: &[(&str, &str)]| {
            let oc: BTreeMap<String, String> = kv
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            GlobalCfg::from_other_config(&oc)
        };
        let (g, _) = cfg(&[]);
        assert_eq!(g.pmd, PmdConfig::default());
        let (g, errs) = cfg(&[
            ("flow-limit", "1000"),
            ("pmd-cpu-mask", "0x6"),
            ("max-idle", "100"),
            ("upcall-rate", "2000"),
            ("upcall-burst", "0"),
        ]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(g.pmd.max_flows, 500, "shared by two PMD threads");
        assert_eq!(g.pmd.max_idle_ms, 500, "OVS's minimum");
        assert_eq!((g.pmd.upcall_rate, g.pmd.upcall_burst), (2000, 1));
        let (g, _) = cfg(&[("flow-limit", "200000")]);
        assert_eq!(
            g.pmd.max_flows, 200000,
            "one thread holds OVS's default whole"
        );
        let (g, _) = cfg(&[("flow-limit", "100000000")]);
        assert_eq!(g.pmd.max_flows, MAX_FLOWS_PER_PMD, "per-thread cap");
        let (_, errs) = cfg(&[("upcall-rate", "fast")]);
        assert_eq!(
            errs,
            vec!["other_config:upcall-rate: \"fast\" is not a number"]
        );
    }
}
