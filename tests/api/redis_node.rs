//! `redis-config`, the init step of every prod Redis pod, against real processes: three
//! "pods" (a redis-server and a Sentinel each) on loopback, configured only through the files
//! `redis_node::node::configure` writes. The primary pod dies with its Sentinel; the other two
//! fail over; the dead pod's init runs again and must bring it back as a replica of the new
//! primary (never as a second primary), with its Sentinel's identity kept. With no Sentinel
//! left at all, the init falls back to what the pod's own Sentinel knew last.
//!
//! And the prod render against the binary: the init container and the backup job's last step
//! get only variables the binary reads, and the backup steps agree on the snapshot's path.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use users_platform::redis_node::node::{Address, Decision, Files, Node, Source, Topology, configure};

use crate::helpers::{self, PASSWORD, eventually};

/// One process started from a configuration file, killed when dropped.
struct Daemon(Option<Child>);

impl Daemon {
    fn start(config: &PathBuf, sentinel: bool) -> Self {
        let mut command = Command::new("redis-server");
        command.arg(config);
        if sentinel {
            command.arg("--sentinel");
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/check installs it)");
        Self(Some(child))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One pod: its directory (the volume), the files the init writes, and its two processes.
struct Pod {
    dir: tempfile::TempDir,
    node: Node,
    redis: Option<Daemon>,
    sentinel: Option<Daemon>,
}

impl Pod {
    fn new() -> Self {
        let dir = helpers::temp_dir("redis-pod");
        let node = Node {
            host: "127.0.0.1".into(),
            port: helpers::free_port(),
            sentinel_port: helpers::free_port(),
        };
        // The ConfigMap's part: what every pod shares, and the Secret's fragment inline.
        std::fs::write(
            dir.path().join("base.conf"),
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nappendonly yes\nappendfsync always\nsave \"\"\n\
                 requirepass {PASSWORD}\nmasterauth {PASSWORD}\nmin-replicas-to-write 1\n\
                 min-replicas-max-lag 10\nreplica-serve-stale-data no\n",
                port = node.port,
                dir = dir.path().display()
            ),
        )
        .expect("write base.conf");
        Self {
            dir,
            node,
            redis: None,
            sentinel: None,
        }
    }

    fn files(&self) -> Files {
        Files {
            base_config: self.dir.path().join("base.conf"),
            redis_config: self.dir.path().join("redis.conf"),
            sentinel_config: self.dir.path().join("sentinel.conf"),
        }
    }

    fn start(&mut self) {
        let files = self.files();
        self.redis = Some(Daemon::start(&files.redis_config, false));
        self.sentinel = Some(Daemon::start(&files.sentinel_config, true));
    }

    /// The whole pod dies at once (node failure): server and Sentinel, SIGKILL.
    fn kill(&mut self) {
        self.redis.take();
        self.sentinel.take();
    }

    fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Option<T> {
        let client = redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{port}/0")).ok()?;
        let mut connection = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
        cmd.query(&mut connection).ok()
    }

    fn redis<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        Self::query(self.node.port, cmd)
    }

    fn sentinel<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        Self::query(self.node.sentinel_port, cmd)
    }

    fn replication(&self) -> String {
        self.redis(redis::cmd("INFO").arg("replication")).unwrap_or_default()
    }

    /// The primary's port as this pod's Sentinel names it.
    fn primary_per_sentinel(&self) -> Option<u16> {
        let reply: Vec<String> = self.sentinel(redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg("users"))?;
        reply.get(1)?.parse().ok()
    }

    fn sentinel_id(&self) -> Option<String> {
        self.sentinel(redis::cmd("SENTINEL").arg("MYID"))
    }
}

fn topology(pods: &[Pod], me: usize) -> Topology {
    Topology {
        nodes: pods.iter().map(|pod| pod.node.clone()).collect(),
        me,
        master_name: "users".into(),
        quorum: 2,
        down_after: Duration::from_millis(1000),
        failover_timeout: Duration::from_millis(2000),
        password: Some(PASSWORD.into()),
        sentinel_bind: "127.0.0.1".into(),
    }
}

async fn init(pods: &[Pod], me: usize) -> Decision {
    configure(&topology(pods, me), &pods[me].files(), Duration::from_millis(500))
        .await
        .expect("redis-config")
}

/// Waits until every Sentinel in `sentinels` knows the other two and `replicas` replicas, and
/// `primary` streams to `replicas` replicas.
async fn wait_settled(pods: &[Pod], sentinels: &[usize], primary: usize, replicas: usize) {
    eventually(Duration::from_secs(60), "the pods to settle", || {
        let count = |pod: &Pod, what: &str| {
            pod.sentinel::<Vec<redis::Value>>(redis::cmd("SENTINEL").arg(what).arg("users"))
                .map_or(0, |entries| entries.len())
        };
        let settled = sentinels.iter().all(|&s| {
            pods[s].primary_per_sentinel() == Some(pods[primary].node.port)
                && count(&pods[s], "SENTINELS") == 2
                && count(&pods[s], "REPLICAS") >= replicas
        }) && pods[primary]
            .replication()
            .lines()
            .filter(|line| line.starts_with("slave") && line.contains("state=online"))
            .count()
            >= replicas;
        std::future::ready(settled)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_primary_pod_comes_back_as_a_replica_of_the_new_primary() {
    let mut pods: Vec<Pod> = (0..3).map(|_| Pod::new()).collect();

    // Cold start: no Sentinel runs yet, so every pod's init picks pod 0.
    for me in 0..3 {
        let decision = init(&pods, me).await;
        assert_eq!(decision.source, Source::FirstNode);
        assert_eq!(decision.primary, pods[0].node.address());
    }
    for pod in &mut pods {
        pod.start();
    }
    wait_settled(&pods, &[0, 1, 2], 0, 2).await;
    let _: () = pods[0]
        .redis(redis::cmd("SET").arg("survivor").arg("yes"))
        .expect("write on the primary");
    let old_id = pods[0].sentinel_id().expect("pod 0's Sentinel id");

    // Pod 0 dies; the two other Sentinels (a majority of three) promote a replica.
    pods[0].kill();
    let new_primary = eventually(Duration::from_secs(30), "a failover", || {
        let named = pods[1].primary_per_sentinel().filter(|&port| port != pods[0].node.port);
        std::future::ready(named)
    })
    .await;
    let promoted = pods
        .iter()
        .position(|pod| pod.node.port == new_primary)
        .expect("one of ours");

    // Pod 0 restarts: its init asks the surviving Sentinels, not its memory.
    let decision = init(&pods, 0).await;
    assert_eq!(decision.source, Source::Sentinels);
    assert_eq!(decision.primary, pods[promoted].node.address());
    let written = std::fs::read_to_string(pods[0].files().redis_config).expect("redis.conf");
    assert!(
        written.contains(&format!("replicaof 127.0.0.1 {new_primary}")),
        "{written}"
    );
    pods[0].start();
    eventually(
        Duration::from_secs(30),
        "pod 0 to come back as a replica of the new primary",
        || {
            let info = pods[0].replication();
            std::future::ready(
                info.contains("role:slave")
                    && info.contains(&format!("master_port:{new_primary}"))
                    && info.contains("master_link_status:up"),
            )
        },
    )
    .await;
    let value: Option<String> = pods[0].redis(redis::cmd("GET").arg("survivor"));
    assert_eq!(value.as_deref(), Some("yes"), "the write made before the failover");
    assert_eq!(
        pods[0].sentinel_id().as_deref(),
        Some(old_id.as_str()),
        "the Sentinel kept its identity"
    );
    wait_settled(&pods, &[0, 1, 2], promoted, 2).await;

    // Every Sentinel gone (a cold start of all pods): the init of a pod falls back to the
    // primary its own Sentinel knew last, the promoted one, not pod 0.
    for pod in &mut pods {
        pod.sentinel.take();
    }
    let other = (0..3).find(|&i| i != promoted && i != 0).expect("a third pod");
    let decision = init(&pods, other).await;
    assert_eq!(
        decision,
        Decision {
            primary: Address {
                host: "127.0.0.1".into(),
                port: new_primary
            },
            source: Source::LastKnown,
        }
    );
}

/// The `name: value` pairs of the env list of the container whose args start with `command`
/// in k8s/rendered/prod.yaml (values unquoted; `None` for `valueFrom`). A line scan, enough for
/// the renderer's fixed layout (k8s/tools/yamlify.py): env follows args, image follows env.
fn rendered_env(command: &str) -> Vec<(String, Option<String>)> {
    let prod = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/rendered/prod.yaml"))
        .expect("k8s/rendered/prod.yaml");
    let lines: Vec<&str> = prod.lines().collect();
    let start = lines
        .iter()
        .position(|line| line.trim() == format!("- {command}"))
        .unwrap_or_else(|| panic!("a container running {command} in the prod render"));
    let mut env = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        let line = line.trim();
        if line.starts_with("image:") || line.starts_with("name: ") && !lines[i - 1].trim().starts_with("- name:") {
            break;
        }
        if let Some(name) = line.strip_prefix("- name: ") {
            let value = lines
                .get(i + 1)
                .and_then(|next| next.trim().strip_prefix("value: "))
                .map(|value| value.trim_matches('\'').to_owned());
            env.push((name.to_owned(), value));
        }
    }
    env
}

/// Every variable in `env` is one the binary's `subcommand` reads (its own or a global one):
/// clap ignores unknown variables, so a misspelt one would silently leave a default in place.
fn assert_reads_every_variable(subcommand: &str, env: &[(String, Option<String>)]) {
    use clap::CommandFactory;
    let root = users_platform::config::Cli::command();
    let command = root
        .find_subcommand(subcommand)
        .unwrap_or_else(|| panic!("subcommand {subcommand}"));
    let read: Vec<String> = root
        .get_arguments()
        .chain(command.get_arguments())
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    for (name, _) in env {
        assert!(
            read.contains(name),
            "{subcommand} does not read {name} (it reads {read:?})"
        );
    }
}

fn value_of<'a>(env: &'a [(String, Option<String>)], name: &str) -> &'a str {
    env.iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
        .unwrap_or_else(|| panic!("{name} in {env:?}"))
}

/// The init container of prod's Redis pods, run as rendered: every variable it gets is one the
/// binary reads, and the files it writes for redis-1 follow redis-0 with prod's Sentinel
/// settings. No Sentinel answers here
/// (the names do not resolve), so this is the cold-start path.
#[tokio::test]
async fn the_rendered_init_container_configures_a_replica_pod() {
    let env = rendered_env("redis-config");
    assert_reads_every_variable("redis-config", &env);
    let dir = helpers::temp_dir("redis-config");
    let password = dir.path().join("password");
    std::fs::write(&password, "pw\n").expect("password file");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_users-platform"));
    command.arg("redis-config").env_clear();
    for (name, value) in &env {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    // What the pod provides: its name (downward API) and the mounted files, here in a temp dir;
    // the file paths the manifest leaves at their defaults are the mounts /run/redis and /data.
    let (redis_conf, sentinel_conf) = (dir.path().join("redis.conf"), dir.path().join("sentinel.conf"));
    command
        .env("POD_NAME", "redis-1")
        .env("REDIS_PASSWORD_FILE", &password)
        .env("REDIS_CONFIG_FILE", &redis_conf)
        .env("SENTINEL_CONFIG_FILE", &sentinel_conf)
        .env("REDIS_TIMEOUT_MS", "300");
    let output = command.output().expect("users-platform redis-config");
    assert!(output.status.success(), "{output:?}");
    let redis_conf = std::fs::read_to_string(redis_conf).expect("redis.conf");
    for line in [
        "include /etc/redis/redis.conf",
        "replica-announce-ip redis-1.redis-headless",
        "replicaof redis-0.redis-headless 6379",
    ] {
        assert!(redis_conf.lines().any(|l| l == line), "{line:?} in {redis_conf}");
    }
    let sentinel_conf = std::fs::read_to_string(sentinel_conf).expect("sentinel.conf");
    for line in [
        "port 26379",
        "sentinel announce-ip redis-1.redis-headless",
        "sentinel monitor users redis-0.redis-headless 6379 2",
        "sentinel down-after-milliseconds users 5000",
        "sentinel failover-timeout users 10000",
        "sentinel auth-pass users pw",
    ] {
        assert!(sentinel_conf.lines().any(|l| l == line), "{line:?} in {sentinel_conf}");
    }
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("\"source\":\"FirstNode\""), "{log}");
}

/// The backup CronJob's `file` step as rendered: the variables are the binary's, and the path it
/// files is the one the `snapshot` step writes and the `verify` step checks.
#[test]
fn the_rendered_backup_steps_agree_on_the_snapshot_path() {
    let env = rendered_env("redis-backup");
    assert_reads_every_variable("redis-backup", &env);
    let incoming = value_of(&env, "BACKUP_INCOMING");
    assert_eq!(value_of(&env, "BACKUP_DIR"), "/backups");
    assert_eq!(value_of(&env, "BACKUP_KEEP"), "7");
    let prod = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/rendered/prod.yaml"))
        .expect("k8s/rendered/prod.yaml");
    let args: Vec<&str> = prod.lines().map(str::trim).collect();
    let after = |marker: &str| {
        args.iter()
            .position(|line| *line == marker)
            .and_then(|i| args.get(i + 1))
            .map(|line| line.trim_start_matches("- "))
            .unwrap_or_else(|| panic!("{marker} in the prod render"))
    };
    assert_eq!(after("- --rdb"), incoming, "snapshot writes what file files");
    // verify: `args: [<path>]` then `command: [/bin/redis-check-rdb]`.
    assert!(
        args.windows(4).any(|w| w[0] == "- args:"
            && w[1] == format!("- {incoming}")
            && w[2] == "command:"
            && w[3] == "- /bin/redis-check-rdb"),
        "verify checks {incoming}"
    );
}
