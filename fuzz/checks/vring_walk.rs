// The descriptor chain walker (`vring::walk_chain`, `walk_chain_from`)
// over synthetic guest memory built from the input: a descriptor table,
// indirect tables and buffers anywhere in one 16 KiB region.
//
// Every segment the walker gives must lie inside guest memory and be the
// one a model of the split-ring rules (below, from the virtio spec and the
// walker's documented bounds) expects; the walk's outcome must be the
// model's. And "descriptors are read once from shared memory, never
// twice": after each segment the target overwrites (in the shared memory,
// through the file behind it) every descriptor already read that the model
// does not read again; a walker that read a descriptor a second time
// (flags or `next` after the callback, say) would then see other values and
// part from the model. The head descriptor handed to `walk_chain_from` is
// never written to the table at all (the table holds garbage in its slot),
// so reading it from the table would be seen as well.
//
// Shared by the fuzz target (fuzz/fuzz_targets/vring_walk.rs) and the replay of
// the corpus and crash reproducers in the crate's tests (`include!`d).
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, OnceLock};

use fvs_ports::vhost::memory::{memfd, GuestMemory};
use fvs_ports::vhost::msg::{MemRegion, VringAddr};
use fvs_ports::vhost::vring::{
    walk_chain, walk_chain_from, Desc, Ring, RingError, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE,
    MAX_INDIRECT,
};

/// Guest memory: guest physical addresses [0, MEM).
const MEM: usize = 16 << 10;
/// The frontend's address of guest physical 0 (ring addresses use these).
const UVA: u64 = 0x7f00_0000;

struct Guest {
    file: File,
    mem: Arc<GuestMemory>,
    base: usize,
}

fn guest() -> &'static Guest {
    static G: OnceLock<Guest> = OnceLock::new();
    G.get_or_init(|| {
        let fd = memfd("vring-fuzz", MEM as u64).expect("memfd");
        let file = File::from(fd.try_clone().expect("dup"));
        let region = MemRegion {
            gpa: 0,
            size: MEM as u64,
            uva: UVA,
            mmap_offset: 0,
        };
        let mem = Arc::new(GuestMemory::map(&[region], &[fd]).expect("map"));
        let base = mem.gpa(0, 1, &mut 0).expect("mapped") as usize;
        Guest { file, mem, base }
    })
}

fn desc_at(img: &[u8], at: usize) -> Desc {
    let b = &img[at..at + 16];
    Desc {
        addr: u64::from_le_bytes(b[0..8].try_into().unwrap()),
        len: u32::from_le_bytes(b[8..12].try_into().unwrap()),
        flags: u16::from_le_bytes(b[12..14].try_into().unwrap()),
        next: u16::from_le_bytes(b[14..16].try_into().unwrap()),
    }
}

fn in_mem(addr: u64, len: u64) -> bool {
    addr < MEM as u64 && len <= MEM as u64 - addr
}

/// What the model saw: the descriptor reads (their guest offsets; `None` for
/// the head given by the caller), the segments (guest address, length,
/// writable, index of the read that gave it) and the outcome.
#[derive(Default)]
struct Model {
    reads: Vec<Option<usize>>,
    segs: Vec<(u64, u32, bool, usize)>,
}

/// The split-ring walk on a snapshot of guest memory. The descriptor table
/// is at guest address 0, `size` entries.
fn model(
    img: &[u8],
    size: u32,
    head: Option<u16>,
    first: Desc,
    indirect_ok: bool,
    stop_after: usize,
) -> (Model, Result<(), RingError>) {
    let mut m = Model::default();
    let r = (|| {
        let mut table: Option<u64> = None;
        let mut len = size;
        let mut idx = 0u32;
        let mut seen = 0u32;
        let mut given = Some(first);
        if let Some(h) = head {
            if u32::from(h) >= size {
                return Err(RingError::HeadOutOfRange {
                    head: h,
                    size: size as u16,
                });
            }
            given = None;
            idx = u32::from(h);
        }
        loop {
            let d = match (given.take(), table) {
                (Some(d), _) => {
                    m.reads.push(None);
                    d
                }
                (None, None) => {
                    let at = 16 * idx as usize;
                    m.reads.push(Some(at));
                    desc_at(img, at)
                }
                (None, Some(t)) => {
                    let at = (t + 16 * u64::from(idx)) as usize;
                    m.reads.push(Some(at));
                    desc_at(img, at)
                }
            };
            seen += 1;
            if seen > len {
                return Err(RingError::Loop(len));
            }
            if d.flags & DESC_F_INDIRECT != 0 {
                if table.is_some() {
                    return Err(RingError::NestedIndirect);
                }
                if !indirect_ok {
                    return Err(RingError::IndirectNotNegotiated);
                }
                if d.flags & DESC_F_NEXT != 0 {
                    return Err(RingError::IndirectWithNext);
                }
                if d.len == 0 || d.len % 16 != 0 || d.len / 16 > MAX_INDIRECT {
                    return Err(RingError::BadIndirectLen(d.len));
                }
                if !in_mem(d.addr, u64::from(d.len)) {
                    return Err(RingError::BadAddress {
                        addr: d.addr,
                        len: d.len,
                    });
                }
                table = Some(d.addr);
                len = d.len / 16;
                idx = 0;
                seen = 0;
                continue;
            }
            if d.len > 0 {
                if !in_mem(d.addr, u64::from(d.len)) {
                    return Err(RingError::BadAddress {
                        addr: d.addr,
                        len: d.len,
                    });
                }
                m.segs.push((
                    d.addr,
                    d.len,
                    d.flags & DESC_F_WRITE != 0,
                    m.reads.len() - 1,
                ));
                if m.segs.len() == stop_after {
                    return Ok(());
                }
            }
            if d.flags & DESC_F_NEXT == 0 {
                return Ok(());
            }
            if u32::from(d.next) >= len {
                return Err(RingError::NextOutOfRange { next: d.next, len });
            }
            idx = u32::from(d.next);
        }
    })();
    (m, r)
}

fn overlaps(a: usize, b: usize) -> bool {
    a < b + 16 && b < a + 16
}

/// Runs one input; panics on a finding.
pub fn check(data: &[u8]) {
    let Some((ctl, img)) = data.split_first_chunk::<20>() else {
        return;
    };
    let g = guest();
    let size = 1u32 << (ctl[0] % 8);
    let indirect_ok = ctl[1] & 1 != 0;
    let from_head = ctl[1] & 2 != 0;
    // Stop the walk (the callback says so) after this many segments; 0: never.
    let stop_after = usize::from(ctl[1] >> 4);
    let head = u16::from_le_bytes([ctl[2], ctl[3]]) % (size as u16 * 2);
    let first = desc_at(&ctl[4..20], 0);

    let mut snap = vec![0u8; MEM];
    let n = img.len().min(MEM);
    snap[..n].copy_from_slice(&img[..n]);
    if !from_head {
        // The caller read the head already: its slot in the table holds
        // something else, which the walker must not look at for it.
        if u32::from(head) < size {
            let at = 16 * usize::from(head);
            for b in &mut snap[at..at + 16] {
                *b ^= 0xa5;
            }
        }
    }
    g.file.write_all_at(&snap, 0).expect("write guest memory");

    let addr = VringAddr {
        index: 0,
        flags: 0,
        desc: UVA,
        used: UVA + 0x3000,
        avail: UVA + 0x2000,
        log: 0,
    };
    let ring = Ring::new(g.mem.clone(), &addr, size).expect("ring");
    let (m, want) = model(
        &snap,
        size,
        from_head.then_some(head),
        first,
        indirect_ok,
        stop_after,
    );

    let mut got = 0usize;
    let mut scribbled = vec![false; m.reads.len()];
    let mut hint = 0usize;
    let mut cb = |s: fvs_ports::vhost::vring::Seg| -> Result<bool, RingError> {
        let k = got;
        got += 1;
        let &(a, l, w, read) = m
            .segs
            .get(k)
            .unwrap_or_else(|| panic!("segment {k} the model does not have"));
        assert_eq!(
            (s.ptr as usize, s.len, s.write),
            (g.base + a as usize, l, w),
            "segment {k}"
        );
        assert!(s.ptr as usize >= g.base && s.ptr as usize + s.len as usize <= g.base + MEM);
        // Scribble over every descriptor read so far that is not read again.
        let later = &m.reads[read + 1..];
        for (done, at) in scribbled.iter_mut().zip(&m.reads).take(read + 1) {
            let Some(at) = *at else { continue };
            if *done || later.iter().flatten().any(|&j| overlaps(at, j)) {
                continue;
            }
            *done = true;
            let garbage: Vec<u8> = snap[at..at + 16].iter().map(|b| !b).collect();
            g.file.write_all_at(&garbage, at as u64).expect("scribble");
        }
        Ok(got != stop_after)
    };
    let r = if from_head {
        walk_chain(&ring, head, indirect_ok, &mut hint, &mut cb)
    } else {
        walk_chain_from(&ring, first, indirect_ok, &mut hint, &mut cb)
    };
    assert_eq!(r, want, "outcome");
    assert_eq!(got, m.segs.len(), "segments");
}
