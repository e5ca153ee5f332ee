//! Background jobs over the real binary: the welcome e-mail enqueued with the account,
//! retries with backoff until dead and revival, a worker killed mid-job, and two worker
//! processes sharing one queue.

use std::{
    collections::HashSet,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    helpers::*,
    services::{SmtpSink, closed_port},
};

/// The value of header `name` in a raw message.
fn header_of<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .take_while(|line| !line.is_empty() && *line != "\r")
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
        .map(str::trim)
}

/// Jobs as the CLI lists them (JSON from `jobs show`).
fn show_job(app: &TestApp, id: &str) -> Value {
    serde_json::from_str(&app.run_cli(&["jobs", "show", id])).expect("job json")
}

/// The ids of jobs in `state`, from `jobs list`.
fn job_ids(app: &TestApp, state: &str) -> Vec<String> {
    app.run_cli(&["jobs", "list", "--state", state, "--limit", "1000"])
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .map(str::to_owned)
        .collect()
}

/// Registration answers the same for a taken address; its owner learns of the attempt by
/// e-mail (and nobody else learns anything).
#[tokio::test]
async fn registering_a_taken_address_mails_its_owner_a_notice() {
    let sink = SmtpSink::up(0);
    let app = TestApp::with_settings(&[("OUTGROW_SMTP_URL", &sink.url())]).await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );
    assert_eq!(
        app.register("Ann@Example.org", PASSWORD, "Mallory")
            .await
            .status(),
        202
    );

    wait_until("two e-mails", Duration::from_secs(10), || {
        sink.messages().len() >= 2
    })
    .await;
    let messages = sink.messages();
    let subjects: Vec<_> = messages.iter().filter_map(|m| header_of(m, "Subject")).collect();
    assert!(subjects.contains(&"Welcome to Outgrow"), "{subjects:?}");
    let notice = messages
        .iter()
        .find(|m| header_of(m, "Subject") == Some("An attempt to register your e-mail address at Outgrow"))
        .expect("the notice");
    assert!(header_of(notice, "To").is_some_and(|to| to.contains("ann@example.org")));
    assert!(
        !notice.contains("Mallory"),
        "nothing the other party typed is echoed"
    );
}

#[tokio::test]
async fn registering_sends_a_welcome_email_through_the_queue() {
    let sink = SmtpSink::up(0);
    let app = TestApp::with_settings(&[("OUTGROW_SMTP_URL", &sink.url())]).await;

    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann <b>Lee</b>")
            .await
            .status(),
        202
    );

    wait_until("the welcome e-mail", Duration::from_secs(10), || {
        !sink.messages().is_empty()
    })
    .await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(header_of(message, "Subject"), Some("Welcome to Outgrow"));
    assert!(header_of(message, "To").is_some_and(|to| to.contains("ann@example.org")));
    assert!(
        message.contains("multipart/alternative") && message.contains("text/html"),
        "{message}"
    );
    // Quoted-printable: join soft line breaks before reading the HTML part.
    let unfolded = message.replace("=\r\n", "").replace("=\n", "");
    let html = unfolded.split("text/html").nth(1).expect("an HTML part");
    assert!(
        html.contains("Ann &lt;b&gt;Lee&lt;/b&gt;") && !html.contains("<b>Lee"),
        "the name is escaped in HTML"
    );
    let job_id = header_of(message, "X-Outgrow-Job").expect("job header");
    wait_until("the job to be done", Duration::from_secs(5), || {
        show_job(&app, job_id)["state"] == "done"
    })
    .await;
}

#[tokio::test]
async fn without_smtp_mail_is_written_as_eml_files_in_the_data_dir() {
    let app = TestApp::spawn().await;
    app.register("ann@example.org", PASSWORD, "Ann").await;
    let mail_dir = app.data_dir.join("mail");
    wait_until("the .eml file", Duration::from_secs(10), || {
        std::fs::read_dir(&mail_dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
    })
    .await;
}

#[tokio::test]
async fn a_failing_job_backs_off_dies_and_comes_back_with_jobs_retry() {
    let port = closed_port();
    let app = TestApp::with_settings(&[
        ("OUTGROW_SMTP_URL", &format!("smtp://127.0.0.1:{port}")),
        ("OUTGROW_JOB_BACKOFF_BASE", "50ms"),
        ("OUTGROW_JOB_BACKOFF_MAX", "200ms"),
        ("OUTGROW_JOB_POLL_INTERVAL", "20ms"),
    ])
    .await;
    let started = Instant::now();
    app.register("ann@example.org", PASSWORD, "Ann").await;

    wait_until("the e-mail job to die", Duration::from_secs(20), || {
        job_ids(&app, "dead").len() == 1
    })
    .await;
    let elapsed = started.elapsed();
    let id = job_ids(&app, "dead").remove(0);
    let job = show_job(&app, &id);
    assert_eq!(job["attempts"], 8, "{job}");
    assert_eq!(job["max_attempts"], 8);
    assert!(
        job["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("127.0.0.1")),
        "{job}"
    );
    // Seven waits between eight attempts: 50, 100, then 200 ms capped (±20 %) ≥ 0.92 s.
    assert!(
        elapsed >= Duration::from_millis(920),
        "retried without backing off: {elapsed:?}"
    );
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"jobs_failures_total{name="email.send"}"#),
        Some(8.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, r#"jobs_dead_total{name="email.send"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, r#"jobs_queue_depth{queue="mail",state="dead"}"#),
        Some(1.0)
    );

    // The mail server comes back; an operator revives the job.
    let sink = SmtpSink::up_on(port, 0);
    app.run_cli(&["jobs", "retry", &id]);
    wait_until("the revived job to send", Duration::from_secs(10), || {
        sink.messages().len() == 1
    })
    .await;
    wait_until("the job to be done", Duration::from_secs(5), || {
        show_job(&app, &id)["state"] == "done"
    })
    .await;
    let again = app
        .command()
        .args(["jobs", "retry", &id])
        .output()
        .expect("jobs retry");
    assert!(!again.status.success(), "a done job cannot be retried");
}

#[tokio::test]
async fn admins_operate_the_queue_over_http() {
    let port = closed_port();
    let app = TestApp::with_settings(&[
        ("OUTGROW_SMTP_URL", &format!("smtp://127.0.0.1:{port}")),
        ("OUTGROW_JOB_BACKOFF_BASE", "20ms"),
        ("OUTGROW_JOB_BACKOFF_MAX", "50ms"),
        ("OUTGROW_JOB_POLL_INTERVAL", "20ms"),
    ])
    .await;
    let admin = app.admin("admin@example.org").await;
    let user = app.signed_in("ann@example.org").await;
    app.get_problem_with_token("/api/v1/admin/jobs", &user.access_token, 403)
        .await;

    wait_until("the job to die", Duration::from_secs(20), || {
        job_ids(&app, "dead").len() == 1
    })
    .await;
    let page: Value = app
        .get_json_with_token("/api/v1/admin/jobs?state=dead", &admin.access_token)
        .await;
    let id = page["items"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(page["items"][0]["name"], "email.send");
    let one: Value = app
        .get_json_with_token(&format!("/api/v1/admin/jobs/{id}"), &admin.access_token)
        .await;
    assert_eq!(one["state"], "dead");
    let queues: Value = app
        .get_json_with_token("/api/v1/admin/queues", &admin.access_token)
        .await;
    assert!(
        queues
            .as_array()
            .expect("queues")
            .iter()
            .any(|q| q["queue"] == "mail" && q["dead"] == 1),
        "{queues}"
    );

    let cancel = app
        .post_with_token(&format!("/api/v1/admin/jobs/{id}/cancel"), &admin.access_token)
        .await;
    assert_problem(cancel, 409).await;
    let retry = app
        .post_with_token(&format!("/api/v1/admin/jobs/{id}/retry"), &admin.access_token)
        .await;
    assert_eq!(retry.status(), 200);
    app.get_problem_with_token("/api/v1/admin/jobs/not-a-uuid", &admin.access_token, 400)
        .await;
    app.get_problem_with_token(
        &format!("/api/v1/admin/jobs/{}", uuid::Uuid::now_v7()),
        &admin.access_token,
        404,
    )
    .await;
    app.get_problem_with_token("/api/v1/admin/jobs?state=lost", &admin.access_token, 400)
        .await;
}

/// `outgrow worker` with this app's data dir and backend.
fn worker(app: &TestApp, settings: &[(impl AsRef<str>, impl AsRef<str>)]) -> Child {
    let mut command = app.command();
    command.arg("worker");
    for (key, value) in settings {
        command.env(key.as_ref(), value.as_ref());
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker")
}

/// `settings` with the SMTP URL of `sink` first, owned as the builder and [`worker`] take them.
fn mail_to(sink: &SmtpSink, settings: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    std::iter::once(("OUTGROW_SMTP_URL", sink.url()))
        .chain(settings.iter().map(|(key, value)| (*key, (*value).to_owned())))
        .collect()
}

/// An API-only server and one worker process beside it, both with `settings`.
async fn server_and_worker(settings: &[(&str, String)]) -> (TestApp, Child) {
    let app = TestApp::without_workers(settings).await;
    let worker = worker(&app, settings);
    (app, worker)
}

fn kill_hard(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("SIGKILL");
    let _ = child.wait();
}

/// Registers an account, whose welcome e-mail is then the one job, and waits until a worker
/// claims it; returns the job's id.
async fn register_and_wait_for_the_claim(app: &TestApp) -> String {
    app.register("ann@example.org", PASSWORD, "Ann").await;
    wait_until("a worker to claim the job", Duration::from_secs(10), || {
        job_ids(app, "running").len() == 1
    })
    .await;
    job_ids(app, "running").remove(0)
}

/// A welcome e-mail claimed by a worker and held mid-delivery: the mail server takes 3 s to
/// accept each message, and the server and its one worker poll every 100 ms, with `extra`.
struct SlowDelivery {
    sink: SmtpSink,
    settings: Vec<(&'static str, String)>,
    app: TestApp,
    worker: Child,
    /// The claimed job.
    id: String,
}

async fn slow_delivery_claimed(extra: &[(&'static str, &str)]) -> SlowDelivery {
    let sink = SmtpSink::up(3);
    let mut settings = mail_to(&sink, &[("OUTGROW_JOB_POLL_INTERVAL", "100ms")]);
    settings.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
    let (app, worker) = server_and_worker(&settings).await;
    let id = register_and_wait_for_the_claim(&app).await;
    SlowDelivery {
        sink,
        settings,
        app,
        worker,
        id,
    }
}

#[tokio::test]
async fn a_job_whose_worker_is_killed_mid_run_runs_again_after_the_lease_and_takes_effect_once() {
    // The mail server holds each message 3 s before accepting it: the kill lands mid-delivery.
    let SlowDelivery {
        sink,
        settings,
        app,
        worker: mut first,
        id,
    } = slow_delivery_claimed(&[("OUTGROW_JOB_LEASE", "2s")]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    kill_hard(&mut first);
    let killed = Instant::now();
    let mut second = worker(&app, &settings);

    wait_until("the job to finish", Duration::from_secs(20), || {
        show_job(&app, &id)["state"] == "done"
    })
    .await;
    let job = show_job(&app, &id);
    assert!(
        killed.elapsed() >= Duration::from_millis(1500),
        "ran again before the lease expired"
    );
    assert_eq!(job["interruptions"], 1, "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(sink.messages().len(), 1, "delivered exactly once");
    kill_hard(&mut second);
}

pub fn welcome_job(index: usize) -> outgrow_platform::jobs::NewJob {
    use outgrow_platform::jobs::Job;
    outgrow::jobs::SendEmail {
        to: format!("user{index}@example.org"),
        template: outgrow::jobs::EmailTemplate::Welcome {
            name: format!("User {index}"),
        },
    }
    .to_new_job()
    .expect("job")
}

/// Enqueues `count` welcome e-mails straight into the app's queue (the public enqueue API).
async fn enqueue_emails(app: &TestApp, count: usize) {
    let store = queue_of(app).await;
    for index in 0..count {
        assert!(store.enqueue(&welcome_job(index)).await.expect("enqueue"));
    }
}

#[tokio::test]
async fn two_worker_processes_never_run_the_same_job_twice() {
    let sink = SmtpSink::up(0);
    let settings = mail_to(&sink, &[("OUTGROW_JOB_POLL_INTERVAL", "50ms")]);
    let app = TestApp::without_workers(&settings).await;
    enqueue_emails(&app, 1000).await;

    let started = Instant::now();
    let mut workers = [worker(&app, &settings), worker(&app, &settings)];
    wait_until("1,000 e-mails", Duration::from_secs(120), || {
        sink.messages().len() >= 1000
    })
    .await;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for child in &mut workers {
        kill_hard(child);
    }

    let messages = sink.messages();
    let job_ids: HashSet<&str> = messages
        .iter()
        .filter_map(|message| header_of(message, "X-Outgrow-Job"))
        .collect();
    assert_eq!(messages.len(), 1000, "every job ran once, none twice");
    assert_eq!(job_ids.len(), 1000);
    assert_eq!(job_ids_in(&app, "done"), 1000);
    eprintln!("1,000 jobs through two worker processes in {elapsed:?}");
}

fn job_ids_in(app: &TestApp, state: &str) -> usize {
    job_ids(app, state).len()
}

#[tokio::test]
async fn a_dedup_key_admits_one_pending_job_and_a_taken_address_queues_one_notice() {
    let app = TestApp::builder().api_only().spawn().await;
    let store = queue_of(&app).await;
    assert!(
        store
            .enqueue(&welcome_job(1).dedup("welcome:ann"))
            .await
            .expect("enqueue")
    );
    assert!(
        !store
            .enqueue(&welcome_job(2).dedup("welcome:ann"))
            .await
            .expect("enqueue"),
        "second with the key"
    );
    assert_eq!(job_ids_in(&app, "ready"), 1);

    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );
    assert_eq!(
        app.register("ANN@example.org", PASSWORD, "Ann again")
            .await
            .status(),
        202
    );
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann thrice")
            .await
            .status(),
        202
    );
    // One job from the dedup test, one welcome e-mail for the one account created, and one
    // notice to its owner for the two attempts to register it again (deduplicated).
    assert_eq!(job_ids_in(&app, "ready"), 3);
}

/// Makes the COMMIT of a new account with `email` fail, after its insert and everything else in
/// its transaction ran. PostgreSQL: a deferred constraint trigger on `users`, which raises at
/// COMMIT. SQLite: a trigger on `users` adding a row that breaks a deferred foreign key, which
/// SQLite checks only at COMMIT. Installed in this app's own database (each test app has one),
/// for this one address.
async fn refuse_the_commit_of_an_account(app: &TestApp, email: &str) {
    let postgres = format!(
        "CREATE FUNCTION refuse_marked_account() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.email = '{email}' THEN RAISE EXCEPTION 'the test refuses this commit'; END IF;
             RETURN NULL;
         END $$;
         CREATE CONSTRAINT TRIGGER refuse_marked_account AFTER INSERT ON users
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_marked_account();"
    );
    let sqlite = format!(
        "CREATE TABLE refusal_parents (email TEXT PRIMARY KEY);
         CREATE TABLE refusals (
             email TEXT REFERENCES refusal_parents (email) DEFERRABLE INITIALLY DEFERRED
         );
         CREATE TRIGGER refuse_marked_account AFTER INSERT ON users WHEN NEW.email = '{email}'
         BEGIN INSERT INTO refusals (email) VALUES (NEW.email); END;"
    );
    primary_connection(app).await.execute(&postgres, &sqlite).await;
}

#[tokio::test]
async fn an_account_whose_commit_fails_leaves_neither_the_row_nor_its_welcome_job() {
    let app = TestApp::builder().api_only().spawn().await;
    let refused = unique_email("refused-at-commit");
    refuse_the_commit_of_an_account(&app, &refused).await;
    let welcome_jobs = "SELECT count(*) FROM jobs WHERE name = 'email.send'";
    // Another account commits, with its welcome e-mail: the counts below can see both.
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );
    assert_eq!(primary_connection(&app).await.fetch_i64(welcome_jobs).await, 1);

    // The insert and the enqueue both ran; the COMMIT fails after them.
    let response = app.register(&refused, PASSWORD, "Refused").await;

    assert_problem(response, 500).await;
    let mut database = primary_connection(&app).await;
    let accounts = format!("SELECT count(*) FROM users WHERE email = '{refused}'");
    assert_eq!(
        database.fetch_i64(&accounts).await,
        0,
        "the account was rolled back"
    );
    assert_eq!(
        database.fetch_i64(welcome_jobs).await,
        1,
        "the welcome job was rolled back with it"
    );
}

/// Two workers share a 2-second schedule: each tick is enqueued by exactly one of them. Ticks
/// are 2 s apart; one found due only after the next (a scheduler starved for over 2 s on a
/// loaded machine) is caught up once rather than twice, so a gap may be a multiple of 2 s —
/// never a repeat.
#[tokio::test]
async fn a_recurring_job_runs_once_per_tick_across_two_workers() {
    use outgrow_platform::jobs::{JobFilter, JobRecord, JobState};
    let settings = [
        ("OUTGROW_SESSION_CLEANUP_SCHEDULE", "*/2 * * * * *"),
        ("OUTGROW_JOB_POLL_INTERVAL", "100ms"),
    ];
    let app = TestApp::without_workers(&settings).await;
    let mut workers = [worker(&app, &settings), worker(&app, &settings)];
    let store = queue_of(&app).await;
    let cleanups = async || -> Vec<JobRecord> {
        let filter = JobFilter {
            state: None,
            queue: None,
            limit: 1000,
        };
        let jobs = store.list(&filter).await.expect("list");
        jobs.into_iter()
            .filter(|job| job.name == "sessions.cleanup")
            .collect()
    };
    // Four ticks (6 s once both workers run), however long the workers take to start.
    poll_until(
        "four ticks",
        Duration::from_secs(30),
        Duration::from_millis(250),
        async || {
            let count = cleanups().await.len();
            if count >= 4 {
                Ok(())
            } else {
                Err(format!("{count} ticks"))
            }
        },
    )
    .await;
    for child in &mut workers {
        kill_hard(child);
    }

    let cleanups = cleanups().await;
    let mut ticks: Vec<String> = cleanups
        .iter()
        .map(|job| job.dedup_key.clone().expect("tick key"))
        .collect();
    ticks.sort();
    let distinct: HashSet<&String> = ticks.iter().collect();
    assert_eq!(distinct.len(), cleanups.len(), "a tick ran twice: {ticks:?}");
    let times: Vec<chrono::DateTime<chrono::Utc>> = ticks
        .iter()
        .map(|key| {
            key.split_once('@')
                .expect("name@tick")
                .1
                .parse()
                .expect("rfc3339")
        })
        .collect();
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).num_seconds();
        assert!(gap >= 2 && gap % 2 == 0, "ticks {gap} s apart: {ticks:?}");
    }
    assert!(cleanups.iter().filter(|job| job.state == JobState::Done).count() >= cleanups.len() - 1);
}

#[tokio::test]
async fn a_stopping_worker_releases_what_it_cannot_finish_in_time() {
    let SlowDelivery {
        sink,
        settings,
        app,
        worker: mut running,
        id,
    } = slow_delivery_claimed(&[("OUTGROW_SHUTDOWN_TIMEOUT", "1s")]).await;

    let pid = nix::unistd::Pid::from_raw(running.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let signalled = Instant::now();
    let status = tokio::task::spawn_blocking(move || running.wait())
        .await
        .expect("join")
        .expect("wait");

    assert!(status.success(), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "took {:?} to stop",
        signalled.elapsed()
    );
    let job = show_job(&app, &id);
    assert_eq!(job["state"], "ready", "released, not failed: {job}");
    assert_eq!(job["attempts"], 0, "a released run does not count: {job}");
    assert_eq!(job["interruptions"], 0);
    let mut next = worker(&app, &settings);
    wait_until("another worker to finish it", Duration::from_secs(15), || {
        show_job(&app, &id)["state"] == "done"
    })
    .await;
    kill_hard(&mut next);
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn finished_jobs_past_their_retention_are_deleted_by_the_recurring_clean_up() {
    let sink = SmtpSink::up(0);
    let settings = mail_to(
        &sink,
        &[
            ("OUTGROW_JOB_CLEANUP_SCHEDULE", "* * * * * *"),
            ("OUTGROW_JOB_RETENTION", "1s"),
            ("OUTGROW_JOB_POLL_INTERVAL", "100ms"),
        ],
    );
    let app = TestApp::without_workers(&settings).await;
    enqueue_emails(&app, 5).await;
    let mut running = worker(&app, &settings);

    wait_until("five e-mails", Duration::from_secs(15), || {
        sink.messages().len() == 5
    })
    .await;
    let store = queue_of(&app).await;
    let mail = outgrow_platform::jobs::JobFilter {
        state: None,
        queue: Some("mail".into()),
        limit: 100,
    };
    let (within, every) = (Duration::from_secs(10), Duration::from_millis(100));
    poll_until(
        "the finished mail jobs to be deleted",
        within,
        every,
        async || match store.list(&mail).await.expect("list").len() {
            0 => Ok(()),
            kept => Err(format!("still kept: {kept} mail jobs")),
        },
    )
    .await;
    kill_hard(&mut running);
}
