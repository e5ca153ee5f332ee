//! Starting the real binary: a [`TestApp`] per test on port 0 with its own data directory,
//! its builder, and the processes around it (CLI calls, signals, logs).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use serde_json::Value;

use super::{TEST_JWT_KEY, isolated_scaled_backend, scaled};

/// The compiled binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_outgrow")
}

/// A running server, killed when dropped.
pub struct TestApp {
    pub base: String,
    pub address: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub child: Child,
    /// The backend settings this server runs with (empty on the embedded backend).
    pub backend: Vec<(String, String)>,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

/// Environment every spawned process gets: isolated data dir, JSON logs, and nothing
/// inherited from the developer's own OUTGROW_* settings.
pub fn base_command(data_dir: &Path) -> Command {
    let mut command = Command::new(binary());
    for (name, _) in std::env::vars() {
        if name.starts_with("OUTGROW_") {
            command.env_remove(name);
        }
    }
    command
        .env("OUTGROW_DATA_DIR", data_dir)
        .env("OUTGROW_LOG_FORMAT", "json")
        .env("OUTGROW_JWT_KEYS", TEST_JWT_KEY)
        .env("OUTGROW_SECURE_COOKIES", "true")
        // Generous limits so functional tests never trip them; rate-limit tests set their own.
        .env("OUTGROW_RATE_LIMIT_AUTH", "1000/1m")
        .env("OUTGROW_RATE_LIMIT_DEFAULT", "10000/1m")
        .env("OUTGROW_RATE_LIMIT_ORDER", "10000/1m")
        // Likewise the sign-in throttle: tests that try many passwords set their own.
        .env("OUTGROW_LOGIN_FREE_ATTEMPTS_PER_ACCOUNT", "1000")
        .env("OUTGROW_LOGIN_FREE_ATTEMPTS_PER_ADDRESS", "1000");
    command
}

/// How a test server starts: `TestApp::builder().settings(&[..]).api_only().spawn().await`.
/// By default a fresh data directory (removed with the app) and, on the scaled pass, a fresh
/// [`isolated_scaled_backend`]; `.backend(..)` shares another instance's database and Redis,
/// `.data_dir(..)` starts on an existing directory (a restart), `.restart_of(..)` both.
#[must_use = "nothing starts until .spawn()"]
#[derive(Default)]
pub struct TestAppBuilder {
    settings: Vec<(String, String)>,
    api_only: bool,
    demo: bool,
    backend: Option<Vec<(String, String)>>,
    data_dir: Option<PathBuf>,
}

impl TestAppBuilder {
    /// Extra `OUTGROW_*` settings; an empty value unsets the variable (e.g. a default the tests
    /// set, like `OUTGROW_JWT_KEYS`).
    pub fn settings(mut self, settings: &[(impl AsRef<str>, impl AsRef<str>)]) -> Self {
        self.settings.extend(
            settings
                .iter()
                .map(|(key, value)| (key.as_ref().to_owned(), value.as_ref().to_owned())),
        );
        self
    }

    /// Runs no job workers (`serve --no-workers`).
    pub fn api_only(mut self) -> Self {
        self.api_only = true;
        self
    }

    /// Opens the demo store on start (`serve --demo`).
    pub fn demo(mut self) -> Self {
        self.demo = true;
        self
    }

    /// Runs on `backend` (another instance's, to share its database and Redis) instead of a
    /// fresh one.
    pub fn backend(mut self, backend: &[(String, String)]) -> Self {
        self.backend = Some(backend.to_vec());
        self
    }

    /// Runs on an existing data directory, which the caller keeps.
    pub fn data_dir(mut self, data_dir: &Path) -> Self {
        self.data_dir = Some(data_dir.to_owned());
        self
    }

    /// Runs on `app`'s data directory and backend: a restart of `app`.
    pub fn restart_of(self, app: &TestApp) -> Self {
        self.data_dir(&app.data_dir).backend(&app.backend)
    }

    /// Starts the server and waits until it reports its address.
    pub async fn spawn(self) -> TestApp {
        let backend = match self.backend {
            Some(backend) => backend,
            None if scaled() => isolated_scaled_backend().await,
            None => Vec::new(),
        };
        let (data_dir, dir) = match self.data_dir {
            Some(data_dir) => (data_dir, None),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                (dir.path().join("data"), Some(dir))
            }
        };
        let mut args = Vec::new();
        if self.api_only {
            args.push("--no-workers");
        }
        if self.demo {
            args.push("--demo");
        }
        spawn(&data_dir, &backend, &self.settings, &args, dir).await
    }
}

async fn spawn(
    data_dir: &Path,
    backend: &[(String, String)],
    settings: &[(String, String)],
    args: &[&str],
    dir: Option<tempfile::TempDir>,
) -> TestApp {
    let mut command = base_command(data_dir);
    command
        .arg("serve")
        .args(args)
        .env("OUTGROW_LISTEN", "127.0.0.1:0");
    command.envs(backend.iter().map(|(key, value)| (key, value)));
    for (key, value) in settings {
        if value.is_empty() {
            command.env_remove(key);
        } else {
            command.env(key, value);
        }
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn outgrow");
    let stdout = child.stdout.take().expect("stdout");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (address_tx, address_rx) = mpsc::channel();
    let collected = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["message"] == "Outgrow listening"
            {
                let _ = address_tx.send(event["address"].as_str().unwrap_or_default().to_owned());
            }
            collected.lock().expect("logs").push(line);
        }
    });
    let address = tokio::task::spawn_blocking(move || address_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("join")
        .expect("the server did not report its address within 60 s");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        base: format!("http://{address}"),
        address,
        client,
        data_dir: data_dir.to_owned(),
        backend: backend.to_vec(),
        child,
        logs,
        _dir: dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestApp {
    /// How to start a server; see [`TestAppBuilder`].
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// Starts a server with the default test settings.
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    /// Starts a server with extra `settings` (see [`TestAppBuilder::settings`]).
    pub async fn with_settings(settings: &[(&str, &str)]) -> TestApp {
        Self::builder().settings(settings).spawn().await
    }

    /// Starts a server with extra `settings` that runs no job workers (`serve --no-workers`).
    pub async fn without_workers(settings: &[(impl AsRef<str>, impl AsRef<str>)]) -> TestApp {
        Self::builder().settings(settings).api_only().spawn().await
    }

    /// Starts a server on this one's data directory and backend with extra `settings`: a
    /// restart, once this one has stopped.
    pub async fn restart_with(&self, settings: &[(&str, &str)]) -> TestApp {
        Self::builder().restart_of(self).settings(settings).spawn().await
    }

    /// Starts a server on `backend` (a database and Redis of the test's choosing) with extra
    /// `settings`.
    pub async fn on_backend(backend: &[(String, String)], settings: &[(&str, &str)]) -> TestApp {
        Self::builder().backend(backend).settings(settings).spawn().await
    }

    /// Starts two instances of one deployment (one database and Redis, two data
    /// directories), each with extra `settings`.
    pub async fn pair(settings: &[(&str, &str)]) -> (TestApp, TestApp) {
        let first = Self::with_settings(settings).await;
        let second = Self::on_backend(&first.backend, settings).await;
        (first, second)
    }

    /// The `outgrow` command with this server's data dir and backend (for CLI calls).
    pub fn command(&self) -> Command {
        let mut command = base_command(&self.data_dir);
        command.envs(self.backend.iter().map(|(key, value)| (key, value)));
        command
    }

    /// Runs `outgrow <args>` on this server's data dir and backend, asserting that it
    /// succeeds; returns its standard output.
    pub fn run_cli(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("run outgrow");
        assert_succeeded(&output, &format!("outgrow {}", args.join(" ")));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the server process exits (after a signal), at most `within`.
    pub async fn wait_for_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "the server did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    }
}

/// Asserts that a finished process (`what`) succeeded, showing what it printed otherwise.
pub fn assert_succeeded(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
