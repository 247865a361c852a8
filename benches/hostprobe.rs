//! hostprobe CPU_A CPU_B - how the host runs this VM right now, for benches/vhost_bench.sh.
//!
//! On this kind of VM the host changes under the benchmark for seconds at a time: a vCPU
//! gets a busy sibling (everything on it up to 2x slower), or the two vCPUs land far apart
//! (a cache line moving between them takes 350 ns instead of 55). The second stalls the
//! vhost-user rings, shared between the switch and the generator on the other CPU, and
//! halves the rate of any switch; /proc/stat shows neither. Every 200 ms this probe wakes
//! one real-time thread on each CPU, times a fixed piece of arithmetic on each (~50 us) and
//! 200 round trips of a cache line between them, and prints
//! `unix_time round_trip_ns alu_a_us alu_b_us` (`-` for a round trip that could not start).
//! The harness compares each window's samples with the best seen.
//!
//! Built by the harness with `rustc -O` (std only): a few libc calls by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PERIOD: Duration = Duration::from_millis(200);
const ROUND_TRIPS: u64 = 200;
const ALU_STEPS: u64 = 400_000;
/// How long one side waits for the other to wake before giving the sample up.
const MEET_TIMEOUT: Duration = Duration::from_millis(5);

#[repr(C)]
struct SchedParam {
    priority: i32,
}

extern "C" {
    fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
    fn sched_setscheduler(pid: i32, policy: i32, param: *const SchedParam) -> i32;
}
const SCHED_FIFO: i32 = 1;

/// Pins the calling thread to `cpu` at real-time priority.
fn pin(cpu: usize) -> Result<(), String> {
    let mask: [u64; 16] = std::array::from_fn(|i| if i == cpu / 64 { 1 << (cpu % 64) } else { 0 });
    let param = SchedParam { priority: 50 };
    // SAFETY: both calls read only the live locals passed (a 1024-bit CPU mask, a
    // sched_param) and act on the calling thread (pid 0).
    let (a, s) = unsafe {
        (
            sched_setaffinity(0, std::mem::size_of_val(&mask), mask.as_ptr()),
            sched_setscheduler(0, SCHED_FIFO, &param),
        )
    };
    if a != 0 || s != 0 {
        return Err(format!(
            "cannot pin to CPU {cpu} at SCHED_FIFO: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// A fixed chain of dependent multiplications: its time is the CPU's speed.
fn alu() -> u64 {
    let t = Instant::now();
    let mut x = std::hint::black_box(3u64);
    for i in 0..ALU_STEPS {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    std::hint::black_box(x);
    t.elapsed().as_micros() as u64
}

#[repr(align(64))]
struct Line(AtomicU64);

fn spin_until(line: &Line, want: u64, deadline: Instant) -> bool {
    let mut n = 0u32;
    while line.0.load(Ordering::Acquire) != want {
        n = n.wrapping_add(1);
        if n.is_multiple_of(1024) && Instant::now() > deadline {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let [a, b] = args[..] else {
        eprintln!("usage: hostprobe CPU_A CPU_B");
        std::process::exit(2);
    };
    // Sample k: both sides wake at start + k * PERIOD. The line counts: the partner
    // sets 4k+1 when awake, then the two take turns (odd: the partner's move).
    let parent = std::os::unix::process::parent_id();
    let line = Arc::new(Line(AtomicU64::new(0)));
    let alu_b = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + PERIOD;
    let partner = {
        let (line, alu_b) = (line.clone(), alu_b.clone());
        std::thread::spawn(move || {
            if let Err(e) = pin(b) {
                eprintln!("hostprobe: {e}");
                std::process::exit(1);
            }
            for k in 0u64.. {
                std::thread::sleep(
                    (start + PERIOD * k as u32).saturating_duration_since(Instant::now()),
                );
                alu_b.store(alu(), Ordering::Relaxed);
                let base = k * (2 * ROUND_TRIPS + 2);
                line.0.store(base + 1, Ordering::Release);
                let deadline = Instant::now() + MEET_TIMEOUT;
                for i in 0..ROUND_TRIPS {
                    if !spin_until(&line, base + 2 + 2 * i, deadline) {
                        break;
                    }
                    line.0.store(base + 3 + 2 * i, Ordering::Release);
                }
            }
        })
    };
    if let Err(e) = pin(a) {
        eprintln!("hostprobe: {e}");
        std::process::exit(1);
    }
    for k in 0u64.. {
        std::thread::sleep((start + PERIOD * k as u32).saturating_duration_since(Instant::now()));
        let alu_a = alu();
        let base = k * (2 * ROUND_TRIPS + 2);
        let deadline = Instant::now() + MEET_TIMEOUT;
        let mut rtt = None;
        if spin_until(&line, base + 1, deadline) {
            let t = Instant::now();
            let mut ok = true;
            for i in 0..ROUND_TRIPS {
                line.0.store(base + 2 + 2 * i, Ordering::Release);
                if !spin_until(&line, base + 3 + 2 * i, deadline + MEET_TIMEOUT) {
                    ok = false;
                    break;
                }
            }
            if ok {
                rtt = Some(t.elapsed().as_nanos() as u64 / ROUND_TRIPS);
            }
        }
        // A sample that failed leaves the partner behind: it gives up at its deadline
        // and both meet again at the next period (the counts are per sample).
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let rtt = rtt.map_or("-".to_string(), |r| r.to_string());
        println!(
            "{:.3} {rtt} {alu_a} {}",
            now.as_secs_f64(),
            alu_b.load(Ordering::Relaxed)
        );
        // Ends with the harness that started it, also when that was killed.
        if partner.is_finished() || std::os::unix::process::parent_id() != parent {
            break;
        }
    }
}
