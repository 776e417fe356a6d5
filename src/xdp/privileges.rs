//! Least privilege once the data path is set up: the process parses untrusted input for its
//! whole life, so it keeps no capability it does not use.
//!
//! Setting up needs CAP_NET_ADMIN (attach XDP), CAP_NET_RAW (AF_XDP sockets), CAP_BPF and
//! CAP_PERFMON (load the program and its BTF-typed tracepoints; CAP_SYS_ADMIN stands in for
//! both) and, for a UMEM larger than RLIMIT_MEMLOCK, CAP_IPC_LOCK. A running server needs none
//! of them, as measured on Linux 6.18 with every capability gone: the rings, the queue flags
//! and the cookie key table are memory-mapped; the XSKMAP, served-address and counter maps are
//! read and written through file descriptors already open, which `bpf()` checks no capability
//! for; the copy-mode `sendto` kick, `poll` with need_wakeup, `getifaddrs`, accepting on the
//! metrics and stats sockets and closing the bpf_link (which detaches the program) check none
//! either. Before Linux 6.5 `bpf()` refused every command without CAP_BPF while
//! `kernel.unprivileged_bpf_disabled` is set (Debian's default), map updates and reads
//! included: there CAP_BPF is kept ([`needed_after_setup`]).
//!
//! So [`drop_privileges`] drops everything else: the effective, permitted, inheritable and
//! ambient sets, the bounding set too when the process may change it (CAP_SETPCAP), and sets
//! `PR_SET_NO_NEW_PRIVS`, so that no `execve` gives anything back. With a [`User`] it first
//! switches to that account (`setgroups`, `setgid`, `setuid`, in that order; a capability
//! still needed survives the switch through `PR_SET_KEEPCAPS` and is raised again alone).
//! Without one the process stays uid 0, which still owns root's files: give a user where it
//! matters.
//!
//! Linux keeps credentials per thread, and a thread starts with its creator's: a capability
//! dropped by one thread stays with the threads that already run. So the drop comes after
//! setup but before the first thread is started ([`crate::xdp::Server::start_then`]), and
//! every worker inherits the dropped state.

use std::ffi::{CStr, CString};
use std::io;

/// The first line of a `/proc/PID/status` field, after its name and colon.
fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// A thread's credentials as `/proc/PID/status` (or `/proc/thread-self/status`) shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// Real, effective, saved and filesystem user ids.
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem group ids.
    pub gid: [u32; 4],
    /// Effective capabilities (bit `n` is capability `n` of linux/capability.h).
    pub cap_eff: u64,
    /// Permitted capabilities.
    pub cap_prm: u64,
    /// Inheritable capabilities.
    pub cap_inh: u64,
    /// The bounding set.
    pub cap_bnd: u64,
    /// Ambient capabilities.
    pub cap_amb: u64,
    /// Whether `PR_SET_NO_NEW_PRIVS` is set.
    pub no_new_privs: bool,
}

impl Credentials {
    /// Parses the text of a `/proc/PID/status` file; `None` if a field is missing.
    pub fn parse(status: &str) -> Option<Credentials> {
        let ids = |name| -> Option<[u32; 4]> {
            let v: Vec<u32> = field(status, name)?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            v.try_into().ok()
        };
        let caps = |name| u64::from_str_radix(field(status, name)?, 16).ok();
        Some(Credentials {
            uid: ids("Uid")?,
            gid: ids("Gid")?,
            cap_eff: caps("CapEff")?,
            cap_prm: caps("CapPrm")?,
            cap_inh: caps("CapInh")?,
            cap_bnd: caps("CapBnd")?,
            cap_amb: caps("CapAmb")?,
            no_new_privs: field(status, "NoNewPrivs")? == "1",
        })
    }

    /// The calling thread's credentials.
    pub fn of_this_thread() -> io::Result<Credentials> {
        let text = std::fs::read_to_string("/proc/thread-self/status")?;
        Credentials::parse(&text)
            .ok_or_else(|| io::Error::other("/proc/thread-self/status lacks a credential field"))
    }
}

/// The account a server switches to after setup (`serve --user NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Every group it is a member of (`/etc/group`), the primary one included.
    pub groups: Vec<u32>,
}

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeDropError {
    /// No such user.
    #[error("--user {0}: no such user (see `getent passwd`)")]
    UnknownUser(String),
    /// The user database could not be read.
    #[error("--user {name}: looking the user up: {source}")]
    Lookup {
        /// The name.
        name: String,
        /// What getpwnam_r said.
        source: io::Error,
    },
    /// A step of the drop failed.
    #[error("dropping privileges: {step}: {source}{hint}", hint = drop_hint(source))]
    Step {
        /// The call that failed.
        step: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The drop left something behind (a check after the fact).
    #[error("dropping privileges: {0}")]
    Left(String),
}

fn drop_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => " (switching users needs root, or CAP_SETUID and CAP_SETGID)",
        _ => "",
    }
}

fn step(name: &'static str, rc: libc::c_int) -> Result<(), PrivilegeDropError> {
    if rc == 0 {
        return Ok(());
    }
    Err(PrivilegeDropError::Step {
        step: name,
        source: io::Error::last_os_error(),
    })
}

impl User {
    /// Looks `name` up in the user database (getpwnam_r, then getgrouplist).
    pub fn lookup(name: &str) -> Result<User, PrivilegeDropError> {
        let unknown = || PrivilegeDropError::UnknownUser(name.to_string());
        let cname = CString::new(name).map_err(|_| unknown())?;
        // SAFETY: passwd is plain C data; all zeroes is a valid value for getpwnam_r to fill.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: the name is NUL-terminated, `buf` is
        // writable for its length, `pw` and `found` are writable; strings in `pw` point into
        // `buf`, which outlives their use below.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc != 0 {
            return Err(PrivilegeDropError::Lookup {
                name: name.to_string(),
                source: io::Error::from_raw_os_error(rc),
            });
        }
        if found.is_null() {
            return Err(unknown());
        }
        // SAFETY: getpwnam_r succeeded, so pw_name is a NUL-terminated string in `buf`.
        let pw_name = unsafe { CStr::from_ptr(pw.pw_name) };
        let mut groups = vec![0 as libc::gid_t; 64];
        for _ in 0..8 {
            let mut n = groups.len() as libc::c_int;
            // SAFETY: `groups` is writable for `n` entries; getgrouplist writes at most `n`
            // and sets `n` to the number it found.
            let rc = unsafe {
                libc::getgrouplist(pw_name.as_ptr(), pw.pw_gid, groups.as_mut_ptr(), &mut n)
            };
            if rc >= 0 {
                groups.truncate(n.max(0) as usize);
                return Ok(User {
                    name: name.to_string(),
                    uid: pw.pw_uid,
                    gid: pw.pw_gid,
                    groups,
                });
            }
            groups.resize((n.max(0) as usize).max(groups.len() * 2), 0);
        }
        Err(PrivilegeDropError::Lookup {
            name: name.to_string(),
            source: io::Error::other("its group list keeps growing"),
        })
    }
}

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: one of the two 32-bit halves of the sets.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two `CapData`.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// CAP_SETPCAP, which `PR_CAPBSET_DROP` needs.
const CAP_SETPCAP: u32 = 8;
/// CAP_BPF (Linux 5.8).
const CAP_BPF: u32 = 39;

/// Sets the calling thread's effective and permitted sets to `keep`, and its inheritable set
/// to nothing.
fn set_capabilities(keep: u64) -> Result<(), PrivilegeDropError> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [keep as u32, (keep >> 32) as u32].map(|half| CapData {
        effective: half,
        permitted: half,
        inheritable: 0,
    });
    // SAFETY: capset reads one header and, for version 3, two data structs, all valid and
    // initialised for the whole call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    step("capset", rc as libc::c_int)
}

/// Drops every capability but those of `keep` from the bounding set (needs CAP_SETPCAP,
/// which the caller checked).
fn limit_bounding_set(keep: u64) -> Result<(), PrivilegeDropError> {
    for cap in (0..64u32).filter(|c| keep & (1 << c) == 0) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } < 0 {
            // EINVAL: past the last capability this kernel knows.
            break;
        }
        // SAFETY: as above.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        step("PR_CAPBSET_DROP", rc)?;
    }
    Ok(())
}

/// Switches the process to `user`: supplementary groups, then group, then user (the user
/// last: once it is gone, so is the right to change the groups). A no-op when the process is
/// that user already (systemd's `User=`).
fn switch_user(user: &User) -> Result<(), PrivilegeDropError> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if (uid, gid) == (user.uid, user.gid) {
        return Ok(());
    }
    // SAFETY: `groups` is valid for its length; the process has one thread (see the module
    // docs), so glibc's set*id broadcast has nobody else to reach.
    step("setgroups", unsafe {
        libc::setgroups(user.groups.len(), user.groups.as_ptr())
    })?;
    // SAFETY: plain id-changing calls.
    step("setgid", unsafe { libc::setgid(user.gid) })?;
    // SAFETY: as above.
    step("setuid", unsafe { libc::setuid(user.uid) })?;
    // SAFETY: as above; it must fail, or root could be taken back.
    if user.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(PrivilegeDropError::Left(format!(
            "after switching to {}, setuid(0) still succeeds",
            user.name
        )));
    }
    Ok(())
}

/// Whether a kernel release (`uname -r`, e.g. `6.1.0-18-amd64`) is older than `major.minor`.
/// An unreadable release counts as old.
fn release_before(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) < (major, minor),
        _ => true,
    }
}

/// The running kernel's release.
fn kernel_release() -> String {
    // SAFETY: utsname is plain C data; all zeroes is a valid value for uname to fill.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is writable; on success `release` is NUL-terminated.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: as above.
    unsafe { CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The capabilities a running server still needs (bit `n`: capability `n`): none, but
/// CAP_BPF on kernels before 6.5 with `kernel.unprivileged_bpf_disabled` set, whose `bpf()`
/// refuses map reads and updates without it (see the module docs).
pub fn needed_after_setup() -> u64 {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map_or(true, |v| v.trim() != "0");
    if disabled && release_before(&kernel_release(), 6, 5) {
        1 << CAP_BPF
    } else {
        0
    }
}

/// The calling thread's credentials before and after [`drop_privileges`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// What setup ran with.
    pub before: Credentials,
    /// What the server runs with.
    pub after: Credentials,
}

/// Drops every privilege of the process but [`needed_after_setup`], switching to `user`
/// first if given. Call it once setup is done and before any thread is started (see the
/// module docs).
pub fn drop_privileges(user: Option<&User>) -> Result<Dropped, PrivilegeDropError> {
    let read = || {
        Credentials::of_this_thread().map_err(|source| PrivilegeDropError::Step {
            step: "reading /proc/thread-self/status",
            source,
        })
    };
    let before = read()?;
    // What is still needed and held: a capability the process never had cannot be kept.
    let keep = needed_after_setup() & before.cap_prm;
    // SAFETY: prctl with integer arguments only.
    step("PR_SET_NO_NEW_PRIVS", unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    })?;
    // Without CAP_SETPCAP (systemd's CapabilityBoundingSet= already limited it) the bounding
    // set stays: with no_new_privs no execve can raise anything in it.
    if before.cap_eff & (1 << CAP_SETPCAP) != 0 {
        limit_bounding_set(keep)?;
    }
    // SAFETY: prctl with integer arguments only.
    step("PR_CAP_AMBIENT_CLEAR_ALL", unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    if let Some(user) = user {
        // setuid from root empties the permitted set unless told to keep it.
        let keepcaps = |on: libc::c_ulong| {
            // SAFETY: prctl with integer arguments only.
            step("PR_SET_KEEPCAPS", unsafe {
                libc::prctl(libc::PR_SET_KEEPCAPS, on, 0, 0, 0)
            })
        };
        if keep != 0 {
            keepcaps(1)?;
        }
        switch_user(user)?;
        if keep != 0 {
            keepcaps(0)?;
        }
    }
    set_capabilities(keep)?;
    let after = read()?;
    if after.cap_eff != keep || after.cap_prm != keep || after.cap_inh | after.cap_amb != 0 {
        return Err(PrivilegeDropError::Left(format!(
            "wanted CapEff and CapPrm {keep:016x}, got CapEff {:016x} CapPrm {:016x} CapInh {:016x} CapAmb {:016x}",
            after.cap_eff, after.cap_prm, after.cap_inh, after.cap_amb
        )));
    }
    if !after.no_new_privs {
        return Err(PrivilegeDropError::Left("NoNewPrivs is not set".into()));
    }
    Ok(Dropped { before, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_STATUS: &str = "Name:\txdptcp\nUmask:\t0022\nState:\tS (sleeping)\n\
        Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t0 \nNoNewPrivs:\t0\n\
        CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n\
        CapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\nSeccomp:\t0\n";

    #[test]
    fn a_status_file_gives_ids_capability_sets_and_no_new_privs() {
        let c = Credentials::parse(ROOT_STATUS).unwrap();
        assert_eq!(c.uid, [0; 4]);
        assert_eq!(c.gid, [0; 4]);
        assert_eq!(c.cap_eff, 0x1fffeffffff);
        assert_eq!(c.cap_bnd, 0x1fffeffffff);
        assert_eq!((c.cap_inh, c.cap_amb), (0, 0));
        assert!(!c.no_new_privs);
        let dropped = ROOT_STATUS
            .replace("Uid:\t0\t0\t0\t0", "Uid:\t65534\t65534\t65534\t65534")
            .replace("CapPrm:\t000001fffeffffff", "CapPrm:\t0000000000000000")
            .replace("CapEff:\t000001fffeffffff", "CapEff:\t0000000000000000")
            .replace("NoNewPrivs:\t0", "NoNewPrivs:\t1");
        let d = Credentials::parse(&dropped).unwrap();
        assert_eq!(d.uid, [65534; 4]);
        assert!(d.no_new_privs);
        assert_eq!((d.cap_eff, d.cap_prm), (0, 0));
    }

    #[test]
    fn a_status_file_missing_a_field_or_with_a_bad_one_is_refused() {
        assert_eq!(Credentials::parse(""), None);
        let no_amb = ROOT_STATUS.replace("CapAmb:\t0000000000000000\n", "");
        assert_eq!(Credentials::parse(&no_amb), None);
        let short_uid = ROOT_STATUS.replace("Uid:\t0\t0\t0\t0", "Uid:\t0\t0");
        assert_eq!(Credentials::parse(&short_uid), None);
        let bad_hex = ROOT_STATUS.replace("CapEff:\t000001fffeffffff", "CapEff:\tzz");
        assert_eq!(Credentials::parse(&bad_hex), None);
    }

    #[test]
    fn kernels_before_6_5_are_told_apart_by_their_release() {
        assert!(release_before("6.1.0-18-amd64", 6, 5));
        assert!(release_before("5.15.0", 6, 5));
        assert!(!release_before("6.5.0", 6, 5));
        assert!(!release_before("6.18.44-fc-v1300", 6, 5));
        assert!(!release_before("7.0", 6, 5));
        assert!(release_before("", 6, 5), "unreadable counts as old");
        assert!(release_before("linux", 6, 5));
    }

    #[test]
    fn this_threads_credentials_are_readable() {
        let c = Credentials::of_this_thread().unwrap();
        // SAFETY: geteuid has no preconditions.
        assert_eq!(c.uid[1], unsafe { libc::geteuid() });
    }

    #[test]
    fn root_is_found_with_its_group_and_a_made_up_name_is_not() {
        let root = User::lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0), "{root:?}");
        let e = User::lookup("no-such-user-xdptcp").unwrap_err();
        assert!(matches!(e, PrivilegeDropError::UnknownUser(_)), "{e}");
        assert!(e.to_string().contains("no such user"), "{e}");
    }

    /// Whether a test that needs root may run: root runs it; under CI anything else fails,
    /// elsewhere it says it is skipped.
    fn as_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: needs root");
        false
    }

    /// Runs `f` in a forked child, which has one thread (so the drop reaches all of it) and
    /// leaves the test process its privileges; returns the child's exit code.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child runs `f` and leaves with _exit, never returning into the test
        // harness; glibc keeps malloc usable in the child of a threaded process.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99);
            // SAFETY: ends the child at once, without running the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is writable.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "child status {status:#x}");
        libc::WEXITSTATUS(status)
    }

    /// What every dropped process must show: the capabilities still needed and nothing else,
    /// no_new_privs, and no way to a privileged socket or to another uid. Returns the number
    /// of the first check that fails, 0 if none does.
    fn check_dropped(c: &Credentials) -> i32 {
        let needed = needed_after_setup();
        if c.cap_eff != needed || c.cap_prm != needed || c.cap_inh | c.cap_amb != 0 {
            return 10;
        }
        if c.cap_bnd & !needed != 0 {
            return 11;
        }
        if !c.no_new_privs {
            return 12;
        }
        // SAFETY: plain socket(2); closed right away if it was made.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if raw >= 0 {
            // SAFETY: the fd just made.
            unsafe { libc::close(raw) };
            return 13;
        }
        // SAFETY: plain id-changing call; it must fail.
        if unsafe { libc::setuid(4242) } == 0 {
            return 14;
        }
        0
    }

    #[test]
    fn root_dropped_to_nobody_holds_no_capability_and_cannot_become_root_again() {
        if !as_root() {
            return;
        }
        let nobody = User::lookup("nobody").unwrap();
        let code = in_child(|| {
            let c = match drop_privileges(Some(&nobody)) {
                Ok(d) => d.after,
                Err(_) => return 1,
            };
            if c.uid != [nobody.uid; 4] || c.gid != [nobody.gid; 4] {
                return 2;
            }
            // SAFETY: plain id-changing call; it must fail.
            if unsafe { libc::setuid(0) } == 0 {
                return 3;
            }
            // Root's files are root's again: /etc/shadow is 0640 root:shadow.
            if std::fs::File::open("/etc/shadow").is_ok() {
                return 4;
            }
            check_dropped(&c)
        });
        assert_eq!(code, 0, "failed check {code} (see in_child's closure)");
    }

    #[test]
    fn root_without_a_user_stays_uid_0_but_holds_no_capability() {
        if !as_root() {
            return;
        }
        let code = in_child(|| {
            let c = match drop_privileges(None) {
                Ok(d) => d.after,
                Err(_) => return 1,
            };
            if c.uid != [0; 4] {
                return 2;
            }
            check_dropped(&c)
        });
        assert_eq!(code, 0, "failed check {code} (see in_child's closure)");
    }
}
