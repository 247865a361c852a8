//! With real PMD threads: once a flow-mod returns, no packet is forwarded by
//! a decision it invalidated, while traffic keeps flowing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fvs_datapath::dpif::Datapath;
use fvs_datapath::netdev::{Netdev, NetdevError, NetdevStats, RxQueue, TxQueue};
use fvs_datapath::packet::Batch;
use fvs_datapath::packet::PacketPool;
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::actions::OfAction;
use fvs_ofproto::fields::FieldId;
use fvs_ofproto::flow_mod::{FlowMod, FlowModCommand};
use fvs_ofproto::{Ofproto, PortConfig};
use fvs_ports::memory::MemoryPort;

/// A port whose receive queue pauses before taking packets, widening the
/// window between a PMD's version check and its use of the caches: a flow-mod
/// that returned without waiting for the PMD would be caught in it.
struct SlowRx(Arc<MemoryPort>);

struct SlowRxq(Box<dyn RxQueue>);

impl RxQueue for SlowRxq {
    fn recv(&mut self, batch: &mut Batch) -> usize {
        std::thread::sleep(Duration::from_micros(300));
        self.0.recv(batch)
    }
}

impl Netdev for SlowRx {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &str {
        "slow-memory"
    }
    fn n_rxq(&self) -> usize {
        1
    }
    fn n_txq(&self) -> usize {
        1
    }
    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        Ok(Box::new(SlowRxq(self.0.open_rxq(q)?)))
    }
    fn open_txq(&self, q: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        self.0.open_txq(q)
    }
    fn stats(&self) -> NetdevStats {
        self.0.stats()
    }
}

fn rule(command: FlowModCommand, out: Option<u16>) -> FlowMod {
    let mut fm = FlowMod::new(command);
    fm.match_.set_exact(FieldId::InPort, 1);
    fm.actions = out
        .map(|p| OfAction::Output {
            port: p,
            max_len: 0,
        })
        .into_iter()
        .collect();
    fm
}

/// A UDP frame whose source port carries a sequence number.
fn frame(seq: u64) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1, 2);
    let mut v = Vec::new();
    b.write(&mut v, &seq.to_be_bytes()).unwrap();
    v
}

fn seq_of(frame: &[u8]) -> u64 {
    u64::from_be_bytes(frame[frame.len() - 8..].try_into().unwrap())
}

#[test]
fn no_stale_forwarding_after_a_flow_mod_returns() {
    let of = Ofproto::new();
    of.add_bridge("br0").unwrap();
    let config = PmdConfig {
        sleep_max_us: 200,
        emc_insert_inv_prob: 1,
        ..Default::default()
    };
    let dp = Arc::new(Datapath::new(of.clone(), &[None], config).unwrap());
    of.connect(&dp);
    const N_PORTS: usize = 20;
    let ports: Vec<Arc<MemoryPort>> = (1..=N_PORTS)
        .map(|i| MemoryPort::new(&format!("p{i}"), 1))
        .collect();
    for (i, p) in ports.iter().enumerate() {
        let n = i as u32 + 1;
        let dev: Arc<dyn Netdev> = if n == 1 {
            Arc::new(SlowRx(p.clone()))
        } else {
            p.clone()
        };
        dp.add_port(n, dev).unwrap();
        of.add_port(
            "br0",
            PortConfig {
                name: format!("p{n}"),
                odp_port: n,
                ofport_request: Some(n as u16),
                ..Default::default()
            },
        )
        .unwrap();
    }
    of.flow_mod("br0", &rule(FlowModCommand::Add, Some(N_PORTS as u16)))
        .unwrap();

    let pool = Arc::new(PacketPool::new(8192, false).unwrap());
    let injected = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (p1, pool, injected, stop) = (
            ports[0].clone(),
            pool.clone(),
            injected.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..16 {
                    seq += 1;
                    match pool.packet_from(&frame(seq)) {
                        Some(p) => p1.inject(0, p),
                        None => seq -= 1,
                    }
                    injected.store(seq, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };

    // Outputs are drained as they come, so the pool never runs dry.
    let stop_collecting = Arc::new(AtomicBool::new(false));
    let collector = {
        let (ports, stop) = (ports.clone(), stop_collecting.clone());
        std::thread::spawn(move || {
            let mut seen = vec![Vec::new(); N_PORTS];
            loop {
                let done = stop.load(Ordering::Relaxed);
                for (i, p) in ports.iter().enumerate() {
                    seen[i].extend(p.take_sent().iter().map(|p| seq_of(p.data())));
                }
                if done {
                    return seen;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    // Each phase sends to a port no other phase uses (or deletes the rule),
    // so a packet that followed an earlier phase's rule is recognisable. A
    // packet sent after a phase's flow-mod returned may follow that phase's
    // rule or a later one (if it was still queued), never an earlier one.
    let phases: Vec<(FlowModCommand, Option<u16>)> = (1..=16u16)
        .map(|j| match j % 4 {
            3 => (FlowModCommand::Delete, None),
            0 => (FlowModCommand::Add, Some(j + 1)),
            _ => (FlowModCommand::Modify, Some(j + 1)),
        })
        .collect();
    let mut boundaries = Vec::new();
    for (cmd, out) in phases {
        std::thread::sleep(Duration::from_millis(40));
        of.flow_mod("br0", &rule(cmd, out)).unwrap();
        boundaries.push((injected.load(Ordering::SeqCst), out));
    }
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ports[0].pending() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(20));
    stop_collecting.store(true, Ordering::Relaxed);
    let seen = collector.join().unwrap();
    let total = injected.load(Ordering::SeqCst);
    assert!(total > 1000, "too little traffic to mean anything: {total}");
    let allowed = |seq: u64| -> Option<Vec<Option<u16>>> {
        let k = boundaries.iter().rposition(|(b, _)| seq > *b)?;
        Some(boundaries[k..].iter().map(|(_, out)| *out).collect())
    };
    let mut checked = 0;
    for (i, seqs) in seen.iter().enumerate() {
        for &s in seqs {
            if let Some(ok) = allowed(s) {
                let port = Some(i as u16 + 1);
                assert!(ok.contains(&port), "packet {s} went to port {} but only {ok:?} were in effect since it was sent (boundaries {boundaries:?})", i + 1);
                checked += 1;
            }
        }
    }
    assert!(
        checked > 500,
        "only {checked} packets after the first boundary; seen {:?} counters {:?} pending {}",
        seen.iter().map(|s| s.len()).collect::<Vec<_>>(),
        dp.pmd_counters(),
        ports[0].pending()
    );
    let c = dp.pmd_counters();
    assert!(c[0].revalidated_out >= 3, "{:?}", c[0]);
}
