//! Redis as a replicated system of record (issue 16): a primary, two replicas and three
//! Sentinels as real processes on loopback, the user-service as the real binary finding its
//! primary through them. Under concurrent create/patch/delete load the primary is SIGKILLed:
//! every acknowledged write must be readable afterwards, writes must resume within a bound,
//! and the service must never restart. Figures print as `FIGURE` lines.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;

use crate::helpers::{
    self, MASTER_NAME, PASSWORD, Process, RedisServer, ReplicatedRedis, SENTINEL_PASSWORD, eventually, figure, local,
};

/// The target for "writes resume after the primary died" with a 1 s `down-after`: the median
/// round must meet it (figures in docs/reliability.md).
const WRITE_RESUME_TARGET: Duration = Duration::from_secs(5);

/// What every round must meet: the service must follow a failover by itself, however late.
/// Measured outliers: a split Sentinel vote (retried after twice the failover timeout) gave an
/// 8.2 s resume; once, with Sentinel naming the new primary after 2.3 s, writes resumed only
/// after 19.7 s, a delay on the service's side not explained yet (docs/reliability.md §9).
/// Typical rounds resume 1–2.5 s after Sentinel names the primary.
const WRITE_RESUME_BOUND: Duration = Duration::from_secs(30);

/// What a client was told about one user; only acknowledged outcomes are recorded. A user
/// whose last write got no answer (503, timeout) is dropped from the check: that write may
/// or may not have been applied, as documented.
#[derive(Debug, Clone)]
enum Acknowledged {
    Present { name: String, email: String },
    Deleted,
}

#[derive(Default)]
struct Ledger {
    users: Mutex<HashMap<String, Acknowledged>>,
    /// (when the request was sent, when it was acknowledged) of every acknowledged write.
    acks: Mutex<Vec<(Instant, Instant)>>,
    acknowledged: AtomicUsize,
    unanswered: AtomicUsize,
}

impl Ledger {
    fn ack(&self, sent: Instant, id: &str, state: Acknowledged) {
        self.users.lock().expect("ledger").insert(id.to_owned(), state);
        self.acks.lock().expect("ledger").push((sent, Instant::now()));
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
    }

    fn unanswered(&self, id: Option<&str>) {
        if let Some(id) = id {
            self.users.lock().expect("ledger").remove(id);
        }
        self.unanswered.fetch_add(1, Ordering::Relaxed);
    }

    /// The first acknowledgement of a write sent after `moment`.
    fn first_ack_sent_after(&self, moment: Instant) -> Option<Instant> {
        let acks = self.acks.lock().expect("ledger");
        acks.iter().filter(|(sent, _)| *sent > moment).map(|(_, at)| *at).min()
    }

    fn acks_sent_after(&self, moment: Instant) -> usize {
        let acks = self.acks.lock().expect("ledger");
        acks.iter().filter(|(sent, _)| *sent > moment).count()
    }
}

/// One worker: create a user, rename it, and delete every third one, recording each answer.
async fn write_load(base: String, worker: usize, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let email = format!("w{worker}-{n}@failover.example");
        let sent = Instant::now();
        let created = http
            .post(format!("{base}/users"))
            .json(&json!({"name": format!("created {n}"), "email": email}))
            .send()
            .await;
        let id = match created {
            Ok(response) if response.status() == 201 => {
                let user: serde_json::Value = response.json().await.expect("user JSON");
                let id = user["id"].as_str().expect("id").to_owned();
                let name = format!("created {n}");
                ledger.ack(
                    sent,
                    &id,
                    Acknowledged::Present {
                        name,
                        email: email.clone(),
                    },
                );
                id
            }
            Ok(response) => {
                assert_eq!(response.status(), 503, "only 503 while the primary is away");
                ledger.unanswered(None);
                continue;
            }
            Err(_) => {
                ledger.unanswered(None);
                continue;
            }
        };
        let name = format!("renamed {n}");
        let sent = Instant::now();
        let patched = http
            .patch(format!("{base}/users/{id}"))
            .json(&json!({"name": name}))
            .send()
            .await;
        match patched {
            Ok(response) if response.status() == 200 => {
                ledger.ack(sent, &id, Acknowledged::Present { name, email });
            }
            other => {
                assert!(other.as_ref().map_or(true, |r| r.status() == 503), "{other:?}");
                ledger.unanswered(Some(&id));
                continue;
            }
        }
        if n.is_multiple_of(3) {
            let sent = Instant::now();
            match http.delete(format!("{base}/users/{id}")).send().await {
                Ok(response) if response.status() == 204 => ledger.ack(sent, &id, Acknowledged::Deleted),
                other => {
                    assert!(other.as_ref().map_or(true, |r| r.status() == 503), "{other:?}");
                    ledger.unanswered(Some(&id));
                }
            }
        }
    }
}

/// Every acknowledged outcome, read back through the service (from the current primary).
async fn assert_every_acknowledged_write_is_readable(base: &str, ledger: &Ledger) -> usize {
    let http = helpers::client();
    let expected: Vec<(String, Acknowledged)> = ledger
        .users
        .lock()
        .expect("ledger")
        .iter()
        .map(|(id, state)| (id.clone(), state.clone()))
        .collect();
    let mut lost = Vec::new();
    for (id, state) in &expected {
        let response = http.get(format!("{base}/users/{id}")).send().await.expect("GET");
        match state {
            Acknowledged::Present { name, email } => {
                if response.status() != 200 {
                    lost.push(format!("{id}: {} instead of 200", response.status()));
                    continue;
                }
                let user: serde_json::Value = response.json().await.expect("user JSON");
                if user["name"] != json!(name) || user["email"] != json!(email) {
                    lost.push(format!("{id}: {user} instead of name {name:?}"));
                }
            }
            Acknowledged::Deleted if response.status() != 404 => {
                lost.push(format!("{id}: deleted, but {}", response.status()));
            }
            Acknowledged::Deleted => {}
        }
    }
    assert!(lost.is_empty(), "{} acknowledged writes lost: {lost:#?}", lost.len());
    expected.len()
}

fn user_service_on_sentinels(cluster: &ReplicatedRedis, port: u16, dir: &std::path::Path) -> Process {
    let sentinel_password = dir.join("sentinel-password");
    std::fs::write(&sentinel_password, format!("{SENTINEL_PASSWORD}\n")).expect("write password file");
    Process::spawn(
        &["user-service"],
        &[
            ("PORT", port.to_string()),
            ("REDIS_SENTINELS", cluster.sentinels_setting()),
            ("REDIS_MASTER_NAME", MASTER_NAME.to_owned()),
            ("REDIS_SENTINEL_PASSWORD_FILE", sentinel_password.display().to_string()),
            ("REDIS_PASSWORD", PASSWORD.to_owned()),
            ("REDIS_TIMEOUT_MS", "1000".to_owned()),
            ("SHUTDOWN_DRAIN_SECONDS", "0".to_owned()),
            ("LOG_LEVEL", "warn".to_owned()),
        ],
    )
}

/// `redis_primary{address="…"}` from the service's metrics.
async fn primary_in_metrics(base: &str) -> Option<String> {
    let page = helpers::get_text(&helpers::client(), format!("{base}/metrics")).await;
    page.lines()
        .filter(|line| line.starts_with("redis_primary{") && line.ends_with(" 1"))
        .find_map(|line| line.split('"').nth(1).map(str::to_owned))
}

/// `details.redisPrimary` of the service's readiness body.
async fn primary_in_readiness(base: &str) -> Option<String> {
    let ready = helpers::get_json(&helpers::client(), format!("{base}/health/ready")).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    ready["details"]["redisPrimary"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_primary_under_load_loses_no_acknowledged_write() {
    const ROUNDS: usize = 3;
    const WORKERS: usize = 8;
    const WRITES_BEFORE_KILL: usize = 300;
    const WRITES_AFTER_RESUME: usize = 300;
    let mut cluster = ReplicatedRedis::start().await;
    let dir = helpers::temp_dir("failover");
    let port = helpers::free_port();
    let mut service = user_service_on_sentinels(&cluster, port, dir.path());
    let base = local(port);
    helpers::wait_ready(
        &helpers::client(),
        &format!("{base}/health/ready"),
        Duration::from_secs(20),
    )
    .await;
    let pid = service.pid();
    assert_eq!(
        primary_in_readiness(&base).await,
        Some(format!("127.0.0.1:{}", cluster.primary_port().expect("primary"))),
        "readiness names the primary"
    );

    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| tokio::spawn(write_load(base.clone(), worker, ledger.clone(), stop.clone())))
        .collect();

    let mut resume_times = Vec::new();
    for round in 1..=ROUNDS {
        let before = ledger.acknowledged.load(Ordering::Relaxed);
        eventually(Duration::from_secs(60), "writes acknowledged before the kill", || {
            std::future::ready(ledger.acknowledged.load(Ordering::Relaxed) >= before + WRITES_BEFORE_KILL)
        })
        .await;
        let old_primary = cluster.kill_primary();
        let killed_at = Instant::now();
        let mut promoted_at = None;
        let resumed_at = eventually(Duration::from_secs(30), "a write acknowledged after the kill", || {
            if promoted_at.is_none() && cluster.primary_port().is_some_and(|port| port != old_primary) {
                promoted_at = Some(Instant::now());
            }
            std::future::ready(ledger.first_ack_sent_after(killed_at))
        })
        .await;
        let resume = resumed_at - killed_at;
        if let Some(promoted_at) = promoted_at {
            figure(
                &format!("failover round {round}: Sentinel named the new primary after (ms)"),
                (promoted_at - killed_at).as_millis(),
            );
        }
        figure(
            &format!("failover round {round}: writes resumed after (ms)"),
            resume.as_millis(),
        );
        resume_times.push(resume);
        eventually(
            Duration::from_secs(60),
            "writes acknowledged after the failover",
            || std::future::ready(ledger.acks_sent_after(resumed_at) >= WRITES_AFTER_RESUME),
        )
        .await;
        let new_primary = cluster.primary_port().expect("a new primary");
        assert_ne!(new_primary, old_primary, "Sentinel promoted a replica");
        assert_eq!(
            primary_in_metrics(&base).await,
            Some(format!("127.0.0.1:{new_primary}")),
            "the service reports the primary it writes to"
        );
        assert_eq!(
            primary_in_readiness(&base).await,
            Some(format!("127.0.0.1:{new_primary}")),
            "readiness names the new primary"
        );
        // The old primary comes back (same data directory) and Sentinel makes it a replica.
        let node = cluster
            .nodes
            .iter_mut()
            .find(|node| node.port == old_primary)
            .expect("the killed node");
        node.restart().await;
        eventually(
            Duration::from_secs(30),
            "the old primary to return as a replica",
            || {
                let node = cluster.node(old_primary).expect("node");
                let info = node.info("replication");
                std::future::ready(info.contains("role:slave") && info.contains("master_link_status:up"))
            },
        )
        .await;
        cluster.wait_settled(2).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("load worker");
    }

    let checked = assert_every_acknowledged_write_is_readable(&base, &ledger).await;
    let primary = cluster.node(cluster.primary_port().expect("primary")).expect("node");
    let problems = helpers::index_problems(&mut primary.connection(), false);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(service.still_running(), "the service never restarts");
    assert_eq!(service.pid(), pid);
    let acknowledged = ledger.acknowledged.load(Ordering::Relaxed);
    figure("failover: acknowledged writes", acknowledged);
    figure("failover: users checked", checked);
    figure(
        "failover: writes answered 503 or not at all",
        ledger.unanswered.load(Ordering::Relaxed),
    );
    figure("failover: rounds", ROUNDS);
    resume_times.sort();
    let slowest = resume_times.last().copied().unwrap_or_default();
    let median = resume_times[resume_times.len() / 2];
    figure("failover: median write resume (ms)", median.as_millis());
    figure("failover: slowest write resume (ms)", slowest.as_millis());
    assert!(
        median <= WRITE_RESUME_TARGET,
        "writes resumed after {median:?} in the median round, target {WRITE_RESUME_TARGET:?}"
    );
    assert!(
        slowest <= WRITE_RESUME_BOUND,
        "writes resumed after {slowest:?}, bound {WRITE_RESUME_BOUND:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_a_replica_or_every_sentinel_changes_nothing_for_clients() {
    let mut cluster = ReplicatedRedis::start().await;
    let dir = helpers::temp_dir("failover");
    let port = helpers::free_port();
    let mut service = user_service_on_sentinels(&cluster, port, dir.path());
    let base = local(port);
    let http = helpers::client();
    helpers::wait_ready(&http, &format!("{base}/health/ready"), Duration::from_secs(20)).await;
    let primary = cluster.primary_port().expect("primary");

    let mut created = Vec::new();
    let mut every_answer_succeeds = async |phase: &str| {
        for n in 0..50 {
            let email = format!("{phase}-{n}@replica.example");
            let response = helpers::post(&http, format!("{base}/users"), &json!({"name": phase, "email": email})).await;
            assert_eq!(response.status(), 201, "{phase}: create {n}");
            let user: serde_json::Value = response.json().await.expect("JSON");
            let id = user["id"].as_str().expect("id").to_owned();
            assert_eq!(
                helpers::get_status(&http, format!("{base}/users/{id}")).await,
                200,
                "{phase}"
            );
            created.push(id);
        }
        assert_eq!(
            helpers::get_status(&http, format!("{base}/health/ready")).await,
            200,
            "{phase}"
        );
    };
    every_answer_succeeds("healthy").await;

    // A replica dies: the other one still confirms every write.
    let replica = cluster
        .nodes
        .iter_mut()
        .find(|node| node.port != primary)
        .expect("a replica");
    replica.kill();
    every_answer_succeeds("replica-down").await;

    // Every Sentinel dies: nobody can tell the service where the primary is, so it keeps the
    // one it has.
    for sentinel in &mut cluster.sentinels {
        sentinel.kill();
    }
    every_answer_succeeds("sentinels-down").await;
    assert_eq!(primary_in_metrics(&base).await, Some(format!("127.0.0.1:{primary}")));
    assert!(service.still_running());
    assert_eq!(created.len(), 150);
}

/// With no replica to confirm it, a write is not acknowledged: 503 within the deadline (the
/// write itself may be on the primary, as documented).
#[tokio::test]
async fn a_write_no_replica_confirms_is_not_acknowledged() {
    let redis = RedisServer::start().await;
    let mut config = redis.config(Duration::from_millis(300));
    config.write_replicas = 1;
    let registry = users_platform::telemetry::metrics::new_registry();
    let store = users_platform::users::store::RedisStore::connect(
        &config,
        users_platform::users::store::redis::RedisMetrics::register(&registry),
    )
    .expect("store");
    let shutdown = users_platform::http::shutdown::Shutdown::new();
    let app =
        users_platform::users::build_with_store(Arc::new(store), registry, &helpers::settings(), shutdown.clone());
    let served = helpers::serve(app.router(), shutdown).await;
    let started = Instant::now();
    let response = helpers::post(
        &helpers::client(),
        served.url("/users"),
        &json!({"name": "Unconfirmed", "email": "unconfirmed@example.com"}),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered within the deadline"
    );
}
