//! Child processes of the benches and their bounds: stanzagate with a generated config,
//! the plain `copy_bidirectional` relay (this same binary in relay mode), killed by PID
//! when dropped and by the kernel if the bench dies; a watchdog bounding the whole run;
//! the file-descriptor limit; RSS readings from `/proc`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process that is killed (SIGKILL to its PID) and reaped when dropped, and
/// gets SIGKILL from the kernel if this process dies first.
pub struct Guarded {
    child: Child,
    name: &'static str,
    log: Option<PathBuf>,
}

impl Guarded {
    fn spawn(mut command: Command, name: &'static str, log: Option<PathBuf>) -> Guarded {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Guarded { child, name, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's log so far (for error messages).
    pub fn log_tail(&self) -> String {
        let Some(path) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let start = text.len().saturating_sub(2000);
        text[text.floor_char_boundary_compat(start)..].to_owned()
    }

    /// Panics if the child has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}): {}", self.name, self.log_tail());
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, at: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut at: usize) -> usize {
        while at > 0 && !self.is_char_boundary(at) {
            at -= 1;
        }
        at
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (children inherit it) and
/// returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

/// Ends this process (children die with it via PDEATHSIG) if the bench overruns.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("bench watchdog: still running after {limit:?}, exiting");
        std::process::exit(3);
    });
}

/// A currently free loopback port (bound, then released for a child to bind).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("free port address").port()
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_listening(addr: SocketAddr, child: &mut Guarded) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        child.assert_running();
        assert!(
            Instant::now() < deadline,
            "{} does not listen on {addr}: {}",
            child.name,
            child.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The stanzagate binary: `STANZAGATE_BIN`, else the one Cargo built for this bench.
pub fn stanzagate_bin() -> PathBuf {
    std::env::var_os("STANZAGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stanzagate")))
}

/// Which stanzagate binary runs, and what its generated `proxy.toml` enables.
pub struct ProxySetup<'a> {
    /// Usually [`stanzagate_bin`].
    pub bin: PathBuf,
    pub upstream: SocketAddr,
    /// PEM paths; `None`: plaintext clients only (`tls.required = false`).
    pub tls: Option<(&'a Path, &'a Path)>,
    /// Also listen for direct TLS (needs `tls`).
    pub direct_tls: bool,
}

/// A running stanzagate and the addresses it listens on.
pub struct Proxy {
    pub process: Guarded,
    pub c2s: SocketAddr,
    pub direct_tls: Option<SocketAddr>,
    /// `listen.component`, when [`ProxyOptions::component_upstream`] asked for it.
    pub component: Option<SocketAddr>,
    /// `listen.http` (admin: `/metrics`), when [`ProxyOptions::http`] asked for it.
    pub http: Option<SocketAddr>,
    /// `listen.websocket`, when [`ProxyOptions::websocket`] asked for it.
    pub websocket: Option<SocketAddr>,
}

/// More of the generated `proxy.toml` than [`ProxySetup`] covers.
#[derive(Default)]
pub struct ProxyOptions {
    /// With a certificate: `tls.required = false` lets plaintext clients log in on the
    /// `c2s` listener next to the direct-TLS ones.
    pub tls_optional: bool,
    /// The upstream's component port: the proxy then listens for components too
    /// (`listen.component`, `upstream.component`).
    pub component_upstream: Option<SocketAddr>,
    /// Also listen for admin HTTP (`listen.http`).
    pub http: bool,
    /// Also listen for XMPP over WebSocket (`listen.websocket`).
    pub websocket: bool,
    /// TOML appended verbatim after `[hosts."bench.local"]` (delegation sub-tables,
    /// `[components.…]`, `[limits]`).
    pub extra: String,
}

/// Writes `proxy.toml` into `dir` (and logs to `stanzagate.log` there) and starts
/// stanzagate on it; returns once it listens.
pub fn start_stanzagate(dir: &Path, setup: &ProxySetup<'_>) -> Proxy {
    start_stanzagate_with(dir, setup, &ProxyOptions::default())
}

/// [`start_stanzagate`] with [`ProxyOptions`].
pub fn start_stanzagate_with(dir: &Path, setup: &ProxySetup<'_>, options: &ProxyOptions) -> Proxy {
    let c2s: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let direct_tls: Option<SocketAddr> = setup
        .direct_tls
        .then(|| ([127, 0, 0, 1], free_port()).into());
    let component: Option<SocketAddr> = options
        .component_upstream
        .map(|_| ([127, 0, 0, 1], free_port()).into());
    let http: Option<SocketAddr> = options.http.then(|| ([127, 0, 0, 1], free_port()).into());
    let websocket: Option<SocketAddr> = options
        .websocket
        .then(|| ([127, 0, 0, 1], free_port()).into());
    let mut config = format!("[listen]\nc2s = \"{c2s}\"\n");
    if let Some(addr) = direct_tls {
        config.push_str(&format!("c2s_direct_tls = \"{addr}\"\n"));
    }
    if let Some(addr) = component {
        config.push_str(&format!("component = \"{addr}\"\n"));
    }
    if let Some(addr) = http {
        config.push_str(&format!("http = \"{addr}\"\n"));
    }
    if let Some(addr) = websocket {
        config.push_str(&format!("websocket = \"{addr}\"\n"));
    }
    match setup.tls {
        Some((cert, key)) => config.push_str(&format!(
            "[tls]\nrequired = {}\ncert = \"{}\"\nkey = \"{}\"\n",
            !options.tls_optional,
            cert.display(),
            key.display()
        )),
        None => config.push_str("[tls]\nrequired = false\n"),
    }
    config.push_str(&format!("[upstream]\nc2s = \"{}\"\n", setup.upstream));
    if let Some(addr) = options.component_upstream {
        config.push_str(&format!("component = \"{addr}\"\n"));
    }
    config.push_str(&format!("[hosts.\"{}\"]\n", super::DOMAIN));
    config.push_str(&options.extra);
    let config_path = dir.join("proxy.toml");
    std::fs::write(&config_path, config).expect("write proxy.toml");
    let log_path = dir.join("stanzagate.log");
    let log = std::fs::File::create(&log_path).expect("create stanzagate.log");
    let mut command = Command::new(&setup.bin);
    command
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log);
    let mut process = Guarded::spawn(command, "stanzagate", Some(log_path));
    for addr in [Some(c2s), direct_tls, component, http, websocket]
        .into_iter()
        .flatten()
    {
        wait_listening(addr, &mut process);
    }
    Proxy {
        process,
        c2s,
        direct_tls,
        component,
        http,
        websocket,
    }
}

/// Argument that makes a bench binary act as the plain relay (see [`run_relay_child`]).
pub const RELAY_CHILD_ARG: &str = "--relay-child";

/// Starts this binary as a plain TCP relay to `upstream` living at most `lifetime`;
/// returns it with the address it listens on.
pub fn start_relay(upstream: SocketAddr, lifetime: Duration) -> (Guarded, SocketAddr) {
    let exe = std::env::current_exe().expect("current exe");
    let mut command = Command::new(exe);
    command
        .args(["--bench", RELAY_CHILD_ARG])
        .arg(upstream.to_string())
        .arg(lifetime.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut process = Guarded::spawn(command, "plain relay", None);
    let stdout = process.child.stdout.take().expect("relay stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the relay's port");
    let addr: SocketAddr = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("relay printed {line:?} instead of its address"));
    wait_listening(addr, &mut process);
    (process, addr)
}

/// Relay mode (`--relay-child UPSTREAM LIFETIME_SECS`): one `copy_bidirectional` per
/// connection on a multi-threaded runtime like stanzagate's; prints its address, exits
/// after the lifetime. Returns false if the arguments do not ask for relay mode.
pub fn run_relay_child() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == RELAY_CHILD_ARG) else {
        return false;
    };
    let upstream: SocketAddr = args
        .get(at + 1)
        .and_then(|a| a.parse().ok())
        .expect("relay child: upstream address");
    let lifetime = Duration::from_secs(
        args.get(at + 2)
            .and_then(|a| a.parse().ok())
            .expect("relay child: lifetime seconds"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("relay child: runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay child: bind");
        println!("{}", listener.local_addr().expect("relay child: address"));
        let serve = async {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        };
        let _ = tokio::time::timeout(lifetime, serve).await;
    });
    true
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// `/proc/cpuinfo` model name, `nproc`, kernel release: for the report header.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {kernel}")
}

/// CPU time `pid` (all threads) has used so far: (user, system).
pub fn cpu_time(pid: u32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0) };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let time = |t: u64| Duration::from_nanos(t * 1_000_000_000 / hz);
    (time(ticks(11)), time(ticks(12)))
}

/// Open file descriptors of `pid` (sockets included).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// The soft and hard `RLIMIT_NOFILE` of this process.
pub fn nofile_limits() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain syscall on a valid, owned struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return (0, 0);
    }
    (limit.rlim_cur, limit.rlim_max)
}

/// The soft "Max open files" limit of `pid` (from `/proc/PID/limits`): what a child
/// actually got.
pub fn nofile_of(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A Prometheus metric from the admin listener's `/metrics`: the sum over every line
/// whose name matches exactly (all label sets); `None` if unreachable or absent.
/// Bounded by 2 s timeouts.
pub fn metric(http: SocketAddr, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect_timeout(&http, Duration::from_secs(2)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    tcp.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    tcp.write_all(
        format!("GET /metrics HTTP/1.0\r\nHost: {http}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut body = String::new();
    tcp.read_to_string(&mut body).ok()?;
    let values: Vec<f64> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let metric = key.split('{').next()?;
            (metric == name)
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
