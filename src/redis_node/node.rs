//! `users-platform redis-config`: the configuration of one Redis pod (server and Sentinel),
//! written by its init container before either starts.
//!
//! Which node is the primary is the Sentinels' to say: the init asks every other pod's
//! Sentinel (`SENTINEL GET-MASTER-ADDR-BY-NAME`) and follows the majority answer. Only when
//! none answers (every pod starting at once) does it use the primary its own Sentinel knew last
//! (Sentinel rewrites its file on every change), and only without that, pod 0. So a pod that
//! comes back after a failover is configured as a replica of the new primary, never as a
//! second primary with old data.
//!
//! Sentinel rewrites its configuration file as it learns, so the file lives on the pod's volume;
//! its identity (`myid`) and epochs are carried over into the new file, so a restarted
//! Sentinel is the same voter and not a stranger the others keep counting.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;

use crate::config::RedisNodeConfig;

/// One Redis pod: its server and its Sentinel, reachable under `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
    pub sentinel_port: u16,
}

impl Node {
    pub fn address(&self) -> Address {
        Address {
            host: self.host.clone(),
            port: self.port,
        }
    }
}

/// A Redis server's `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Every pod of the set, which one this is, and the Sentinel settings they share.
#[derive(Clone)]
pub struct Topology {
    pub nodes: Vec<Node>,
    /// Index of this pod in `nodes`.
    pub me: usize,
    pub master_name: String,
    pub quorum: u16,
    pub down_after: Duration,
    pub failover_timeout: Duration,
    /// Of the servers and the Sentinels alike.
    pub password: Option<String>,
    /// The addresses Sentinel listens on.
    pub sentinel_bind: String,
}

impl Topology {
    /// Pod `n` of a StatefulSet is `<set>-<n>.<headless service>` (short names: the clients
    /// are in the same namespace).
    pub fn of_stateful_set(config: &RedisNodeConfig) -> Self {
        let nodes = (0..config.nodes)
            .map(|n| Node {
                host: format!("{}-{n}.{}", config.stateful_set, config.headless_service),
                port: config.redis_port,
                sentinel_port: config.sentinel_port,
            })
            .collect();
        Self {
            nodes,
            me: usize::from(config.ordinal),
            master_name: config.master_name.clone(),
            quorum: config.quorum,
            down_after: config.down_after,
            failover_timeout: config.failover_timeout,
            password: config.password.clone(),
            sentinel_bind: "0.0.0.0 -::".to_owned(),
        }
    }

    fn me(&self) -> &Node {
        &self.nodes[self.me]
    }
}

/// Where the primary came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The running Sentinels named it.
    Sentinels,
    /// No Sentinel answered; this pod's Sentinel knew it last.
    LastKnown,
    /// Nobody knew anything: pod 0, the initial primary.
    FirstNode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub primary: Address,
    pub source: Source,
}

/// The primary: the answer most Sentinels gave (ties: the first given), else the last known
/// one, else `first`.
pub fn decide(answers: &[Address], last_known: Option<Address>, first: &Node) -> Decision {
    let mut votes: BTreeMap<&Address, (usize, usize)> = BTreeMap::new();
    for (order, answer) in answers.iter().enumerate() {
        votes.entry(answer).or_insert((0, order)).0 += 1;
    }
    let winner = votes
        .into_iter()
        .max_by(|(_, (count_a, order_a)), (_, (count_b, order_b))| count_a.cmp(count_b).then(order_b.cmp(order_a)))
        .map(|(address, _)| address.clone());
    match (winner, last_known) {
        (Some(primary), _) => Decision {
            primary,
            source: Source::Sentinels,
        },
        (None, Some(primary)) => Decision {
            primary,
            source: Source::LastKnown,
        },
        (None, None) => Decision {
            primary: first.address(),
            source: Source::FirstNode,
        },
    }
}

/// What a previous sentinel.conf says that must survive a restart.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Previous {
    /// Lines kept verbatim: `sentinel myid`, `sentinel current-epoch`, and the monitored
    /// primary's `config-epoch` and `leader-epoch`.
    pub kept: Vec<String>,
    /// The primary it monitored last.
    pub primary: Option<Address>,
}

/// Reads what Sentinel left in its file (it rewrites it on every change).
pub fn read_previous(text: &str, master_name: &str) -> Previous {
    let mut previous = Previous::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["sentinel", "myid" | "current-epoch", _] => previous.kept.push(words.join(" ")),
            ["sentinel", "config-epoch" | "leader-epoch", name, _] if *name == master_name => {
                previous.kept.push(words.join(" "));
            }
            ["sentinel", "monitor", name, host, port, _] if *name == master_name => {
                if let Ok(port) = port.parse() {
                    previous.primary = Some(Address {
                        host: (*host).to_owned(),
                        port,
                    });
                }
            }
            _ => {}
        }
    }
    previous
}

/// The server's configuration: the static settings included, then what depends on this pod.
pub fn redis_conf(topology: &Topology, base: &Path, decision: &Decision) -> String {
    let me = topology.me();
    let mut lines = vec![
        "# Written by `users-platform redis-config` at pod start; Sentinel may rewrite it (REPLICAOF).".to_owned(),
        format!("include {}", base.display()),
        // Replicas report this name to the primary, and Sentinel hands it to clients: stable
        // across restarts, unlike the pod IP.
        format!("replica-announce-ip {}", me.host),
        format!("replica-announce-port {}", me.port),
    ];
    if decision.primary != me.address() {
        lines.push(format!("replicaof {} {}", decision.primary.host, decision.primary.port));
    }
    lines.push(String::new());
    lines.join("\n")
}

/// Sentinel's configuration: this pod's identity, the primary, and the shared settings.
pub fn sentinel_conf(topology: &Topology, dir: &Path, decision: &Decision, previous: &Previous) -> String {
    let me = topology.me();
    let name = &topology.master_name;
    let mut lines = vec![
        "# Written by `users-platform redis-config` at pod start; Sentinel rewrites it as it learns.".to_owned(),
        format!("port {}", me.sentinel_port),
        format!("bind {}", topology.sentinel_bind),
        format!("dir {}", dir.display()),
    ];
    lines.extend(previous.kept.iter().cloned());
    lines.extend([
        // Hostnames, not pod IPs: an IP changes when the pod restarts, the name does not.
        "sentinel resolve-hostnames yes".to_owned(),
        "sentinel announce-hostnames yes".to_owned(),
        format!("sentinel announce-ip {}", me.host),
        format!("sentinel announce-port {}", me.sentinel_port),
    ]);
    if let Some(password) = &topology.password {
        lines.push(format!("requirepass {password}"));
        lines.push(format!("sentinel sentinel-pass {password}"));
    }
    lines.push(format!(
        "sentinel monitor {name} {} {} {}",
        decision.primary.host, decision.primary.port, topology.quorum
    ));
    if let Some(password) = &topology.password {
        lines.push(format!("sentinel auth-pass {name} {password}"));
    }
    lines.extend([
        format!(
            "sentinel down-after-milliseconds {name} {}",
            topology.down_after.as_millis()
        ),
        format!(
            "sentinel failover-timeout {name} {}",
            topology.failover_timeout.as_millis()
        ),
        format!("sentinel parallel-syncs {name} 1"),
        String::new(),
    ]);
    lines.join("\n")
}

/// Asks the Sentinel of every other pod who the primary is; those that do not answer in
/// time, or do not know the name, are left out.
pub async fn ask_sentinels(topology: &Topology, timeout: Duration) -> Vec<Address> {
    let mut answers = Vec::new();
    for (index, node) in topology.nodes.iter().enumerate() {
        if index == topology.me {
            continue;
        }
        match tokio::time::timeout(timeout, ask_sentinel(topology, node)).await {
            Ok(Ok(Some(address))) => {
                tracing::info!(sentinel = %node.host, primary = %address, "a Sentinel named the primary");
                answers.push(address);
            }
            Ok(Ok(None)) => tracing::info!(sentinel = %node.host, "the Sentinel does not know the primary"),
            Ok(Err(err)) => tracing::info!(sentinel = %node.host, error = %err, "no answer from the Sentinel"),
            Err(_) => tracing::info!(sentinel = %node.host, ?timeout, "no answer from the Sentinel in time"),
        }
    }
    answers
}

async fn ask_sentinel(topology: &Topology, node: &Node) -> redis::RedisResult<Option<Address>> {
    use redis::IntoConnectionInfo;
    let info = (node.host.as_str(), node.sentinel_port).into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(password) = &topology.password {
        settings = settings.set_password(password.as_str());
    }
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(&topology.master_name)
        .query_async(&mut connection)
        .await?;
    Ok(reply.map(|(host, port)| Address { host, port }))
}

/// Where `configure` reads and writes.
#[derive(Debug, Clone)]
pub struct Files {
    /// The static redis.conf the written one includes.
    pub base_config: PathBuf,
    pub redis_config: PathBuf,
    /// Read first (the previous Sentinel's state), then replaced.
    pub sentinel_config: PathBuf,
}

/// Decides the primary and writes both files; returns the decision.
pub async fn configure(topology: &Topology, files: &Files, timeout: Duration) -> anyhow::Result<Decision> {
    let previous = match std::fs::read_to_string(&files.sentinel_config) {
        Ok(text) => read_previous(&text, &topology.master_name),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Previous::default(),
        Err(err) => return Err(err).with_context(|| format!("reading {}", files.sentinel_config.display())),
    };
    let answers = ask_sentinels(topology, timeout).await;
    let decision = decide(&answers, previous.primary.clone(), &topology.nodes[0]);
    let sentinel_dir = files
        .sentinel_config
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    write_private(
        &files.redis_config,
        &redis_conf(topology, &files.base_config, &decision),
    )?;
    write_private(
        &files.sentinel_config,
        &sentinel_conf(topology, sentinel_dir, &decision, &previous),
    )?;
    Ok(decision)
}

/// Writes `content` to `path` readable by the owner only (sentinel.conf holds the password),
/// through a temporary file and a rename, so a crash never leaves half a file.
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The `redis-config` command.
pub async fn run(config: &RedisNodeConfig) -> anyhow::Result<()> {
    let topology = Topology::of_stateful_set(config);
    let files = Files {
        base_config: config.base_config.clone(),
        redis_config: config.redis_config_file.clone(),
        sentinel_config: config.sentinel_config_file.clone(),
    };
    let decision = configure(&topology, &files, config.timeout).await?;
    let role = if decision.primary == topology.me().address() {
        "primary"
    } else {
        "replica"
    };
    tracing::info!(
        pod = %config.pod_name,
        role,
        primary = %decision.primary,
        source = ?decision.source,
        "wrote the Redis and Sentinel configuration"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(host: &str) -> Address {
        Address {
            host: host.to_owned(),
            port: 6379,
        }
    }

    fn topology(me: usize) -> Topology {
        let nodes = (0..3)
            .map(|n| Node {
                host: format!("redis-{n}.redis-headless"),
                port: 6379,
                sentinel_port: 26379,
            })
            .collect();
        Topology {
            nodes,
            me,
            master_name: "users".into(),
            quorum: 2,
            down_after: Duration::from_secs(5),
            failover_timeout: Duration::from_secs(60),
            password: Some("pw".into()),
            sentinel_bind: "0.0.0.0 -::".into(),
        }
    }

    #[test]
    fn the_sentinels_majority_wins_over_what_this_pod_knew() {
        let t = topology(0);
        let first = &t.nodes[0];
        let d = decide(
            &[
                address("redis-2.redis-headless"),
                address("redis-1.redis-headless"),
                address("redis-1.redis-headless"),
            ],
            Some(address("redis-0.redis-headless")),
            first,
        );
        assert_eq!(d.primary, address("redis-1.redis-headless"));
        assert_eq!(d.source, Source::Sentinels);
        // A tie goes to the first answer.
        let d = decide(
            &[address("redis-2.redis-headless"), address("redis-1.redis-headless")],
            None,
            first,
        );
        assert_eq!(d.primary, address("redis-2.redis-headless"));
    }

    #[test]
    fn without_an_answer_the_last_known_primary_then_pod_0() {
        let t = topology(2);
        let d = decide(&[], Some(address("redis-1.redis-headless")), &t.nodes[0]);
        assert_eq!(
            (d.primary, d.source),
            (address("redis-1.redis-headless"), Source::LastKnown)
        );
        let d = decide(&[], None, &t.nodes[0]);
        assert_eq!(
            (d.primary, d.source),
            (address("redis-0.redis-headless"), Source::FirstNode)
        );
    }

    #[test]
    fn the_primary_has_no_replicaof_and_replicas_follow_it() {
        let primary = Decision {
            primary: address("redis-0.redis-headless"),
            source: Source::FirstNode,
        };
        let base = Path::new("/etc/redis/redis.conf");
        let own = redis_conf(&topology(0), base, &primary);
        assert!(own.contains("include /etc/redis/redis.conf\n"), "{own}");
        assert!(own.contains("replica-announce-ip redis-0.redis-headless\n"), "{own}");
        assert!(!own.contains("replicaof"), "{own}");
        let replica = redis_conf(&topology(1), base, &primary);
        assert!(replica.contains("replicaof redis-0.redis-headless 6379\n"), "{replica}");
        assert!(
            !replica.contains("pw"),
            "the password stays in the included Secret: {replica}"
        );
    }

    #[test]
    fn sentinel_conf_resolves_hostnames_before_monitoring_and_keeps_its_identity() {
        let previous = read_previous(
            "port 26379\nsentinel myid 0123456789abcdef0123456789abcdef01234567\nsentinel current-epoch 4\n\
             sentinel monitor users redis-2.redis-headless 6379 2\nsentinel config-epoch users 4\n\
             sentinel leader-epoch users 4\nsentinel known-replica users redis-0.redis-headless 6379\n\
             sentinel config-epoch other 9\n",
            "users",
        );
        assert_eq!(previous.primary, Some(address("redis-2.redis-headless")));
        assert_eq!(
            previous.kept,
            [
                "sentinel myid 0123456789abcdef0123456789abcdef01234567",
                "sentinel current-epoch 4",
                "sentinel config-epoch users 4",
                "sentinel leader-epoch users 4",
            ]
        );
        let decision = Decision {
            primary: address("redis-2.redis-headless"),
            source: Source::Sentinels,
        };
        let conf = sentinel_conf(&topology(1), Path::new("/data"), &decision, &previous);
        let position = |needle: &str| conf.find(needle).unwrap_or_else(|| panic!("{needle:?} in {conf}"));
        assert!(position("sentinel resolve-hostnames yes") < position("sentinel monitor users"));
        for line in [
            "sentinel monitor users redis-2.redis-headless 6379 2\n",
            "sentinel announce-ip redis-1.redis-headless\n",
            "sentinel auth-pass users pw\n",
            "sentinel sentinel-pass pw\n",
            "requirepass pw\n",
            "sentinel myid 0123456789abcdef0123456789abcdef01234567\n",
            "sentinel down-after-milliseconds users 5000\n",
            "dir /data\n",
        ] {
            position(line);
        }
        assert!(!conf.contains("known-replica"), "{conf}");
    }

    #[test]
    fn stateful_set_pods_are_named_through_the_headless_service() {
        let config = RedisNodeConfig {
            pod_name: "redis-1".into(),
            ordinal: 1,
            stateful_set: "redis".into(),
            headless_service: "redis-headless".into(),
            nodes: 3,
            redis_port: 6379,
            sentinel_port: 26379,
            master_name: "users".into(),
            quorum: 2,
            down_after: Duration::from_secs(5),
            failover_timeout: Duration::from_secs(60),
            password: None,
            base_config: "/etc/redis/redis.conf".into(),
            redis_config_file: "/run/redis/redis.conf".into(),
            sentinel_config_file: "/data/sentinel.conf".into(),
            timeout: Duration::from_secs(1),
        };
        let t = Topology::of_stateful_set(&config);
        let hosts: Vec<&str> = t.nodes.iter().map(|n| n.host.as_str()).collect();
        assert_eq!(
            hosts,
            [
                "redis-0.redis-headless",
                "redis-1.redis-headless",
                "redis-2.redis-headless"
            ]
        );
        assert_eq!(t.me().host, "redis-1.redis-headless");
    }
}
