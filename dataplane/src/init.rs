//! A minimal init for when `erlmcp` is PID 1 (the image is `FROM scratch`, with no tini).
//!
//! PID 1 has two duties no ordinary process has: orphans are re-parented to it (a command
//! backend's script that backgrounds a child leaves one), so it must reap them or they stay
//! zombies; and the kernel delivers it no signal it has not asked for. So PID 1 forks before
//! anything else starts: the child runs the server, the parent forwards the termination
//! signals to it, reaps every child that ends, and exits with the server's status. The server
//! itself never calls `wait` on processes it did not start, so it cannot race tokio's own
//! child handling. `ERLMCP_NO_INIT=1` turns this off.

/// Signals the init passes on to the server.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Call first thing in `main`, before any thread exists. Returns `Some(exit code)` in the init
/// (which must then exit with it), `None` in the process that goes on to serve.
pub fn run_as_pid1() -> Option<i32> {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 || std::env::var_os("ERLMCP_NO_INIT").is_some() {
        return None;
    }
    // SAFETY: single-threaded here (no runtime yet); the sets are initialised before use and
    // the child restores the mask it inherited before doing anything else.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        libc::sigaddset(&mut set, libc::SIGCHLD);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        let child = libc::fork();
        if child < 0 {
            // No init then, but still a server.
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            return None;
        }
        if child == 0 {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            return None;
        }
        Some(supervise(child, &set))
    }
}

/// The init's loop: forward signals, reap, and return the server's exit code once it ends.
unsafe fn supervise(child: libc::pid_t, set: &libc::sigset_t) -> i32 {
    loop {
        let mut sig: libc::c_int = 0;
        if libc::sigwait(set, &mut sig) != 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            libc::kill(child, sig);
            continue;
        }
        // One SIGCHLD may stand for many ended children.
        loop {
            let mut status: libc::c_int = 0;
            let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
            if pid <= 0 {
                break;
            }
            if pid == child {
                return exit_code(status);
            }
        }
    }
}

fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        let run = |cmd: &str| {
            let st = std::process::Command::new("sh")
                .args(["-c", cmd])
                .status()
                .unwrap();
            std::os::unix::process::ExitStatusExt::into_raw(st)
        };
        assert_eq!(exit_code(run("exit 0")), 0);
        assert_eq!(exit_code(run("exit 3")), 3);
        assert_eq!(exit_code(run("kill -TERM $$")), 128 + libc::SIGTERM);
    }

    #[test]
    fn not_pid1_means_no_init() {
        assert_eq!(run_as_pid1(), None);
    }
}
