//! `fvs-appctl` commands: the daemon's runtime views and knobs, with
//! ovs-appctl's names and output (OVS 3.1, netdev datapath).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fvs_datapath::pmd::{cycles, now_ms, PmdCounters, PmdLoad};

use super::Daemon;
use crate::unixctl::Server;

pub const VERSION: &str = concat!("fvs-vswitchd (Ferrous vSwitch) ", env!("CARGO_PKG_VERSION"));

/// The TSC's rate, measured once (cycle counts are shown in time units).
fn tsc_hz() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        let (t0, c0) = (Instant::now(), cycles());
        std::thread::sleep(Duration::from_millis(20));
        let (dt, dc) = (t0.elapsed().as_secs_f64(), cycles().wrapping_sub(c0));
        if dt > 0.0 && dc > 0 {
            dc as f64 / dt
        } else {
            1e9
        }
    })
}

/// `pmd thread numa_id 0 core_id N:`: the pinned core, or the thread's
/// index when it is not pinned.
fn pmd_header(cores: &[Option<usize>], i: usize) -> String {
    let core = cores.get(i).copied().flatten().unwrap_or(i);
    format!("pmd thread numa_id 0 core_id {core}:")
}

/// PMD indices in the order OVS lists them (by core id).
fn pmd_order(cores: &[Option<usize>]) -> Vec<usize> {
    let mut v: Vec<usize> = (0..cores.len()).collect();
    v.sort_by_key(|&i| cores[i].unwrap_or(i));
    v
}

/// Parses the `[-pmd CORE] [DP]` arguments of the pmd-* commands.
fn pmd_filter(args: &[String]) -> Result<Option<usize>, String> {
    let mut it = args.iter();
    let mut core = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "-pmd" => {
                let v = it.next().ok_or("-pmd requires a core id")?;
                core = Some(
                    v.parse::<usize>()
                        .map_err(|_| format!("invalid pmd core id \"{v}\""))?,
                );
            }
            "netdev@ovs-netdev" | "ovs-netdev" => {}
            other if other.starts_with('-') => return Err(format!("unknown option \"{other}\"")),
            other => return Err(format!("invalid datapath \"{other}\"")),
        }
    }
    Ok(core)
}

fn selected(cores: &[Option<usize>], i: usize, filter: Option<usize>) -> bool {
    filter.is_none_or(|c| cores.get(i).copied().flatten().unwrap_or(i) == c)
}

pub fn pmd_stats_show(d: &Daemon, args: &[String]) -> Result<String, String> {
    let filter = pmd_filter(args)?;
    let dp = d.datapath();
    let cores = dp.pmd_cores().to_vec();
    let counters = dp.pmd_counters();
    let mut out = String::new();
    for i in pmd_order(&cores) {
        if selected(&cores, i, filter) {
            out += &counters[i].format(&pmd_header(&cores, i));
        }
    }
    Ok(out)
}

pub fn pmd_rxq_show(d: &Daemon, args: &[String]) -> Result<String, String> {
    let filter = pmd_filter(args)?;
    let dp = d.datapath();
    let cores = dp.pmd_cores().to_vec();
    let loads: Vec<PmdLoad> = dp.pmd_loads();
    let names: std::collections::BTreeMap<u32, String> = dp
        .ports()
        .into_iter()
        .map(|(n, nd)| (n, nd.name().to_string()))
        .collect();
    let mut out = String::from("Displaying last 60 seconds pmd usage %\n");
    for i in pmd_order(&cores) {
        if !selected(&cores, i, filter) {
            continue;
        }
        let load = &loads[i];
        out += &format!("{}\n  isolated : false\n", pmd_header(&cores, i));
        let mut rxqs = load.rxqs.clone();
        rxqs.sort_by(|a, b| {
            let (na, nb) = (names.get(&a.port), names.get(&b.port));
            na.cmp(&nb).then(a.qid.cmp(&b.qid))
        });
        let total = load.total_cycles;
        let mut rxq_sum = 0u64;
        for r in &rxqs {
            rxq_sum += r.cycles;
            let name = names.get(&r.port).map(String::as_str).unwrap_or("?");
            // OVS's width: "(enabled) " and "(disabled)" line up.
            let state = if r.enabled {
                "(enabled) "
            } else {
                "(disabled)"
            };
            out += &format!(
                "  port: {name:<16}  queue-id: {:>2} {state}  pmd usage: ",
                r.qid
            );
            out += &percent_or_not_avail(r.cycles, total);
        }
        if !rxqs.is_empty() {
            out += "  overhead: ";
            let overhead = load.busy_cycles.saturating_sub(rxq_sum).min(total);
            out += &percent_or_not_avail(overhead, total);
        }
    }
    Ok(out)
}

/// `part` as a whole percentage of `total` (`NOT AVAIL` before the first
/// measured interval), as pmd-rxq-show prints it.
fn percent_or_not_avail(part: u64, total: u64) -> String {
    match (part.saturating_mul(100)).checked_div(total) {
        Some(p) => format!("{p:>2} %\n"),
        None => "NOT AVAIL\n".into(),
    }
}

/// One PMD's `pmd-perf-show` block (OVS's overall statistics).
fn perf_block(c: &PmdCounters, header: &str, duration: f64, hz: f64) -> String {
    let us_per_cycle = 1e6 / hz;
    let tot_cycles = c.idle_cycles + c.busy_cycles;
    let tot_iter = c.iterations;
    let busy_iter = c.busy_iterations;
    let idle_iter = tot_iter.saturating_sub(busy_iter);
    let pct = |a: f64, b: f64| if b == 0.0 { 0.0 } else { 100.0 * a / b };
    let mut s = format!(
        "\nTime: {}\nMeasurement duration: {duration:.3} s\n\n{header}\n\n",
        super::vlog::timestamp(std::time::SystemTime::now())
            .get(11..23)
            .unwrap_or("00:00:00.000")
    );
    if duration == 0.0 {
        return s;
    }
    s += &format!(
        "  Iterations:        {tot_iter:>12}  ({:.2} us/it)\n  - Used TSC cycles: {tot_cycles:>12}  ({:>5.1} % of total cycles)\n  - idle iterations: {idle_iter:>12}  ({:>5.1} % of used cycles)\n  - busy iterations: {busy_iter:>12}  ({:>5.1} % of used cycles)\n",
        if tot_iter == 0 { 0.0 } else { tot_cycles as f64 * us_per_cycle / tot_iter as f64 },
        100.0 * (tot_cycles as f64 / duration) / hz,
        pct(c.idle_cycles as f64, tot_cycles as f64),
        pct(c.busy_cycles as f64, tot_cycles as f64),
    );
    let rx = c.packets;
    if rx > 0 {
        let passes = rx as f64;
        let upcalls = c.misses();
        s += &format!(
            "  Rx packets:        {rx:>12}  ({:.0} Kpps, {:.0} cycles/pkt)\n  Datapath passes:   {rx:>12}  ({:.2} passes/pkt)\n  - Simple Match hits:{:>12}  ({:>5.1} %)\n  - EMC hits:        {:>12}  ({:>5.1} %)\n  - SMC hits:        {:>12}  ({:>5.1} %)\n  - Megaflow hits:   {:>12}  ({:>5.1} %, {:.2} subtbl lookups/hit)\n  - Upcalls:         {upcalls:>12}  ({:>5.1} %, {:.1} us/upcall)\n  - Lost upcalls:    {:>12}  ({:>5.1} %)\n",
            rx as f64 / duration / 1000.0,
            c.busy_cycles as f64 / rx as f64,
            1.0,
            c.simple_hits,
            pct(c.simple_hits as f64, passes),
            c.emc_hits,
            pct(c.emc_hits as f64, passes),
            0,
            0.0,
            c.megaflow_hits,
            pct(c.megaflow_hits as f64, passes),
            c.avg_subtable_lookups(),
            pct(upcalls as f64, passes),
            if upcalls == 0 { 0.0 } else { c.upcall_cycles as f64 * us_per_cycle / upcalls as f64 },
            c.upcalls_failed,
            pct(c.upcalls_failed as f64, passes),
        );
    } else {
        s += &format!("  Rx packets:        {:>12}\n", 0);
    }
    if c.tx_packets > 0 {
        s += &format!(
            "  Tx packets:        {:>12}  ({:.0} Kpps)\n  Tx batches:        {:>12}  ({:.2} pkts/batch)\n",
            c.tx_packets,
            c.tx_packets as f64 / duration / 1000.0,
            c.tx_batches,
            if c.tx_batches == 0 { 0.0 } else { c.tx_packets as f64 / c.tx_batches as f64 },
        );
    } else {
        s += &format!("  Tx packets:        {:>12}\n\n", 0);
    }
    s
}

pub fn pmd_perf_show(d: &Daemon, args: &[String]) -> Result<String, String> {
    // OVS's histogram and history options need pmd-perf-metrics; accepted, not shown.
    let rest: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a.as_str(), "-nh" | "-it" | "-ms"))
        .cloned()
        .collect();
    let filter = pmd_filter(&rest).or_else(|_| pmd_filter(&[]))?;
    let dp = d.datapath();
    let cores = dp.pmd_cores().to_vec();
    let counters = dp.pmd_counters();
    let since = dp.pmd_stats_since_ms();
    let hz = tsc_hz();
    let now = now_ms();
    let mut out = String::new();
    for i in pmd_order(&cores) {
        if selected(&cores, i, filter) {
            let duration = now.saturating_sub(since[i]) as f64 / 1000.0;
            out += &perf_block(&counters[i], &pmd_header(&cores, i), duration, hz);
        }
    }
    Ok(out)
}

pub fn dpctl_dump_flows(d: &Daemon, args: &[String]) -> Result<String, String> {
    for a in args {
        match a.as_str() {
            "-m" | "--more" | "netdev@ovs-netdev" | "ovs-netdev" => {}
            other => return Err(format!("invalid argument \"{other}\"")),
        }
    }
    let dp = d.datapath();
    let cores = dp.pmd_cores().to_vec();
    let mut flows = dp.dump_flows();
    flows.sort_by_key(|f| cores.get(f.pmd).copied().flatten().unwrap_or(f.pmd));
    let now = now_ms();
    let mut out = String::new();
    let mut last = None;
    for f in &flows {
        if last != Some(f.pmd) {
            let core = cores.get(f.pmd).copied().flatten().unwrap_or(f.pmd);
            out += &format!("flow-dump from pmd on cpu core: {core}\n");
            last = Some(f.pmd);
        }
        out += &fvs_datapath::odp::format_flow_dump_line(
            &f.key,
            &f.mask,
            &f.actions,
            &f.counters,
            now,
        );
        out.push('\n');
    }
    Ok(out)
}

fn format_mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

pub fn fdb_show(d: &Daemon, args: &[String]) -> Result<String, String> {
    let [bridge] = args else {
        return Err("\"fdb/show\" command requires 1 argument".into());
    };
    let rows =
        d.of.fdb_entries(bridge)
            .map_err(|_| "no such bridge".to_string())?;
    let mut rows = rows;
    rows.sort_by_key(|r| (r.port, r.vlan, r.mac));
    let mut out = String::from(" port  VLAN  MAC                Age\n");
    for r in rows {
        let port = if r.port == fvs_ofproto::actions::port::LOCAL {
            "LOCAL".to_string()
        } else {
            r.port.to_string()
        };
        out += &format!(
            "{port:>5}  {:>4}  {}  {:>3}\n",
            r.vlan,
            format_mac(r.mac),
            r.age_secs
        );
    }
    Ok(out)
}

pub fn fdb_flush(d: &Daemon, args: &[String]) -> Result<String, String> {
    let bridges = match args {
        [] => d.of.bridge_names(),
        [b] => vec![b.clone()],
        _ => return Err("\"fdb/flush\" command takes at most 1 argument".into()),
    };
    for b in &bridges {
        d.of.fdb_flush(b)
            .map_err(|_| "no such bridge".to_string())?;
    }
    Ok("table successfully flushed\n".into())
}

/// Registers every appctl command of the daemon on `server`.
pub fn register(server: &Arc<Server>, d: &Arc<Daemon>) {
    let text = |name: &str, f: fn(&Daemon, &[String]) -> Result<String, String>| {
        let d = d.clone();
        server.register_text(name, move |args| f(&d, args));
    };
    text("dpif-netdev/pmd-stats-show", pmd_stats_show);
    text("dpif-netdev/pmd-rxq-show", pmd_rxq_show);
    text("dpif-netdev/pmd-perf-show", pmd_perf_show);
    text("dpctl/dump-flows", dpctl_dump_flows);
    text("fdb/show", fdb_show);
    super::tunnel::register(server, d);
    text("fdb/flush", fdb_flush);
    text("dpif-netdev/pmd-stats-clear", |d, args| {
        pmd_filter(args)?;
        d.datapath().clear_stats();
        Ok(String::new())
    });
    text("dpif-netdev/pmd-rxq-rebalance", |d, _| {
        let moves = d.datapath().rebalance();
        for m in &moves {
            d.log.info(
                "dpif_netdev",
                &format!(
                    "port {} queue {}: moved from pmd {} to pmd {}",
                    m.port_name, m.queue, m.from, m.to
                ),
            );
        }
        Ok("pmd rxq rebalance requested.\n".into())
    });
    text("dpctl/del-flows", |d, _| {
        d.datapath().flush_flows();
        Ok(String::new())
    });
    text("ofproto/trace", |d, args| {
        let (bridge, flow) = match args {
            [b, f] => (b.as_str(), f.as_str()),
            [f] if d.of.bridge_names().len() == 1 => {
                let names = d.of.bridge_names();
                return super::trace(d, &names[0], f);
            }
            _ => return Err("Must specify bridge name".into()),
        };
        super::trace(d, bridge, flow)
    });
    text("version", |_, _| Ok(format!("{VERSION}\n")));
    text("vlog/set", |d, args| {
        for a in args {
            d.log.set(a)?;
        }
        Ok(String::new())
    });
    text("vlog/list", |d, _| Ok(d.log.list()));
    text("vlog/reopen", |d, _| {
        d.log
            .reopen()
            .map(|_| String::new())
            .map_err(|e| e.to_string())
    });
    text("exit", |d, args| {
        let cleanup = match args {
            [] => false,
            [c] if c == "--cleanup" => true,
            _ => return Err("\"exit\" command takes at most 1 argument (--cleanup)".into()),
        };
        d.cleanup_on_exit.store(cleanup, Ordering::Relaxed);
        d.exit.store(true, Ordering::Relaxed);
        Ok(String::new())
    });
    let weak = Arc::downgrade(server);
    server.register_text("list-commands", move |_| {
        let methods = weak.upgrade().map(|s| s.methods()).unwrap_or_default();
        Ok(format!(
            "The available commands are:\n{}",
            methods
                .iter()
                .map(|m| format!("  {m}\n"))
                .collect::<String>()
        ))
    });
}
