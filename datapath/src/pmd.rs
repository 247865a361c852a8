//! Poll-mode driver threads. A PMD owns its rx queues, its EMC, its
//! megaflows, its output batches and its counters; per packet it takes no
//! lock, allocates nothing and makes no syscall.
//!
//! Per batch: extract keys and hashes, look each up in the EMC, then in the
//! megaflow classifier, then upcall; group packets by megaflow (keeping each
//! flow's order) and run each group's actions once; send output batches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actions::{self, DpAction};
use crate::dpcls::{FlowCounters, Megaflows, DEFAULT_MAX_FLOWS};
use crate::emc::{Emc, EmcGate, DEFAULT_EMC_ENTRIES, DEFAULT_INSERT_INV_PROB};
use crate::extract::{
    emc_signature, extract_arrived, key_of_sig, kind_shape, ExtractStats, KIND_COMPACT, KIND_FULL,
    KIND_SIG, KIND_STALE,
};
use crate::key::{ofs, FlowKey, HOT_WORDS};
use crate::limit::{TokenBucket, DEFAULT_UPCALL_BURST, DEFAULT_UPCALL_RATE};
use crate::netdev::{RxQueue, TxQueue};
use crate::packet::{Batch, Packet, BATCH_SIZE};
use crate::tunnel;
use crate::upcall::Upcall;

/// Tunables of a PMD thread (OVS's `other_config` names in comments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmdConfig {
    pub emc_entries: usize,
    /// `emc-insert-inv-prob`: insert one EMC miss in N (0 disables the EMC).
    pub emc_insert_inv_prob: u32,
    /// Megaflow limit per thread.
    pub max_flows: usize,
    /// `pmd-sleep-max` (µs): longest sleep per idle iteration (0: busy-poll).
    pub sleep_max_us: u64,
    /// OVS's "simple match": when all of a port's traffic takes one
    /// megaflow that matches nothing but the input port and only outputs,
    /// its batches skip extraction and lookups.
    pub simple_match: bool,
    /// `max-idle` (ms): megaflows unused this long are removed (0: never).
    pub max_idle_ms: u64,
    /// `upcall-rate` (per second) and `upcall-burst`: each rx queue's
    /// token bucket for upcalls; a miss over it is dropped and counted
    /// (rate 0: unlimited).
    pub upcall_rate: u32,
    pub upcall_burst: u32,
}

impl Default for PmdConfig {
    fn default() -> Self {
        PmdConfig {
            emc_entries: DEFAULT_EMC_ENTRIES,
            emc_insert_inv_prob: DEFAULT_INSERT_INV_PROB,
            max_flows: DEFAULT_MAX_FLOWS,
            sleep_max_us: 0,
            simple_match: true,
            max_idle_ms: DEFAULT_MAX_IDLE_MS,
            upcall_rate: DEFAULT_UPCALL_RATE,
            upcall_burst: DEFAULT_UPCALL_BURST,
        }
    }
}

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Counters of one PMD thread (`pmd-stats-show`).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct PmdCounters { $( $(#[$doc])* pub $name: u64, )* }

        /// The counters as other threads read them (written only by the PMD).
        #[derive(Default)]
        struct SharedCounters { $( $name: AtomicU64, )* }

        impl SharedCounters {
            fn publish(&self, c: &PmdCounters) {
                $( self.$name.store(c.$name, Ordering::Relaxed); )*
            }
            fn read(&self) -> PmdCounters {
                PmdCounters { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }

        impl std::ops::AddAssign for PmdCounters {
            fn add_assign(&mut self, o: PmdCounters) {
                $( self.$name += o.$name; )*
            }
        }
    };
}

counters! {
    /// Packets received.
    packets,
    /// Packets forwarded by a port's simple-match megaflow.
    simple_hits,
    /// Hits in the exact-match cache.
    emc_hits,
    /// Hits in the megaflow classifier.
    megaflow_hits,
    /// Subtables searched, summed over megaflow hits.
    megaflow_lookups,
    /// Misses translated and executed.
    upcalls_ok,
    /// Misses that could not be translated (packet dropped).
    upcalls_failed,
    /// Upcalls whose megaflow was not installed (flow limit).
    installs_failed,
    /// Packets whose actions ended without sending them anywhere.
    dropped,
    /// Packets handed to the slow path by a `Userspace` action.
    slow_path,
    /// Copies that failed for want of buffers.
    clone_failed,
    /// Packets sent to ports, and the batches they went in.
    tx_packets,
    tx_batches,
    /// Packets for a port this thread has no queue on.
    tx_no_port,
    /// Headers cut short.
    truncated,
    /// Headers present but invalid.
    malformed,
    /// Loop iterations, and those that received packets.
    iterations,
    busy_iterations,
    /// TSC cycles spent in iterations that did / did not receive packets.
    busy_cycles,
    idle_cycles,
    /// Microseconds asked to sleep while idle.
    sleep_us,
    /// Megaflows removed by revalidation.
    revalidated_out,
    /// TSC cycles spent translating misses (`pmd-perf-show` us/upcall).
    upcall_cycles,
    /// Datapath passes of decapsulated packets (`packet recirculations`).
    recirculations,
    /// Packets not encapsulated: over the underlay MTU, or no headroom
    /// (OVS's `datapath_drop_tunnel_push_error`).
    tnl_push_errors,
    /// Received tunnel packets whose outer headers were bad (truncated,
    /// bad lengths or checksums, fragments, bad VXLAN flags) (OVS's
    /// `datapath_drop_tunnel_pop_error`).
    tnl_pop_errors,
    /// Packets dropped for recirculating too deep or too many at once
    /// (OVS's `datapath_drop_recirc_error`).
    recirc_errors,
    /// Misses dropped untranslated: their rx queue was over its upcall
    /// rate limit (`datapath_drop_upcall_limit`).
    upcalls_limited,
    /// Megaflows removed to make room at the flow limit (least recently
    /// used first), and removed for being idle past `max-idle`.
    flows_evicted,
    flows_expired,
}

impl PmdCounters {
    /// Average subtables searched per megaflow hit.
    pub fn avg_subtable_lookups(&self) -> f64 {
        if self.megaflow_hits == 0 {
            0.0
        } else {
            self.megaflow_lookups as f64 / self.megaflow_hits as f64
        }
    }

    /// Busy cycles per received packet.
    pub fn cycles_per_packet(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.busy_cycles as f64 / self.packets as f64
        }
    }

    /// Packets that missed both caches.
    pub fn misses(&self) -> u64 {
        self.upcalls_ok + self.upcalls_failed
    }

    /// The counters as `ovs-appctl dpif-netdev/pmd-stats-show` prints them,
    /// under `header` (e.g. `pmd thread numa_id 0 core_id 1:`).
    pub fn format(&self, header: &str) -> String {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let mut s = format!(
            "{header}\n  packets received: {}\n  packet recirculations: {}\n  avg. datapath passes per packet: {:.2}\n  \
             phwol hits: 0\n  mfex opt hits: 0\n  simple match hits: {}\n  emc hits: {}\n  smc hits: 0\n  \
             megaflow hits: {}\n  avg. subtable lookups per megaflow hit: {:.2}\n  miss with success upcall: {}\n  \
             miss with failed upcall: {}\n  avg. packets per output batch: {:.2}\n",
            self.packets,
            self.recirculations,
            ratio(self.packets + self.recirculations, self.packets),
            self.simple_hits,
            self.emc_hits,
            self.megaflow_hits,
            self.avg_subtable_lookups(),
            self.upcalls_ok,
            self.upcalls_failed,
            ratio(self.tx_packets, self.tx_batches),
        );
        if self.upcalls_limited > 0 {
            // Not in OVS 3.1 (it has no upcall limit): shown only when it moved.
            s = s.replacen(
                "  avg. packets per output batch",
                &format!(
                    "  miss dropped by upcall rate limit: {}\n  avg. packets per output batch",
                    self.upcalls_limited
                ),
                1,
            );
        }
        let total = self.idle_cycles + self.busy_cycles;
        if total == 0 {
            return s;
        }
        s += &format!(
            "  idle cycles: {} ({:.2}%)\n  processing cycles: {} ({:.2}%)\n",
            self.idle_cycles,
            100.0 * ratio(self.idle_cycles, total),
            self.busy_cycles,
            100.0 * ratio(self.busy_cycles, total),
        );
        if self.packets == 0 {
            return s;
        }
        s += &format!(
            "  avg cycles per packet: {:.2} ({total}/{})\n  avg processing cycles per packet: {:.2} ({}/{})\n",
            ratio(total, self.packets),
            self.packets,
            ratio(self.busy_cycles, self.packets),
            self.busy_cycles,
            self.packets,
        );
        s
    }
}

/// The instant datapath time counts from.
pub fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since [`epoch`] (megaflow and rule "used" times).
pub fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// Reads the CPU's cycle counter.
#[inline(always)]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions and touches no memory.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// A megaflow as `dpctl/dump-flows` shows it.
#[derive(Clone, Debug)]
pub struct FlowDump {
    pub pmd: usize,
    pub key: FlowKey,
    pub mask: FlowKey,
    pub actions: Arc<[DpAction]>,
    pub counters: FlowCounters,
}

/// A request from the control thread.
pub enum PmdCmd {
    AddRxq {
        port: u32,
        qid: usize,
        queue: Box<dyn RxQueue>,
    },
    /// Stop polling one rx queue and hand it back (to move it to another PMD).
    TakeRxq {
        port: u32,
        qid: usize,
        reply: mpsc::Sender<Box<dyn RxQueue>>,
    },
    /// Report the measured load of each rx queue.
    RxqLoads(mpsc::Sender<PmdLoad>),
    AddTx {
        port: u32,
        queue: Box<dyn TxQueue>,
    },
    /// Stop polling and sending on a port (queued output is sent first).
    RemovePort(u32),
    /// Remove every megaflow and empty the EMC.
    FlushFlows,
    /// Credit every megaflow's traffic to its dependencies now.
    SyncStats,
    ClearStats,
    Configure(PmdConfig),
    DumpFlows(mpsc::Sender<Vec<FlowDump>>),
    /// Process packets as if received on datapath port `port` (packets the
    /// control plane originates, e.g. ARP requests for tunnel next hops).
    Inject {
        port: u32,
        pkts: Vec<Packet>,
    },
    Quit,
}

/// The part of a PMD other threads see.
pub struct PmdShared {
    pub id: usize,
    counters: SharedCounters,
    seen_version: AtomicU64,
    req: AtomicU64,
    ack: AtomicU64,
    exited: AtomicBool,
    thread: std::sync::OnceLock<std::thread::Thread>,
    /// When the counters were last cleared ([`now_ms`] time).
    stats_since_ms: AtomicU64,
}

impl PmdShared {
    fn new(id: usize) -> PmdShared {
        PmdShared {
            id,
            counters: SharedCounters::default(),
            seen_version: AtomicU64::new(0),
            req: AtomicU64::new(0),
            ack: AtomicU64::new(0),
            exited: AtomicBool::new(false),
            thread: std::sync::OnceLock::new(),
            stats_since_ms: AtomicU64::new(now_ms()),
        }
    }

    pub fn counters(&self) -> PmdCounters {
        self.counters.read()
    }

    /// When the counters were last cleared (or the thread started), in [`now_ms`] time.
    pub fn stats_since_ms(&self) -> u64 {
        self.stats_since_ms.load(Ordering::Relaxed)
    }

    /// The decision-input version this thread has revalidated up to.
    pub fn seen_version(&self) -> u64 {
        self.seen_version.load(Ordering::Acquire)
    }

    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Waits until `done()` holds or the thread has exited, waking it meanwhile.
    fn wait(&self, done: impl Fn() -> bool) {
        let mut spins = 0u32;
        while !done() && !self.exited.load(Ordering::Acquire) {
            self.wake();
            spins += 1;
            if spins < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Waits until the thread will use no decision older than `version`.
    pub fn wait_version(&self, version: u64) {
        self.wait(|| self.seen_version() >= version);
    }
}

/// OVS's default `max-idle` (ms).
pub const DEFAULT_MAX_IDLE_MS: u64 = 10_000;
/// At the flow limit, how often to evict, and the share of the limit each
/// eviction frees (so new flows install until the next one).
const EVICT_INTERVAL_MS: u64 = 100;
const EVICT_DIVISOR: usize = 8;

/// Length of one load-measurement interval, and how many are kept
/// (OVS's PMD_INTERVAL_LEN and PMD_INTERVAL_MAX: a minute of history).
const LOAD_INTERVAL_MS: u64 = 5000;
pub const LOAD_INTERVALS: usize = 12;

struct RxqState {
    port: u32,
    qid: usize,
    queue: Box<dyn RxQueue>,
    /// Cycles spent receiving and processing this queue's packets in the
    /// current interval, and in the last completed ones.
    cycles: u64,
    history: [u64; LOAD_INTERVALS],
    /// The queue's upcall budget.
    upcalls: TokenBucket,
    /// `RxQueue::polls_by_syscall`, the busy iterations to skip it, and
    /// when (`cycles()`) it was last found empty.
    syscall: bool,
    skip: u8,
    empty_at: u64,
}

/// An rx queue's measured processing cycles (`pmd-rxq-show`, rebalancing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RxqLoad {
    pub port: u32,
    pub qid: usize,
    /// Cycles over the kept intervals.
    pub cycles: u64,
    /// [`RxQueue::enabled`] when the load was taken.
    pub enabled: bool,
}

/// A PMD thread's load over the kept intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PmdLoad {
    /// Every cycle of the measured intervals, and those spent in busy iterations.
    pub total_cycles: u64,
    pub busy_cycles: u64,
    pub rxqs: Vec<RxqLoad>,
}

struct TxPort {
    queue: Box<dyn TxQueue>,
    batch: Batch,
}

/// Output queues by datapath port number.
#[derive(Default)]
struct TxPorts {
    ports: Vec<Option<TxPort>>,
    /// Ports with packets waiting.
    pending: Vec<u32>,
}

impl TxPorts {
    #[inline(always)]
    fn enqueue(&mut self, port: u32, pkt: Packet, c: &mut PmdCounters) {
        let Some(Some(tp)) = self.ports.get_mut(port as usize) else {
            c.tx_no_port += 1;
            return;
        };
        if tp.batch.is_empty() {
            self.pending.push(port);
        } else if tp.batch.is_full() {
            c.tx_packets += tp.batch.len() as u64;
            c.tx_batches += 1;
            tp.queue.send(&mut tp.batch);
        }
        // Cannot fail: the batch was just emptied if it was full.
        let _ = tp.batch.push(pkt);
    }

    /// Queues a whole flow batch for `port`.
    #[inline(always)]
    fn enqueue_batch(&mut self, port: u32, pkts: &mut Batch, c: &mut PmdCounters) {
        let Some(Some(tp)) = self.ports.get_mut(port as usize) else {
            c.tx_no_port += pkts.len() as u64;
            pkts.clear();
            return;
        };
        if tp.batch.is_empty() {
            self.pending.push(port);
        } else if tp.batch.len() + pkts.len() > BATCH_SIZE {
            c.tx_packets += tp.batch.len() as u64;
            c.tx_batches += 1;
            tp.queue.send(&mut tp.batch);
        }
        tp.batch.append(pkts);
    }

    fn flush(&mut self, c: &mut PmdCounters) {
        for port in self.pending.drain(..) {
            if let Some(Some(tp)) = self.ports.get_mut(port as usize) {
                if !tp.batch.is_empty() {
                    c.tx_packets += tp.batch.len() as u64;
                    c.tx_batches += 1;
                    tp.queue.send(&mut tp.batch);
                }
            }
        }
    }
}

/// Packets of one batch that share a megaflow.
struct FlowBatch {
    flow: u32,
    gen: u32,
    /// Packets of the round in this group (they move to `pkts` only when
    /// the round has several groups).
    n: usize,
    pkts: Batch,
    bytes: u64,
    tcp_flags: u16,
}

/// Per-megaflow bookkeeping of which flow batch it is in this round.
#[derive(Default, Clone, Copy)]
struct BatchTag {
    epoch: u64,
    slot: u8,
}

/// One poll-mode thread's state. Runs on its own thread ([`Pmd::run`]) or
/// is driven directly ([`Pmd::process`], [`Pmd::poll_once`]) by tests and
/// benchmarks.
pub struct Pmd<H: Upcall> {
    handler: Arc<H>,
    shared: Arc<PmdShared>,
    config: PmdConfig,
    emc: Emc,
    emc_gate: EmcGate,
    flows: Megaflows<H::Deps>,
    /// Per megaflow slot: its group in the current round.
    tags: Vec<BatchTag>,
    rxqs: Vec<RxqState>,
    tx: TxPorts,
    /// Version of the decision inputs this thread's caches are valid for.
    version: u64,
    counters: PmdCounters,
    extract_stats: ExtractStats,
    keys: Box<[FlowKey; BATCH_SIZE]>,
    /// Per packet of the current round: its flow batch, `NO_SLOT` (not
    /// classified: dropped) or `SOLO_SLOT` (actions in `solo`).
    round: [u8; BATCH_SIZE],
    /// Per packet of the current round: what its key slot holds (`KIND_*`), and its hash.
    kinds: [u8; BATCH_SIZE],
    /// An EMC miss's signature, for the EMC (cold words zero).
    sig: FlowKey,
    /// Per packet of the current round's misses: its signature, if it has one.
    sigs: [[u64; HOT_WORDS]; BATCH_SIZE],
    /// Whether the last iteration received packets.
    last_busy: bool,
    hashes: [u32; BATCH_SIZE],
    solo: Vec<(usize, Arc<[DpAction]>)>,
    fbs: Vec<FlowBatch>,
    /// Per input port: its simple-match megaflow (slot, generation), or
    /// `NO_SIMPLE`.
    simple: Vec<(u32, u32)>,
    epoch: u64,
    rx_batch: Batch,
    /// Decapsulated packets waiting for their next datapath pass, and the
    /// batch the current pass of them runs in.
    recirc: Batch,
    recirc_work: Batch,
    now_ms: u64,
    /// Cycle counter when `now_ms` was last read.
    clock_cycles: u64,
    last_housekeeping_ms: u64,
    cmds: Option<mpsc::Receiver<PmdCmd>>,
    seen_req: u64,
    idle_sleep_us: u64,
    /// Load history: the PMD's total and busy cycles per interval, the
    /// counters at the start of the current one, and when it started.
    load_total: [u64; LOAD_INTERVALS],
    load_busy: [u64; LOAD_INTERVALS],
    load_idx: usize,
    interval_start: (u64, u64),
    interval_start_ms: u64,
    /// The rx queue being processed (`NO_RXQ`: packets injected or
    /// processed directly, which no upcall limit applies to).
    cur_rxq: usize,
    /// Upcalls the current round may still make.
    upcall_budget: u32,
    /// An install failed at the flow limit since the last eviction, and when that was.
    flows_full: bool,
    last_evict_ms: u64,
}

const HOUSEKEEPING_MS: u64 = 1000;
/// Datapath passes a packet may make after its first (OVS's
/// `MAX_RECIRC_DEPTH`): tunnels in tunnels, each popped in turn.
pub const MAX_RECIRC_DEPTH: usize = 6;
const CLOCK_REFRESH_CYCLES: u64 = 2_000_000;
/// A packet not (yet) classified; dropped if it stays so.
const NO_SLOT: u8 = u8::MAX;
/// A packet that runs its actions alone (its megaflow was not installed).
const SOLO_SLOT: u8 = u8::MAX - 1;
/// `handle_misses`'s note of each packet it looks up: a miss, whose key was
/// made from a signature, with stale cold words.
const PREP_MISS: u8 = 1;
const PREP_SIG: u8 = 2;
const PREP_STALE: u8 = 4;
/// Megaflows from which `handle_misses` prefetches (see there).
const PREFETCH_MIN_FLOWS: usize = 4096;
/// How often a busy PMD thread polls an empty rx queue whose poll is a
/// system call (see `poll_once`).
const SYSCALL_POLL_EVERY: u8 = 16;
/// How long (cycles, ~10 µs at 2–3 GHz) an idle PMD thread leaves an empty
/// rx queue whose poll is a system call before polling it again.
pub const SYSCALL_IDLE_GAP_CYCLES: u64 = 25_000;
const NO_SIMPLE: (u32, u32) = (u32::MAX, 0);
const NO_RXQ: usize = usize::MAX;
/// Input ports above this never get a simple-match entry (keeps the table small).
const MAX_SIMPLE_PORT: u32 = 4096;

/// Whether a megaflow qualifies for simple match: it matches exactly the
/// input port of a first pass (nothing else), and only sends to ports,
/// which needs none of the packet metadata extraction would have set.
fn is_simple(key: &FlowKey, mask: &FlowKey, actions: &[DpAction]) -> bool {
    key.recirc_id() == 0
        && key.in_port() < MAX_SIMPLE_PORT
        && mask.word(0) == u64::MAX
        && mask.nonzero_words().all(|w| w == 0)
        && actions.iter().all(|a| matches!(a, DpAction::Output(_)))
}

impl<H: Upcall> Pmd<H> {
    pub fn new(id: usize, handler: Arc<H>, config: PmdConfig) -> Pmd<H> {
        let version = handler.version();
        let shared = Arc::new(PmdShared::new(id));
        shared.seen_version.store(version, Ordering::Release);
        Pmd {
            handler,
            shared,
            config,
            emc: Emc::new(config.emc_entries, config.emc_insert_inv_prob),
            emc_gate: EmcGate::default(),
            flows: Megaflows::new(config.max_flows),
            tags: Vec::new(),
            rxqs: Vec::new(),
            tx: TxPorts::default(),
            version,
            counters: PmdCounters::default(),
            extract_stats: ExtractStats::default(),
            keys: Box::new([FlowKey::ZERO; BATCH_SIZE]),
            round: [NO_SLOT; BATCH_SIZE],
            kinds: [KIND_FULL; BATCH_SIZE],
            sig: FlowKey::ZERO,
            sigs: [[0; HOT_WORDS]; BATCH_SIZE],
            last_busy: false,
            hashes: [0; BATCH_SIZE],
            solo: Vec::new(),
            fbs: (0..BATCH_SIZE)
                .map(|_| FlowBatch {
                    flow: 0,
                    gen: 0,
                    n: 0,
                    pkts: Batch::new(),
                    bytes: 0,
                    tcp_flags: 0,
                })
                .collect(),
            simple: Vec::new(),
            epoch: 0,
            rx_batch: Batch::new(),
            recirc: Batch::new(),
            recirc_work: Batch::new(),
            now_ms: now_ms(),
            clock_cycles: cycles(),
            last_housekeeping_ms: 0,
            cmds: None,
            seen_req: 0,
            idle_sleep_us: 0,
            load_total: [0; LOAD_INTERVALS],
            load_busy: [0; LOAD_INTERVALS],
            load_idx: 0,
            interval_start: (0, 0),
            interval_start_ms: now_ms(),
            cur_rxq: NO_RXQ,
            upcall_budget: 0,
            flows_full: false,
            last_evict_ms: 0,
        }
    }

    pub fn shared(&self) -> &Arc<PmdShared> {
        &self.shared
    }

    pub fn counters(&self) -> PmdCounters {
        let mut c = self.counters;
        c.truncated = self.extract_stats.truncated;
        c.malformed = self.extract_stats.malformed;
        c
    }

    pub fn n_megaflows(&self) -> usize {
        self.flows.len()
    }

    pub fn n_subtables(&self) -> usize {
        self.flows.n_subtables()
    }

    pub fn emc_len(&self) -> usize {
        self.emc.len()
    }

    /// Polls `queue` (queue 0 of `port`).
    pub fn add_rxq(&mut self, port: u32, queue: Box<dyn RxQueue>) {
        self.add_rxq_id(port, 0, queue);
    }

    /// Polls `queue`, rx queue `qid` of `port`.
    pub fn add_rxq_id(&mut self, port: u32, qid: usize, queue: Box<dyn RxQueue>) {
        self.rxqs.push(RxqState {
            port,
            qid,
            syscall: queue.polls_by_syscall(),
            skip: 0,
            empty_at: 0,
            queue,
            cycles: 0,
            history: [0; LOAD_INTERVALS],
            upcalls: TokenBucket::new(
                self.config.upcall_rate,
                self.config.upcall_burst,
                self.now_ms,
            ),
        });
    }

    /// Stops polling rx queue `qid` of `port` and returns it.
    pub fn take_rxq(&mut self, port: u32, qid: usize) -> Option<Box<dyn RxQueue>> {
        let i = self
            .rxqs
            .iter()
            .position(|r| r.port == port && r.qid == qid)?;
        Some(self.rxqs.remove(i).queue)
    }

    /// Measured load of the thread and of each of its rx queues.
    pub fn load(&self) -> PmdLoad {
        PmdLoad {
            total_cycles: self.load_total.iter().sum(),
            busy_cycles: self.load_busy.iter().sum(),
            rxqs: self
                .rxqs
                .iter()
                .map(|r| RxqLoad {
                    port: r.port,
                    qid: r.qid,
                    cycles: r.history.iter().sum(),
                    enabled: r.queue.enabled(),
                })
                .collect(),
        }
    }

    /// Closes the current load interval when it is due.
    fn rotate_load_interval(&mut self) {
        if self.now_ms < self.interval_start_ms + LOAD_INTERVAL_MS {
            return;
        }
        self.interval_start_ms = self.now_ms;
        let c = &self.counters;
        let (total, busy) = (c.busy_cycles + c.idle_cycles, c.busy_cycles);
        let i = self.load_idx;
        self.load_total[i] = total.saturating_sub(self.interval_start.0);
        self.load_busy[i] = busy.saturating_sub(self.interval_start.1);
        self.interval_start = (total, busy);
        for r in &mut self.rxqs {
            r.history[i] = std::mem::take(&mut r.cycles);
        }
        self.load_idx = (i + 1) % LOAD_INTERVALS;
    }

    pub fn add_tx(&mut self, port: u32, queue: Box<dyn TxQueue>) {
        let i = port as usize;
        if self.tx.ports.len() <= i {
            self.tx.ports.resize_with(i + 1, || None);
        }
        self.tx.ports[i] = Some(TxPort {
            queue,
            batch: Batch::new(),
        });
    }

    pub fn remove_port(&mut self, port: u32) {
        self.tx.flush(&mut self.counters);
        self.rxqs.retain(|r| r.port != port);
        if let Some(slot) = self.tx.ports.get_mut(port as usize) {
            *slot = None;
        }
    }

    pub fn configure(&mut self, config: PmdConfig) {
        if config.emc_entries != self.config.emc_entries {
            self.emc = Emc::new(config.emc_entries, config.emc_insert_inv_prob);
        }
        self.emc.set_insert_inv_prob(config.emc_insert_inv_prob);
        self.emc.set_sampled(self.emc_gate.bypassed());
        self.flows.set_max_flows(config.max_flows);
        for r in &mut self.rxqs {
            r.upcalls.set(config.upcall_rate, config.upcall_burst);
        }
        self.config = config;
    }

    /// Processes a batch of packets received on datapath port `in_port`
    /// (the batch is left empty). Output is queued; [`Pmd::flush`] sends it.
    ///
    /// Each packet is classified in place into a per-megaflow group; when
    /// the whole batch is one group (the common case) its actions run on the
    /// batch as it is, otherwise packets move to their group, keeping each
    /// flow's order, and each group's actions run once.
    pub fn process(&mut self, batch: &mut Batch, in_port: u32) {
        self.process_pass::<false>(batch, in_port);
        if !self.recirc.is_empty() {
            self.run_recirc();
        }
    }

    /// Runs the datapath passes of decapsulated packets (each pass may pop
    /// another tunnel), at most [`MAX_RECIRC_DEPTH`] deep.
    #[inline(never)]
    fn run_recirc(&mut self) {
        for _ in 0..MAX_RECIRC_DEPTH {
            if self.recirc.is_empty() {
                return;
            }
            let mut b = std::mem::take(&mut self.recirc_work);
            std::mem::swap(&mut b, &mut self.recirc);
            self.process_pass::<true>(&mut b, 0);
            self.recirc_work = b;
        }
        self.counters.recirc_errors += self.recirc.len() as u64;
        self.recirc.clear();
    }

    /// One datapath pass of `batch`: received on `in_port`, or (`RECIRC`)
    /// decapsulated, each packet with its own input port in its metadata.
    #[inline(always)]
    fn process_pass<const RECIRC: bool>(&mut self, batch: &mut Batch, in_port: u32) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        if RECIRC {
            self.counters.recirculations += n as u64;
        } else {
            self.counters.packets += n as u64;
            if let Some(&(flow, gen)) = self.simple.get(in_port as usize) {
                if flow != NO_SIMPLE.0 && self.simple_pass(batch, in_port, flow, gen) {
                    return;
                }
            }
        }
        self.epoch += 1;
        let epoch = self.epoch;
        let emc_on = self.config.emc_insert_inv_prob != 0 && self.emc_gate.use_round();
        let mut nfb = 0usize;
        let n_miss = if !emc_on {
            self.keys_pass::<RECIRC, false>(batch, in_port);
            self.round[..n].fill(NO_SLOT);
            n
        } else if self.flows.len() >= PREFETCH_MIN_FLOWS {
            // With many flows the EMC's lines are cache misses: a first
            // pass fetches them all before the lookups wait on any.
            self.emc_pass::<RECIRC, true>(batch, in_port, epoch, &mut nfb)
        } else {
            self.emc_pass::<RECIRC, false>(batch, in_port, epoch, &mut nfb)
        };
        self.counters.emc_hits += (n - n_miss) as u64;
        if emc_on {
            if let Some(bypass) = self.emc_gate.record_round(n, n - n_miss) {
                self.emc.set_sampled(bypass);
            }
        }
        if n_miss > 0 {
            self.handle_misses(batch, epoch, &mut nfb, emc_on);
        }

        if nfb == 1 && self.fbs[0].n == n {
            let fb = &self.fbs[0];
            if let Some(f) = self.flows.get_mut(fb.flow, fb.gen) {
                f.counters
                    .credit(n as u64, fb.bytes, fb.tcp_flags, self.now_ms);
                execute(
                    &f.actions,
                    batch,
                    &mut self.tx,
                    &mut self.recirc,
                    &*self.handler,
                    &mut self.counters,
                );
                return;
            }
        }
        self.dispatch_by_flow(batch, nfb);
    }

    /// The EMC lookups of a round: each hit joins its megaflow's group;
    /// returns the misses. `PRE`: a first pass ([`Pmd::keys_pass`])
    /// made the keys (or signatures) and prefetched their entries.
    #[inline(always)]
    fn emc_pass<const RECIRC: bool, const PRE: bool>(
        &mut self,
        batch: &mut Batch,
        in_port: u32,
        epoch: u64,
        nfb: &mut usize,
    ) -> usize {
        let mut n_miss = 0;
        // (megaflow, generation, group) of the previous EMC hit; the start
        // value is no slot's, nor an emptied EMC entry's (u32::MAX).
        let mut last = (u32::MAX - 1, 0u32, 0usize);
        if PRE {
            self.keys_pass::<RECIRC, true>(batch, in_port);
        }
        {
            // One pass: signature (or key), EMC lookup, flow batch.
            let per_packet = self
                .keys
                .iter_mut()
                .zip(self.hashes.iter_mut())
                .zip(self.kinds.iter_mut())
                .zip(self.round.iter_mut());
            for (pkt, (((key, hash), kind), round)) in
                batch.packets_mut().iter_mut().zip(per_packet)
            {
                let port = if RECIRC { pkt.meta().in_port } else { in_port };
                let found = if PRE {
                    // The first pass filled the key slot, hash and kind.
                    if *kind == KIND_SIG {
                        let words: [u64; HOT_WORDS] = std::array::from_fn(|i| key.word(i));
                        self.emc
                            .lookup_hot(&words, *hash)
                            .map(|hit| (hit, words[3]))
                    } else {
                        self.emc
                            .lookup(key, *hash, kind_shape(*kind))
                            .map(|hit| (hit, key.word(3)))
                    }
                } else if let Some((words, h)) = emc_signature(pkt, port) {
                    let hit = self.emc.lookup_hot(&words, h);
                    if hit.is_none() {
                        for (i, w) in words.iter().enumerate() {
                            key.set_word(i, *w);
                        }
                        (*hash, *kind) = (h, KIND_SIG);
                    }
                    hit.map(|hit| (hit, words[3]))
                } else {
                    let (h, shape) = extract_arrived(pkt, port, key, &mut self.extract_stats, true);
                    (*hash, *kind) = (h, shape as u8);
                    self.emc.lookup(key, h, shape).map(|hit| (hit, key.word(3)))
                };
                if let Some((hit, word3)) = found {
                    // Packets of one flow often come in a row: the previous
                    // packet already validated this megaflow and found its group.
                    let slot = if (hit.flow, hit.gen) == (last.0, last.1) {
                        Some(last.2)
                    } else if self.flows.is_live(hit.flow, hit.gen) {
                        // The flow's counters and actions are used after
                        // the round: misses with many flows.
                        if self.flows.len() >= PREFETCH_MIN_FLOWS {
                            self.flows.prefetch_use(hit.flow);
                        }
                        let s = batch_slot(
                            &mut self.tags,
                            epoch,
                            nfb,
                            &mut self.fbs,
                            hit.flow,
                            hit.gen,
                        );
                        last = (hit.flow, hit.gen, s);
                        Some(s)
                    } else {
                        None
                    };
                    if let Some(s) = slot {
                        if let Some(fb) = self.fbs.get_mut(s) {
                            fb.n += 1;
                            fb.bytes += pkt.len() as u64;
                            // Where keys and signatures keep the TCP flags.
                            fb.tcp_flags |= ((word3 >> 48) as u16).swap_bytes();
                            *round = s as u8;
                            continue;
                        }
                    }
                    // A hit on a megaflow since removed: a miss after all
                    // (for a signature, the key slot is not filled).
                    *kind = KIND_STALE;
                }
                *round = NO_SLOT;
                n_miss += 1;
            }
        }
        n_miss
    }

    /// Key (or, `FOR_EMC`, signature where there is one), hash and kind of
    /// each packet of a round, into the round's slots; `FOR_EMC` also
    /// prefetches the EMC entries each may be in.
    #[inline(always)]
    fn keys_pass<const RECIRC: bool, const FOR_EMC: bool>(
        &mut self,
        batch: &mut Batch,
        in_port: u32,
    ) {
        let per_packet = self
            .keys
            .iter_mut()
            .zip(self.hashes.iter_mut())
            .zip(self.kinds.iter_mut());
        for (pkt, ((key, hash), kind)) in batch.packets_mut().iter_mut().zip(per_packet) {
            let port = if RECIRC { pkt.meta().in_port } else { in_port };
            let sig = if FOR_EMC {
                emc_signature(pkt, port)
            } else {
                None
            };
            match sig {
                Some((words, h)) => {
                    key.set_hot(&words);
                    (*hash, *kind) = (h, KIND_SIG);
                }
                None => {
                    // The hash also picks a tunnel's UDP source port.
                    let (h, shape) = extract_arrived(pkt, port, key, &mut self.extract_stats, true);
                    (*hash, *kind) = (h, shape as u8);
                }
            }
            if FOR_EMC {
                self.emc.prefetch(*hash);
            }
        }
    }

    /// Forwards a whole batch by its port's simple-match megaflow: no
    /// extraction, no lookup; only what the flow's statistics need (bytes,
    /// TCP flags) is read. `false` if the megaflow is gone (the entry is
    /// dropped and the batch takes the normal path).
    #[inline(always)]
    fn simple_pass(&mut self, batch: &mut Batch, in_port: u32, flow: u32, gen: u32) -> bool {
        let Some(f) = self.flows.get_mut(flow, gen) else {
            self.simple[in_port as usize] = NO_SIMPLE;
            return false;
        };
        let (mut bytes, mut flags) = (0u64, 0u16);
        for p in batch.packets_mut() {
            bytes += p.len() as u64;
            flags |= crate::extract::tcp_flags_of(p.data());
            p.meta_mut().in_port = in_port;
        }
        let n = batch.len() as u64;
        self.counters.simple_hits += n;
        f.counters.credit(n, bytes, flags, self.now_ms);
        execute(
            &f.actions,
            batch,
            &mut self.tx,
            &mut self.recirc,
            &*self.handler,
            &mut self.counters,
        );
        true
    }

    /// Moves the packets of a round to their groups and runs each group's actions.
    // Out of line: a function of its own keeps this loop's state in registers.
    #[inline(never)]
    fn dispatch_by_flow(&mut self, batch: &mut Batch, nfb: usize) {
        let mut solo = std::mem::take(&mut self.solo);
        for (i, (pkt, &round)) in batch.drain().zip(self.round.iter()).enumerate() {
            match round {
                NO_SLOT => {}
                SOLO_SLOT => {
                    if let Some(pos) = solo.iter().position(|(j, _)| *j == i) {
                        let (_, acts) = solo.swap_remove(pos);
                        let mut one = Batch::new();
                        let _ = one.push(pkt);
                        execute(
                            &acts,
                            &mut one,
                            &mut self.tx,
                            &mut self.recirc,
                            &*self.handler,
                            &mut self.counters,
                        );
                    }
                }
                s => {
                    if let Some(fb) = self.fbs.get_mut(s as usize) {
                        // Cannot fail: a round has at most BATCH_SIZE packets.
                        let _ = fb.pkts.push(pkt);
                    }
                }
            }
        }
        solo.clear();
        self.solo = solo;
        for s in 0..nfb {
            let fb = &mut self.fbs[s];
            let Some(f) = self.flows.get_mut(fb.flow, fb.gen) else {
                self.counters.dropped += fb.pkts.len() as u64;
                fb.pkts.clear();
                continue;
            };
            f.counters
                .credit(fb.pkts.len() as u64, fb.bytes, fb.tcp_flags, self.now_ms);
            execute(
                &f.actions,
                &mut fb.pkts,
                &mut self.tx,
                &mut self.recirc,
                &*self.handler,
                &mut self.counters,
            );
        }
    }

    /// Looks the EMC misses of a round up in the megaflow classifier, and
    /// upcalls for the rest (installing a megaflow for each).
    #[inline(never)]
    fn handle_misses(&mut self, batch: &mut Batch, epoch: u64, nfb: &mut usize, emc_on: bool) {
        let cold_masks = self.flows.has_cold_masks();
        // Keys first, then two prefetch passes over them, then the lookups:
        // with many flows, each lookup's bucket and megaflow are cache
        // misses, which then overlap across the round instead of queueing.
        let mut prep = [0u8; BATCH_SIZE];
        let mut n_miss = 0;
        let per_packet = self
            .keys
            .iter_mut()
            .zip(self.round.iter())
            .zip(self.kinds.iter())
            .zip(self.sigs.iter_mut())
            .zip(prep.iter_mut());
        for (pkt, ((((key, &round), &kind), sig), prep)) in
            batch.packets_mut().iter_mut().zip(per_packet)
        {
            if round != NO_SLOT {
                continue;
            }
            let mut kind = kind;
            if kind == KIND_STALE {
                // The EMC pass left this slot as it was: look again.
                let port = pkt.meta().in_port;
                kind = if let Some((words, _)) = emc_signature(pkt, port) {
                    for (i, w) in words.iter().enumerate() {
                        key.set_word(i, *w);
                    }
                    KIND_SIG
                } else {
                    extract_arrived(pkt, port, key, &mut self.extract_stats, true).1 as u8
                };
            }
            // A signature goes into the EMC; the key is made now.
            let is_sig = kind == KIND_SIG;
            if is_sig {
                for (i, w) in sig.iter_mut().enumerate() {
                    *w = key.word(i);
                }
                for (i, w) in key_of_sig(sig).into_iter().enumerate() {
                    key.set_word(i, w);
                }
            }
            let compact = kind == KIND_COMPACT || is_sig;
            // Extraction left a compact key's cold words stale: clear them
            // before anything reads them (a subtable with cold words, the
            // EMC, translation).
            let mut stale = compact;
            if stale && cold_masks {
                key.clear_cold();
                stale = false;
            }
            *prep =
                PREP_MISS | if is_sig { PREP_SIG } else { 0 } | if stale { PREP_STALE } else { 0 };
            n_miss += 1;
        }
        // A table this small stays in cache: prefetching would only add work.
        let prefetching = n_miss > 1 && self.flows.len() >= PREFETCH_MIN_FLOWS;
        // Each key's hash in the most hit subtable, computed once for the
        // two prefetch steps and the lookup.
        let mut first = [None; BATCH_SIZE];
        if prefetching {
            let keys = self.keys.iter().zip(prep.iter()).zip(first.iter_mut());
            for ((key, _), h) in keys.filter(|((_, &p), _)| p != 0) {
                *h = self.flows.first_hash(key);
                if let Some(h) = *h {
                    self.flows.prefetch_bucket(h);
                }
            }
            for h in first.iter().flatten() {
                self.flows.prefetch_flow(*h);
            }
        }
        // Until an insert changes the subtables (it may add one in front).
        let mut hashes_valid = true;
        let per_packet = self
            .keys
            .iter_mut()
            .zip(self.round.iter_mut())
            .zip(prep.iter());
        for (i, (pkt, ((key, round), &prep))) in
            batch.packets_mut().iter_mut().zip(per_packet).enumerate()
        {
            if prep == 0 {
                continue;
            }
            let is_sig = prep & PREP_SIG != 0;
            let stale = prep & PREP_STALE != 0;
            let found = match first[i] {
                Some(h) if hashes_valid => self.flows.lookup_hashed(key, h),
                _ => self.flows.lookup(key),
            };
            let (flow, gen) = match found {
                Some(hit) => {
                    if prefetching {
                        self.flows.prefetch_use(hit.flow);
                    }
                    self.counters.megaflow_hits += 1;
                    self.counters.megaflow_lookups += hit.lookups as u64;
                    if emc_on && self.emc.should_insert() {
                        if stale {
                            key.clear_cold();
                        }
                        let k = if is_sig {
                            self.sig.set_hot(&self.sigs[i]);
                            &self.sig
                        } else {
                            &*key
                        };
                        self.emc.insert(k, pkt.meta().hash, hit.flow, hit.gen);
                    }
                    (hit.flow, hit.gen)
                }
                None => {
                    // Upcall tokens are taken from the rx queue's bucket a
                    // round's worth at a time; what is left goes back after it.
                    if self.upcall_budget == 0 {
                        self.upcall_budget =
                            take_upcall_budget(&mut self.rxqs, self.cur_rxq, self.now_ms);
                        if self.upcall_budget == 0 {
                            self.counters.upcalls_limited += 1;
                            continue;
                        }
                    }
                    self.upcall_budget -= 1;
                    if stale {
                        key.clear_cold();
                    }
                    let t0 = cycles();
                    let translated = self.handler.translate(key, pkt);
                    self.counters.upcall_cycles += cycles().wrapping_sub(t0);
                    let t = match translated {
                        Ok(t) => t,
                        Err(_) => {
                            self.counters.upcalls_failed += 1;
                            continue;
                        }
                    };
                    self.counters.upcalls_ok += 1;
                    let mut mask = t.mask;
                    // Every megaflow is specific to its input port and recirculation pass.
                    mask.set_bytes(ofs::IN_PORT, &[0xff; 8]);
                    let acts: Arc<[DpAction]> = t.actions.into();
                    if self.flows.is_full() {
                        // Over the flow limit: the packet still gets its
                        // actions (and its rules its statistics, as OVS
                        // credits an uninstalled upcall); the next
                        // eviction makes room.
                        self.counters.installs_failed += 1;
                        self.flows_full = true;
                        credit_one(&*self.handler, &t.deps, pkt, key, self.now_ms);
                        *round = SOLO_SLOT;
                        self.solo.push((i, acts));
                        continue;
                    }
                    hashes_valid = false;
                    match self
                        .flows
                        .insert(key, &mask, acts.clone(), t.deps, t.version)
                    {
                        Ok((idx, gen)) => {
                            if emc_on && self.emc.should_insert() {
                                let k = if is_sig {
                                    self.sig.set_hot(&self.sigs[i]);
                                    &self.sig
                                } else {
                                    &*key
                                };
                                self.emc.insert(k, pkt.meta().hash, idx, gen);
                            }
                            if self.config.simple_match && is_simple(key, &mask, &acts) {
                                let port = key.in_port() as usize;
                                if self.simple.len() <= port {
                                    self.simple.resize(port + 1, NO_SIMPLE);
                                }
                                self.simple[port] = (idx, gen);
                            }
                            if self.tags.len() <= idx as usize {
                                self.tags.resize(idx as usize + 1, BatchTag::default());
                            }
                            (idx, gen)
                        }
                        Err(_) => {
                            // Over the flow limit: the packet still gets its
                            // actions; the next eviction makes room.
                            self.counters.installs_failed += 1;
                            self.flows_full = true;
                            *round = SOLO_SLOT;
                            self.solo.push((i, acts));
                            continue;
                        }
                    }
                }
            };
            // The lookup or the install just found the megaflow live.
            let s = batch_slot(&mut self.tags, epoch, nfb, &mut self.fbs, flow, gen);
            if let Some(fb) = self.fbs.get_mut(s) {
                fb.n += 1;
                fb.bytes += pkt.len() as u64;
                fb.tcp_flags |= key.be16_at(ofs::TCP_FLAGS);
                *round = s as u8;
            }
        }
        if self.upcall_budget > 0 {
            return_upcall_budget(&mut self.rxqs, self.cur_rxq, self.upcall_budget);
            self.upcall_budget = 0;
        }
    }

    /// Sends queued output.
    pub fn flush(&mut self) {
        self.tx.flush(&mut self.counters);
    }

    /// Polls every rx queue once, processes what arrived and sends the
    /// output; returns the packets received.
    pub fn poll_once(&mut self) -> usize {
        let start = cycles();
        // "Used" times need milliseconds, not the cost of reading the clock
        // per batch: refresh it once some cycles (≥ ~1 ms at ≤ 2 GHz) passed.
        if start.wrapping_sub(self.clock_cycles) > CLOCK_REFRESH_CYCLES {
            self.now_ms = now_ms();
            self.clock_cycles = start;
        }
        self.check_version();
        let mut total = 0;
        let mut t0 = start;
        for q in 0..self.rxqs.len() {
            let rq = &mut self.rxqs[q];
            if rq.syscall {
                // An empty TAP queue is not polled every iteration: while
                // other queues keep the thread busy a system call per
                // iteration was a sixth of a decapsulating thread's time
                // (so every SYSCALL_POLL_EVERY busy iterations), and while
                // they trickle in, idle iterations made 1.2 million a second,
                // a quarter of the thread's time in the kernel (so once per
                // SYSCALL_IDLE_GAP_CYCLES). A queue that gave packets is
                // polled again next time (the iteration was busy).
                let due = if self.last_busy {
                    rq.skip == 0
                } else {
                    start.wrapping_sub(rq.empty_at) >= SYSCALL_IDLE_GAP_CYCLES
                };
                if !due {
                    rq.skip = rq.skip.saturating_sub(1);
                    continue;
                }
            }
            let n = rq.queue.recv(&mut self.rx_batch);
            if rq.syscall {
                rq.skip = if n == 0 { SYSCALL_POLL_EVERY - 1 } else { 0 };
                if n == 0 {
                    rq.empty_at = start;
                }
            }
            if n > 0 {
                total += n;
                let port = self.rxqs[q].port;
                let mut b = std::mem::take(&mut self.rx_batch);
                self.cur_rxq = q;
                self.process(&mut b, port);
                self.cur_rxq = NO_RXQ;
                self.rx_batch = b;
                // The queue's load: its receive and processing (output is
                // sent after the loop and counts as the thread's overhead).
                let t1 = cycles();
                self.rxqs[q].cycles += t1.wrapping_sub(t0);
                t0 = t1;
            } else {
                t0 = cycles();
            }
        }
        self.flush();
        let spent = cycles().wrapping_sub(start);
        self.counters.iterations += 1;
        self.last_busy = total > 0;
        if total > 0 {
            self.counters.busy_iterations += 1;
            self.counters.busy_cycles += spent;
        } else {
            self.counters.idle_cycles += spent;
        }
        total
    }

    /// Brings the caches up to the current decision-input version: removes
    /// megaflows the changes made stale (EMC entries pointing at them die
    /// with their generation).
    pub fn check_version(&mut self) {
        let v = self.handler.version();
        if v == self.version {
            return;
        }
        let (changes, now) = self.handler.changes_since(self.version);
        for idx in self.flows.indices() {
            let Some(f) = self.flows.get(idx) else {
                continue;
            };
            let stale = f.version < now
                && self.handler.is_stale(
                    &changes,
                    &f.key,
                    self.flows.mask_of(f),
                    &f.deps,
                    f.version,
                );
            if stale {
                if let Some(mut f) = self.flows.remove(idx) {
                    let d = f.take_uncredited();
                    self.handler.credit(&f.deps, &d);
                    self.counters.revalidated_out += 1;
                }
            }
        }
        self.version = now;
        self.shared.seen_version.store(now, Ordering::Release);
    }

    /// Credits every megaflow's new traffic to its dependencies.
    pub fn sync_stats(&mut self) {
        let handler = &self.handler;
        for (_, f) in self.flows.iter_mut() {
            if f.counters != f.credited {
                let d = f.take_uncredited();
                handler.credit(&f.deps, &d);
            }
        }
    }

    /// Removes every megaflow (crediting their traffic) and empties the EMC.
    pub fn flush_flows(&mut self) {
        for mut f in self.flows.drain() {
            let d = f.take_uncredited();
            self.handler.credit(&f.deps, &d);
        }
        self.emc.clear();
        self.simple.clear();
    }

    pub fn dump_flows(&self) -> Vec<FlowDump> {
        self.flows
            .iter()
            .map(|(_, f)| FlowDump {
                pmd: self.shared.id,
                key: f.key,
                mask: *self.flows.mask_of(f),
                actions: f.actions.clone(),
                counters: f.counters,
            })
            .collect()
    }

    /// Processes `pkts` as received on `port` and sends the output.
    pub fn inject(&mut self, port: u32, pkts: Vec<Packet>) {
        let mut it = pkts.into_iter().peekable();
        while it.peek().is_some() {
            let mut b = Batch::new();
            b.fill_from(&mut it);
            self.process(&mut b, port);
        }
        self.flush();
    }

    pub fn clear_stats(&mut self) {
        self.counters = PmdCounters::default();
        self.extract_stats = ExtractStats::default();
        self.interval_start = (0, 0);
        self.shared
            .stats_since_ms
            .store(now_ms(), Ordering::Relaxed);
    }

    fn housekeeping(&mut self) {
        self.flows.rank();
        self.expire_idle_flows();
        self.sync_stats();
    }

    /// Removes megaflows idle for longer than `max-idle` (their traffic is
    /// credited first). Called once a second, off the per-packet path.
    pub fn expire_idle_flows(&mut self) {
        if self.config.max_idle_ms == 0 {
            return;
        }
        let Some(cutoff) = self.now_ms.checked_sub(self.config.max_idle_ms) else {
            return;
        };
        let handler = &self.handler;
        let n = self.flows.expire(cutoff, |mut f| {
            let d = f.take_uncredited();
            handler.credit(&f.deps, &d);
        });
        self.counters.flows_expired += n as u64;
    }

    /// At the flow limit (an install failed), evicts the least recently
    /// used megaflows, an eighth of the limit, at most every
    /// `EVICT_INTERVAL_MS`: flows that keep hitting stay, the new ones
    /// install again. Returns how many went.
    pub fn evict_if_full(&mut self) -> usize {
        if !self.flows_full || self.now_ms < self.last_evict_ms + EVICT_INTERVAL_MS {
            return 0;
        }
        self.flows_full = false;
        self.last_evict_ms = self.now_ms;
        let max = self.flows.max_flows();
        let target = max.saturating_sub((max / EVICT_DIVISOR).max(1));
        let handler = &self.handler;
        let n = self.flows.evict_lru(target, |mut f| {
            let d = f.take_uncredited();
            handler.credit(&f.deps, &d);
        });
        self.counters.flows_evicted += n as u64;
        n
    }

    /// Refreshes the PMD's millisecond clock now (tests and benchmarks that
    /// drive [`Pmd::poll_once`] across time).
    pub fn refresh_clock(&mut self) {
        self.now_ms = now_ms();
        self.clock_cycles = cycles();
    }

    fn handle_cmds(&mut self) -> bool {
        let req = self.shared.req.load(Ordering::Acquire);
        if req == self.seen_req {
            return true;
        }
        let mut keep_running = true;
        let cmds: Vec<PmdCmd> = match &self.cmds {
            Some(rx) => rx.try_iter().collect(),
            None => Vec::new(),
        };
        for cmd in cmds {
            match cmd {
                PmdCmd::AddRxq { port, qid, queue } => self.add_rxq_id(port, qid, queue),
                PmdCmd::TakeRxq { port, qid, reply } => {
                    if let Some(q) = self.take_rxq(port, qid) {
                        let _ = reply.send(q);
                    }
                }
                PmdCmd::RxqLoads(reply) => {
                    let _ = reply.send(self.load());
                }
                PmdCmd::AddTx { port, queue } => self.add_tx(port, queue),
                PmdCmd::RemovePort(p) => self.remove_port(p),
                PmdCmd::FlushFlows => self.flush_flows(),
                PmdCmd::SyncStats => self.sync_stats(),
                PmdCmd::ClearStats => self.clear_stats(),
                PmdCmd::Configure(c) => self.configure(c),
                PmdCmd::DumpFlows(tx) => {
                    let _ = tx.send(self.dump_flows());
                }
                PmdCmd::Inject { port, pkts } => self.inject(port, pkts),
                PmdCmd::Quit => keep_running = false,
            }
        }
        self.seen_req = req;
        self.publish();
        self.shared.ack.store(req, Ordering::Release);
        keep_running
    }

    fn publish(&self) {
        self.shared.counters.publish(&self.counters());
    }

    /// The thread's main loop: polls until told to quit.
    pub fn run(mut self) {
        let _ = self.shared.thread.set(std::thread::current());
        loop {
            if !self.handle_cmds() {
                break;
            }
            let n = self.poll_once();
            self.evict_if_full();
            if self.now_ms >= self.last_housekeeping_ms + HOUSEKEEPING_MS {
                self.last_housekeeping_ms = self.now_ms;
                self.housekeeping();
                self.rotate_load_interval();
            }
            self.publish();
            if n == 0 && self.config.sleep_max_us > 0 {
                // Back off while idle, doubling up to pmd-sleep-max; unpark wakes early.
                self.idle_sleep_us = (self.idle_sleep_us * 2).clamp(1, self.config.sleep_max_us);
                self.counters.sleep_us += self.idle_sleep_us;
                std::thread::park_timeout(Duration::from_micros(self.idle_sleep_us));
            } else {
                self.idle_sleep_us = 0;
            }
        }
        self.sync_stats();
        self.flush();
        self.publish();
        self.shared.exited.store(true, Ordering::Release);
    }
}

/// Credits one packet that ran its actions without a megaflow to what its
/// decision depended on (out of line: only at the flow limit).
#[cold]
#[inline(never)]
fn credit_one<H: Upcall>(handler: &H, deps: &H::Deps, pkt: &Packet, key: &FlowKey, now_ms: u64) {
    let one = FlowCounters {
        packets: 1,
        bytes: pkt.len() as u64,
        used_ms: now_ms.max(1),
        tcp_flags: key.be16_at(ofs::TCP_FLAGS),
    };
    handler.credit(deps, &one);
}

/// Takes a round's worth of upcall tokens from rx queue `rxq`'s bucket
/// (none applies to packets not from a queue).
#[inline(never)]
fn take_upcall_budget(rxqs: &mut [RxqState], rxq: usize, now_ms: u64) -> u32 {
    match rxqs.get_mut(rxq) {
        Some(r) => r.upcalls.take_up_to(BATCH_SIZE as u32, now_ms),
        None => BATCH_SIZE as u32,
    }
}

/// Returns the upcall tokens a round did not use.
#[inline(never)]
fn return_upcall_budget(rxqs: &mut [RxqState], rxq: usize, unused: u32) {
    if let Some(r) = rxqs.get_mut(rxq) {
        r.upcalls.put_back(unused);
    }
}

/// The flow-batch slot of megaflow `flow` in this round, opening one if needed.
#[inline(always)]
fn batch_slot(
    tags: &mut [BatchTag],
    epoch: u64,
    nfb: &mut usize,
    fbs: &mut [FlowBatch],
    flow: u32,
    gen: u32,
) -> usize {
    let Some(tag) = tags.get_mut(flow as usize) else {
        return NO_SLOT as usize;
    };
    if tag.epoch == epoch {
        return tag.slot as usize;
    }
    let s = *nfb;
    *nfb += 1;
    tag.epoch = epoch;
    tag.slot = s as u8;
    let fb = &mut fbs[s];
    fb.flow = flow;
    fb.gen = gen;
    fb.n = 0;
    fb.bytes = 0;
    fb.tcp_flags = 0;
    s
}

/// Runs `acts` on every packet of `pkts` (which is left empty). Packets a
/// `TunnelPop` decapsulates go to `recirc` for another datapath pass.
#[inline]
fn execute<H: Upcall>(
    acts: &[DpAction],
    pkts: &mut Batch,
    tx: &mut TxPorts,
    recirc: &mut Batch,
    handler: &H,
    c: &mut PmdCounters,
) {
    let Some(last) = acts.iter().rposition(DpAction::consumes) else {
        c.dropped += pkts.len() as u64;
        pkts.clear();
        return;
    };
    for (i, a) in acts[..=last].iter().enumerate() {
        match a {
            DpAction::Output(port) => {
                if i == last {
                    tx.enqueue_batch(*port, pkts, c);
                } else {
                    for p in pkts.packets() {
                        match p.try_clone() {
                            Some(copy) => tx.enqueue(*port, copy, c),
                            None => c.clone_failed += 1,
                        }
                    }
                }
            }
            DpAction::Userspace(what) => {
                for p in pkts.packets() {
                    handler.slow_path(p, what);
                }
                c.slow_path += pkts.len() as u64;
                if i == last {
                    pkts.clear();
                }
            }
            DpAction::TunnelPush(push) => {
                let before = pkts.len();
                pkts.retain_mut(|p| tunnel::push(p, push).is_ok());
                c.tnl_push_errors += (before - pkts.len()) as u64;
            }
            DpAction::TunnelPop(port) => {
                if i == last {
                    for p in pkts.drain() {
                        pop_to(*port, p, recirc, c);
                    }
                } else {
                    for p in pkts.packets() {
                        match p.try_clone() {
                            Some(copy) => pop_to(*port, copy, recirc, c),
                            None => c.clone_failed += 1,
                        }
                    }
                }
            }
            DpAction::Clone(inner) => {
                if i == last {
                    execute(inner, pkts, tx, recirc, handler, c);
                } else {
                    for p in pkts.packets() {
                        match p.try_clone() {
                            Some(copy) => execute_one(inner, copy, tx, recirc, handler, c),
                            None => c.clone_failed += 1,
                        }
                    }
                }
            }
            other => {
                for p in pkts.packets_mut() {
                    actions::apply(p, other);
                }
            }
        }
    }
}

/// Decapsulates `pkt` and queues it for a datapath pass as received on
/// tunnel port `port`; drops (and counts) it if its headers are bad.
#[inline]
fn pop_to(port: u32, mut pkt: Packet, recirc: &mut Batch, c: &mut PmdCounters) {
    if tunnel::pop(&mut pkt).is_err() {
        c.tnl_pop_errors += 1;
        return;
    }
    pkt.meta_mut().in_port = port;
    if recirc.push(pkt).is_err() {
        c.recirc_errors += 1;
    }
}

/// [`execute`] for one packet (a copy a `clone` made).
fn execute_one<H: Upcall>(
    acts: &[DpAction],
    mut pkt: Packet,
    tx: &mut TxPorts,
    recirc: &mut Batch,
    handler: &H,
    c: &mut PmdCounters,
) {
    let Some(last) = acts.iter().rposition(DpAction::consumes) else {
        c.dropped += 1;
        return;
    };
    for (i, a) in acts[..=last].iter().enumerate() {
        let copy = |p: &Packet, c: &mut PmdCounters| {
            let copy = p.try_clone();
            if copy.is_none() {
                c.clone_failed += 1;
            }
            copy
        };
        match a {
            DpAction::Output(port) => {
                if i == last {
                    tx.enqueue(*port, pkt, c);
                    return;
                }
                if let Some(p) = copy(&pkt, c) {
                    tx.enqueue(*port, p, c);
                }
            }
            DpAction::Userspace(what) => {
                handler.slow_path(&pkt, what);
                c.slow_path += 1;
            }
            DpAction::TunnelPush(push) => {
                if tunnel::push(&mut pkt, push).is_err() {
                    c.tnl_push_errors += 1;
                    return;
                }
            }
            DpAction::TunnelPop(port) => {
                if i == last {
                    pop_to(*port, pkt, recirc, c);
                    return;
                }
                if let Some(p) = copy(&pkt, c) {
                    pop_to(*port, p, recirc, c);
                }
            }
            DpAction::Clone(inner) => {
                if i == last {
                    execute_one(inner, pkt, tx, recirc, handler, c);
                    return;
                }
                if let Some(p) = copy(&pkt, c) {
                    execute_one(inner, p, tx, recirc, handler, c);
                }
            }
            other => actions::apply(&mut pkt, other),
        }
    }
}

/// A running PMD thread, from the control side.
pub struct PmdHandle {
    shared: Arc<PmdShared>,
    cmds: mpsc::Sender<PmdCmd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PmdHandle {
    /// Starts `pmd` on a new thread named `pmd-c<id>`.
    pub fn spawn<H: Upcall>(mut pmd: Pmd<H>, core: Option<usize>) -> std::io::Result<PmdHandle> {
        let (tx, rx) = mpsc::channel();
        pmd.cmds = Some(rx);
        let shared = pmd.shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pmd-c{:02}", pmd.shared.id))
            .spawn(move || {
                if let Some(core) = core {
                    pin_to_core(core);
                }
                pmd.run()
            })?;
        // The thread handle is also set by the thread itself; whichever is first wins.
        let _ = shared.thread.set(thread.thread().clone());
        Ok(PmdHandle {
            shared,
            cmds: tx,
            thread: Some(thread),
        })
    }

    pub fn shared(&self) -> &Arc<PmdShared> {
        &self.shared
    }

    /// Sends a command and waits until the thread has carried it out.
    pub fn request(&self, cmd: PmdCmd) {
        if self.cmds.send(cmd).is_err() {
            return;
        }
        let seq = self.shared.req.fetch_add(1, Ordering::AcqRel) + 1;
        self.shared
            .wait(|| self.shared.ack.load(Ordering::Acquire) >= seq);
    }

    pub fn counters(&self) -> PmdCounters {
        self.shared.counters()
    }

    pub fn dump_flows(&self) -> Vec<FlowDump> {
        let (tx, rx) = mpsc::channel();
        self.request(PmdCmd::DumpFlows(tx));
        rx.try_recv().unwrap_or_default()
    }

    pub fn load(&self) -> PmdLoad {
        let (tx, rx) = mpsc::channel();
        self.request(PmdCmd::RxqLoads(tx));
        rx.try_recv().unwrap_or_default()
    }

    /// Takes rx queue `qid` of `port` away from the thread.
    pub fn take_rxq(&self, port: u32, qid: usize) -> Option<Box<dyn RxQueue>> {
        let (tx, rx) = mpsc::channel();
        self.request(PmdCmd::TakeRxq {
            port,
            qid,
            reply: tx,
        });
        rx.try_recv().ok()
    }
}

impl Drop for PmdHandle {
    fn drop(&mut self) {
        self.request(PmdCmd::Quit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Pins the calling thread to one CPU (best effort: a failure leaves it unpinned).
pub fn pin_to_core(core: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write inside it,
    // and sched_setaffinity reads it for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}
