//! The S3-compatible server of a test run: moto's (installed by scripts/test-servers.sh),
//! started on the first call of [`S3Server::shared`] and shared by every test of the run,
//! each in buckets of its own. It is killed when the test process ends, however it ends
//! (a parent-death signal). A test that needs the store to go down takes a [`Relay`] to
//! it down instead, leaving the server up for the others.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use super::root;

/// The run's moto server.
#[derive(Debug)]
pub struct S3Server {
    pub endpoint: String,
    port: u16,
    /// Never waited for: it runs until this process ends, and the kernel kills it then.
    _process: Child,
}

impl S3Server {
    /// The run's server, started on the first call.
    pub fn shared() -> &'static Self {
        static SERVER: OnceLock<S3Server> = OnceLock::new();
        SERVER.get_or_init(Self::start)
    }

    fn start() -> Self {
        let bin = std::env::var_os("MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join(".venv/bin/moto_server"));
        assert!(
            bin.is_file(),
            "{} not found: run ./scripts/test-servers.sh (or set MOTO_SERVER) before the tests",
            bin.display()
        );
        let port = super::free_port();
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let process = spawn_for_the_whole_run(cmd).expect("start moto_server");
        let started = std::time::Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed().as_secs() < 60, "moto_server did not start in 60 s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self { endpoint: format!("http://127.0.0.1:{port}"), port, _process: process }
    }

    /// Create a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request(reqwest::Method::PUT, &format!("/{bucket}"), Vec::new());
        assert!(status.is_success(), "create bucket {bucket}: {status}");
    }

    /// Store `bytes` at `key` in `bucket` (a signed request, as any S3 client makes).
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        use object_store::ObjectStore as _;
        let store = self.client(bucket);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(store.put(&key.into(), bytes.into())).unwrap();
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        use object_store::ObjectStore as _;
        let store = self.client(bucket);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(store.delete(&key.into())).unwrap();
    }

    fn client(&self, bucket: &str) -> impl object_store::ObjectStore {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .unwrap()
    }

    fn request(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> reqwest::StatusCode {
        let url = format!("{}{path}", self.endpoint);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let res = reqwest::Client::new()
                .request(method, &url)
                // Without a content type the server reads the body as a form.
                .header("content-type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = res.status();
            if !status.is_success() {
                eprintln!("{url}: {status}: {}", res.text().await.unwrap_or_default());
            }
            status
        })
    }

    /// What `lookalike` needs in its environment to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        s3_env(&self.endpoint)
    }

    /// A relay to this server on an endpoint of its own, that the caller can take down.
    pub fn relay(&self) -> Relay {
        Relay::to(self.port)
    }
}

/// What `lookalike` needs in its environment to reach the S3 server at `endpoint`.
pub fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// A TCP relay on a loopback port of its own to the server on `port`: to a client, the
/// server itself until [`Relay::stop`], then a server that is down (its open connections
/// closed, new ones refused), as moto killed would be.
#[derive(Debug)]
pub struct Relay {
    pub endpoint: String,
    stopped: Arc<AtomicBool>,
    /// Both ends of every connection relayed, to close them all at once.
    open: Arc<Mutex<Vec<TcpStream>>>,
    accepting: Option<std::thread::JoinHandle<()>>,
    port: u16,
}

impl Relay {
    fn to(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stopped = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accepting = {
            let (stopped, open) = (stopped.clone(), open.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        break; // the listener closes as the thread ends
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        continue;
                    };
                    let mut open = open.lock().unwrap();
                    for (from, to) in [(&client, &server), (&server, &client)] {
                        let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                        std::thread::spawn(move || pipe(from, to));
                    }
                    open.extend([client, server]);
                }
            })
        };
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            stopped,
            open,
            accepting: Some(accepting),
            port,
        }
    }

    /// What `lookalike` needs in its environment to reach the server through this relay.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        s3_env(&self.endpoint)
    }

    /// Go down: refuse new connections (the port is closed when this returns) and close
    /// the open ones.
    pub fn stop(&mut self) {
        let Some(accepting) = self.accepting.take() else { return };
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accepting thread, which then sees the flag and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        accepting.join().unwrap();
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copy one direction of a relayed connection until either end closes.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Spawn a server process that ends with this test process, however this one ends: the
/// kernel kills it when its parent goes (`PR_SET_PDEATHSIG`). The parent it watches is
/// the thread that spawned it, not the process, and each test runs in a thread of its
/// own that ends with the test: so every such process is spawned by one thread that
/// lives as long as the process.
fn spawn_for_the_whole_run(cmd: Command) -> std::io::Result<Child> {
    type Request = (Command, Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        // The sender stays in the static, so `recv` never fails: the thread lives on.
        std::thread::spawn(move || {
            while let Ok((mut cmd, reply)) = rx.recv() {
                tie_to_parent(&mut cmd);
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (reply, answer) = channel();
    spawner.lock().unwrap().send((cmd, reply)).unwrap();
    answer.recv().unwrap()
}

#[cfg(target_os = "linux")]
fn tie_to_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, and makes only
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have gone before the signal was asked for.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Elsewhere there is no such signal: the server outlives the test process.
#[cfg(not(target_os = "linux"))]
fn tie_to_parent(_: &mut Command) {}
