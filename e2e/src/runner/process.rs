//! Running a container as a local process: the pod's network namespace (netns mode), its own
//! mount and UTS namespaces (volumes bind-mounted at their `mountPath`, optional read-only
//! root, hostname = pod name), the
//! pod's user and groups, a cleared environment, its own process group (signals reach all of
//! it), output appended to a log file, and SIGKILL if the runner dies (no leaked pods).

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

#[derive(Debug, Clone)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    pub identity: Identity,
    pub hostname: String,
    /// The pod's network namespace (`/run/netns/<name>`); `None`: the host's network.
    pub netns: Option<PathBuf>,
    pub read_only_root: bool,
    pub no_new_privs: bool,
    pub log: PathBuf,
}

fn cstr(s: impl AsRef<std::ffi::OsStr>) -> Result<CString> {
    Ok(CString::new(s.as_ref().as_bytes())?)
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Mount points must exist before the child mounts onto them. A target inside another
/// volume is created inside that volume's host directory; any other is created on the host
/// (an empty directory, or an empty file for a file mount), where it stays, unused.
pub fn prepare_mount_points(mounts: &mut [Mount]) -> Result<()> {
    mounts.sort_by_key(|m| m.target.components().count());
    for i in 0..mounts.len() {
        let (before, rest) = mounts.split_at(i);
        let m = &rest[0];
        let point = before
            .iter()
            .rev()
            .find_map(|outer| {
                m.target
                    .strip_prefix(&outer.target)
                    .ok()
                    .filter(|r| !r.as_os_str().is_empty())
                    .map(|r| outer.source.join(r))
            })
            .unwrap_or_else(|| m.target.clone());
        let is_dir = std::fs::metadata(&m.source)
            .with_context(|| format!("mount source {}", m.source.display()))?
            .is_dir();
        if is_dir {
            std::fs::create_dir_all(&point)
                .with_context(|| format!("mount point {}", point.display()))?;
        } else if std::fs::symlink_metadata(&point).is_err() {
            if let Some(p) = point.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::File::create(&point)
                .with_context(|| format!("mount point {}", point.display()))?;
        }
    }
    Ok(())
}

/// Starts the process. The caller has run [`prepare_mount_points`].
pub fn spawn(l: &Launch) -> Result<Child> {
    if l.argv.is_empty() {
        bail!("empty command");
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&l.log)
        .with_context(|| format!("log file {}", l.log.display()))?;
    // Mount sources are opened in the child right after it enters its namespace (a bind
    // mount's source must be in the caller's namespace), onto fixed descriptor numbers, and
    // mounted from /proc/self/fd/N: so a mount over e.g. /tmp cannot hide a later source.
    const FD_BASE: i32 = 900;
    let mut plan: Vec<(CString, i32, CString, CString, bool)> = Vec::new();
    for (i, m) in l.mounts.iter().enumerate() {
        let fd = FD_BASE + i as i32;
        plan.push((
            cstr(&m.source)?,
            fd,
            cstr(format!("/proc/self/fd/{fd}"))?,
            cstr(&m.target)?,
            m.read_only,
        ));
    }
    let hostname = l.hostname.clone().into_bytes();
    let workdir = cstr(l.working_dir.as_deref().unwrap_or("/"))?;
    let root = cstr("/")?;
    let ident = l.identity.clone();
    let groups: Vec<libc::gid_t> = ident.groups.clone();
    let ro_root = l.read_only_root;
    let nnp = l.no_new_privs;
    let parent = std::process::id() as libc::pid_t;
    // Opened here, entered first thing in the child; closed on exec.
    let netns = match &l.netns {
        Some(p) => Some(
            std::fs::File::open(p).with_context(|| format!("network namespace {}", p.display()))?,
        ),
        None => None,
    };
    let netns_fd = netns.as_ref().map(|f| f.as_raw_fd());

    // The program, like the mount sources, is opened before any mount.
    let (mut cmd, program, by_fd) = program_command(&l.argv[0])?;
    cmd.args(&l.argv[1..])
        .env_clear()
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: only async-signal-safe syscalls on memory prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            let null = std::ptr::null::<libc::c_char>();
            if let Some(fd) = netns_fd {
                check(libc::setns(fd, libc::CLONE_NEWNET))?;
            }
            check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
            check(libc::mount(
                null,
                root.as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::sethostname(hostname.as_ptr().cast(), hostname.len()))?;
            if by_fd {
                open_program_fd(&program)?;
            }
            for (path, fd, _, _, _) in &plan {
                let f = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if f < 0 {
                    return Err(io::Error::last_os_error());
                }
                check(libc::dup2(f, *fd))?;
                libc::close(f);
            }
            for (_, fd, src, dst, ro) in &plan {
                check(libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                if *ro {
                    check(libc::mount(
                        null,
                        dst.as_ptr(),
                        null,
                        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                        std::ptr::null(),
                    ))?;
                }
                libc::close(*fd);
            }
            if ro_root {
                check(libc::mount(
                    null,
                    root.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null(),
                ))?;
            }
            drop_privileges(&ident, &groups)?;
            if nnp {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            }
            // After the credential change (which clears it): die with the runner.
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            if libc::getppid() != parent {
                return Err(io::Error::other("runner exited"));
            }
            check(libc::chdir(workdir.as_ptr()))?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", l.argv))?;
    drop(netns);
    Ok(child)
}

/// setgroups, setgid, setuid (in that order), for a child after fork.
///
/// # Safety
/// Only call between fork and exec.
unsafe fn drop_privileges(ident: &Identity, groups: &[libc::gid_t]) -> io::Result<()> {
    if ident.uid.is_some() || ident.gid.is_some() || !groups.is_empty() {
        check(libc::setgroups(groups.len(), groups.as_ptr()))?;
    }
    if let Some(g) = ident.gid {
        check(libc::setgid(g))?;
    }
    if let Some(u) = ident.uid {
        check(libc::setuid(u))?;
    }
    Ok(())
}

/// Sends `sig` to the container's whole process group.
pub fn signal_group(pgid: u32, sig: libc::c_int) {
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

/// Runs `argv` inside a running container (its network, mount and UTS namespaces, its user
/// and env),
/// like `kubectl exec` / an exec probe. Returns the exit code and combined output (capped).
/// Where a program named by path is kept open for the child (below the mount fds).
const PROGRAM_FD: i32 = 899;

/// The command for `argv0`: a program named by path runs through [`PROGRAM_FD`], which
/// [`open_program_fd`] fills in the child before it enters the pod's mounts (a pod volume over
/// e.g. /tmp must not hide a binary under /tmp, a workspace cloned there). Bare names are left
/// to PATH lookup.
fn program_command(argv0: &str) -> Result<(Command, CString, bool)> {
    let program = cstr(argv0)?;
    let by_fd = argv0.contains('/');
    let cmd = if by_fd {
        let mut c = Command::new(format!("/proc/self/fd/{PROGRAM_FD}"));
        c.arg0(argv0);
        c
    } else {
        Command::new(argv0)
    };
    Ok((cmd, program, by_fd))
}

/// In the child, before any mount or namespace change. No O_CLOEXEC: an interpreter started
/// for a script reopens it by this path.
unsafe fn open_program_fd(program: &CString) -> io::Result<()> {
    let f = libc::open(program.as_ptr(), libc::O_PATH);
    if f < 0 {
        return Err(io::Error::last_os_error());
    }
    if f != PROGRAM_FD {
        check(libc::dup2(f, PROGRAM_FD))?;
        libc::close(f);
    }
    Ok(())
}

pub async fn exec_in(
    pid: u32,
    argv: &[String],
    env: &[(String, String)],
    identity: &Identity,
    working_dir: Option<&str>,
    timeout: Duration,
) -> Result<(i32, String)> {
    if argv.is_empty() {
        bail!("empty command");
    }
    let open_ns = |kind: &str| -> Result<OwnedFd> {
        let p = cstr(format!("/proc/{pid}/ns/{kind}"))?;
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context(format!("container pid {pid} is gone"));
        }
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    };
    let net = open_ns("net")?;
    let mnt = open_ns("mnt")?;
    let uts = open_ns("uts")?;
    let (net_fd, mnt_fd, uts_fd) = (net.as_raw_fd(), mnt.as_raw_fd(), uts.as_raw_fd());
    let ident = identity.clone();
    let groups = ident.groups.clone();
    let workdir = cstr(working_dir.unwrap_or("/"))?;
    // As at the container's start: a program named by path is opened before entering the
    // container's mounts and run through its fd.
    let (mut cmd, program, by_fd) = program_command(&argv[0])?;
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    unsafe {
        cmd.pre_exec(move || {
            if by_fd {
                open_program_fd(&program)?;
            }
            check(libc::setns(net_fd, libc::CLONE_NEWNET))?;
            check(libc::setns(mnt_fd, libc::CLONE_NEWNS))?;
            check(libc::setns(uts_fd, libc::CLONE_NEWUTS))?;
            drop_privileges(&ident, &groups)?;
            check(libc::chdir(workdir.as_ptr()))?;
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("exec {argv:?}"))?;
    drop((net, mnt, uts));
    let pgid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => {
            let out = out?;
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text.truncate(4096);
            Ok((out.status.code().unwrap_or(-1), text))
        }
        Err(_) => {
            if let Some(p) = pgid {
                signal_group(p, libc::SIGKILL);
            }
            bail!("timed out after {timeout:?}")
        }
    }
}
