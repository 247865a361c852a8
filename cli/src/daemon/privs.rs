//! Least privilege: `fvs-vswitchd --user USER[:GROUP]` becomes USER after
//! opening its database and log, keeping only the capabilities the switch
//! needs while it runs:
//!
//! - `CAP_NET_ADMIN`: create TAP/internal devices (TUNSETIFF), bring links
//!   up, set MTU and promiscuous mode, delete its devices on exit;
//! - `CAP_NET_RAW`: AF_PACKET sockets of `system` and af_packet ports;
//! - `CAP_IPC_LOCK`: VFIO maps the packet pool for DMA, which the kernel
//!   counts against RLIMIT_MEMLOCK unless the process has it;
//!
//! Not kept: `CAP_SYS_NICE` (nothing in fvs raises a thread's priority or
//! moves another process's pages; PMD threads pin only themselves, which
//! needs no capability) and `CAP_NET_BIND_SERVICE` (OVS keeps it for
//! OpenFlow/OVSDB listeners below port 1024; fvs listens on TCP only when
//! told to, on the OpenFlow port 6653 by default). Add one to [`KEPT`] if a
//! feature comes to need it.
//!
//! It drops every other capability from the effective, permitted,
//! inheritable, ambient and bounding sets, drops supplementary groups and
//! sets `PR_SET_NO_NEW_PRIVS`. Capabilities and credentials are per thread
//! on Linux, so this runs while the process has a single thread (checked):
//! every thread started later inherits the reduced set.

use std::ffi::{CStr, CString};

/// Capabilities kept after the switch (numbers from linux/capability.h).
pub const KEPT: [(u32, &str); 3] = [
    (12, "CAP_NET_ADMIN"),
    (13, "CAP_NET_RAW"),
    (14, "CAP_IPC_LOCK"),
];

/// The bit mask of [`KEPT`] (as /proc/PID/status prints CapEff).
pub fn kept_mask() -> u64 {
    KEPT.iter().fold(0, |m, (c, _)| m | 1u64 << c)
}

/// Whom to become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

fn buf_size() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_GETPW_R_SIZE_MAX) };
    usize::try_from(n).unwrap_or(0).max(16 * 1024)
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?}: contains a NUL byte"))
}

/// (uid, primary gid) of `user`.
fn lookup_user(user: &str) -> Result<(u32, u32), String> {
    let name = cstring(user)?;
    let mut buf = vec![0 as libc::c_char; buf_size()];
    // SAFETY: plain C struct, filled by getpwnam_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is the
    // length of `buf`; the strings in `pwd` point into `buf`, which we do
    // not read (only the ids).
    let e = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut res,
        )
    };
    if e != 0 {
        return Err(format!(
            "--user: cannot look up user {user} ({})",
            std::io::Error::from_raw_os_error(e)
        ));
    }
    if res.is_null() {
        return Err(format!("--user: user {user} not found"));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

/// (gid, member names) of `group`.
fn lookup_group(group: &str) -> Result<(u32, Vec<String>), String> {
    let name = cstring(group)?;
    let mut buf = vec![0 as libc::c_char; buf_size()];
    // SAFETY: plain C struct, filled by getgrnam_r.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in lookup_user; gr_mem points into `buf`, read below
    // while `buf` is alive.
    let e = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut res,
        )
    };
    if e != 0 {
        return Err(format!(
            "--user: cannot look up group {group} ({})",
            std::io::Error::from_raw_os_error(e)
        ));
    }
    if res.is_null() {
        return Err(format!("--user: group {group} not found"));
    }
    let mut members = Vec::new();
    let mut p = grp.gr_mem;
    // SAFETY: gr_mem is a NULL-terminated array of C strings inside `buf`.
    unsafe {
        while !p.is_null() && !(*p).is_null() {
            members.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
            p = p.add(1);
        }
    }
    Ok((grp.gr_gid, members))
}

/// Parses `USER[:GROUP]` as OVS does: the group defaults to the user's
/// primary group; another group must list the user as a member.
pub fn resolve(spec: &str) -> Result<Target, String> {
    let spec = spec.trim();
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g.trim()).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err("--user: missing user name".into());
    }
    let (uid, mut gid) = lookup_user(user)?;
    if let Some(g) = group {
        let (ggid, members) = lookup_group(g)?;
        if ggid != gid && !members.iter().any(|m| m == user) {
            return Err(format!(
                "--user: invalid --user option {spec} (user {user} is not in group {g})"
            ));
        }
        gid = ggid;
    }
    Ok(Target {
        user: user.to_string(),
        uid,
        gid,
    })
}

/// Changes the owner of `path` to the target (for files the daemon made
/// as root and keeps using as USER).
pub fn chown(path: &std::path::Path, t: &Target) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(t.uid), Some(t.gid)).map_err(|e| {
        format!(
            "{}: cannot change owner to {} ({e})",
            path.display(),
            t.user
        )
    })
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capset(effective: u64, permitted: u64) -> std::io::Result<()> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: 0,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads a version-3 header and two data structs, which
    // are laid out as the kernel's (repr(C)) and live across the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// (effective, permitted) of the calling thread.
fn capget() -> std::io::Result<(u64, u64)> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget fills two data structs laid out as the kernel's.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | u64::from(hi) << 32;
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn check(what: &str, r: libc::c_int) -> Result<(), String> {
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "--user: {what} failed ({})",
            std::io::Error::last_os_error()
        ))
    }
}

/// Becomes `t`, keeping only [`KEPT`]. Must run before any thread starts.
pub fn drop_to(t: &Target) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("--user: only root can use --user option".into());
    }
    if threads() != 1 {
        return Err(format!(
            "--user: {} threads exist; credentials must change before any starts",
            threads()
        ));
    }
    let keep = kept_mask();
    let last_cap: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    // Keep the permitted set across the uid change (cleared otherwise).
    // SAFETY: prctl with integer arguments only.
    check("PR_SET_KEEPCAPS", unsafe {
        libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0)
    })?;
    // The bounding set: nothing outside KEPT can ever come back, not even
    // through an exec'ed file with capabilities. Needs CAP_SETPCAP, so it
    // comes first.
    for cap in 0..=last_cap {
        if keep & (1u64 << cap) == 0 {
            // SAFETY: prctl with integer arguments only.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                return check(&format!("PR_CAPBSET_DROP {cap}"), r);
            }
        }
    }
    // SAFETY: an empty list; no pointer is read.
    check("setgroups", unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: integer arguments only (glibc applies them to every thread).
    check("setresgid", unsafe { libc::setresgid(t.gid, t.gid, t.gid) })?;
    // SAFETY: as above.
    check("setresuid", unsafe { libc::setresuid(t.uid, t.uid, t.uid) })?;
    capset(keep, keep).map_err(|e| format!("--user: capset failed ({e})"))?;
    // SAFETY: prctl with integer arguments only.
    check("PR_CAP_AMBIENT_CLEAR_ALL", unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    // SAFETY: prctl with integer arguments only.
    check("PR_SET_KEEPCAPS", unsafe {
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0)
    })?;
    // SAFETY: prctl with integer arguments only.
    check("PR_SET_NO_NEW_PRIVS", unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    })?;
    // Verify rather than trust return codes ("Setuid Demystified", as OVS).
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: getresuid/getresgid write three ids to valid pointers.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    if [r, e, s] != [t.uid; 3] {
        return Err(format!("--user: uid is {r}/{e}/{s} after the switch"));
    }
    // SAFETY: as above.
    unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
    if [r, e, s] != [t.gid; 3] {
        return Err(format!("--user: gid is {r}/{e}/{s} after the switch"));
    }
    // SAFETY: a zero-sized query; no pointer is written.
    if unsafe { libc::getgroups(0, std::ptr::null_mut()) } != 0 {
        return Err("--user: supplementary groups remain after the switch".into());
    }
    let (eff, prm) = capget().map_err(|e| format!("--user: capget failed ({e})"))?;
    if eff != keep || prm != keep {
        return Err(format!(
            "--user: capabilities are {eff:#x}/{prm:#x} after the switch, want {keep:#x}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_mask_is_the_three_capabilities() {
        assert_eq!(kept_mask(), 0x0000_0000_0000_7000);
    }

    #[test]
    fn resolve_users_and_groups() {
        let root = resolve("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(resolve("root:root").unwrap(), root);
        assert!(resolve("no-such-user-fvs")
            .unwrap_err()
            .contains("not found"));
        assert!(resolve(":root").unwrap_err().contains("missing user"));
        assert!(resolve("root:no-such-group-fvs")
            .unwrap_err()
            .contains("group no-such-group-fvs not found"));
    }
}
