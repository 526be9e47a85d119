//! Wiring a configuration into running servers, and the shutdown order.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    config::{Config, GatewayConfig, ServerConfig, Target, UserServiceConfig},
    gateway,
    http::{
        server,
        shutdown::{self, Shutdown},
    },
    redis_node, service_name, users,
};

pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_target(config.target))
}

async fn run_target(target: Target) -> anyhow::Result<()> {
    match target {
        Target::ApiGateway(config) => {
            let listener = bind("PORT", &config.server).await?;
            let shutdown = stopped_by_signal(&config.server)?;
            run_gateway(listener, config, shutdown).await
        }
        Target::UserService(config) => {
            let listener = bind("PORT", &config.server).await?;
            let shutdown = stopped_by_signal(&config.server)?;
            run_user_service(listener, config, shutdown).await
        }
        Target::All {
            mut gateway,
            user_service,
        } => {
            let gateway_listener = bind("PORT", &gateway.server).await?;
            let user_service_listener = bind("USER_SERVICE_PORT", &user_service.server).await?;
            let user_service_port = user_service_listener.local_addr()?.port();
            gateway.upstream.base_url = format!("http://127.0.0.1:{user_service_port}").parse()?;
            let gateway_port = gateway_listener.local_addr()?.port();
            eprintln!(
                "users-platform: api-gateway on http://localhost:{gateway_port}, user-service on http://localhost:{user_service_port}\n\
                 try: curl -s -X POST localhost:{gateway_port}/api/users -H 'content-type: application/json' \
                 -d '{{\"name\":\"Ada Lovelace\",\"email\":\"ada@example.com\"}}'; curl -s localhost:{gateway_port}/api/users"
            );
            let gateway_shutdown = Shutdown::new();
            let user_service_shutdown = Shutdown::new();
            // Both turn unready at the signal; the gateway closes first, so its in-flight
            // requests can still reach the user-service it depends on.
            tokio::spawn(shutdown::on_signal(
                listen_for_signals()?,
                vec![gateway_shutdown.clone(), user_service_shutdown.clone()],
                gateway.server.shutdown.drain,
            ));
            let users_task = tokio::spawn(run_user_service(
                user_service_listener,
                user_service,
                user_service_shutdown.clone(),
            ));
            let gateway_result = run_gateway(gateway_listener, gateway, gateway_shutdown).await;
            user_service_shutdown.stop();
            let users_result = users_task.await.context("user-service task")?;
            gateway_result.and(users_result)
        }
        Target::RedisConfig(config) => redis_node::node::run(&config).await,
        Target::RedisBackup(config) => redis_node::backup::run(&config),
    }
}

/// The shutdown of a process that runs one server: SIGTERM or Ctrl-C starts its drain.
fn stopped_by_signal(server: &ServerConfig) -> anyhow::Result<Shutdown> {
    let shutdown = Shutdown::new();
    tokio::spawn(shutdown::on_signal(
        listen_for_signals()?,
        vec![shutdown.clone()],
        server.shutdown.drain,
    ));
    Ok(shutdown)
}

/// Before anything listens: a SIGTERM from then on drains instead of killing the process.
fn listen_for_signals() -> anyhow::Result<shutdown::Signals> {
    shutdown::Signals::listen().context("listening for SIGTERM and SIGINT")
}

async fn bind(variable: &str, server: &ServerConfig) -> anyhow::Result<TcpListener> {
    server::bind(server.port)
        .await
        .with_context(|| format!("{variable}: cannot listen on port {}", server.port))
}

async fn run_gateway(listener: TcpListener, config: GatewayConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let app = gateway::build(&config, shutdown.clone());
    app.spawn_background_work();
    let address = listener.local_addr()?;
    log_listening(service_name::API_GATEWAY, address);
    tracing::info!(upstream = %config.upstream.redacted_url(), "forwarding /api/users to the user-service");
    server::serve(listener, app.router(), shutdown, &config.server).await?;
    tracing::info!(service = service_name::API_GATEWAY, "stopped");
    Ok(())
}

async fn run_user_service(listener: TcpListener, config: UserServiceConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let app = users::build(&config, shutdown.clone())?;
    app.spawn_background_work(config.seed_sample_users);
    log_listening(service_name::USER_SERVICE, listener.local_addr()?);
    server::serve(listener, app.router(), shutdown, &config.server).await?;
    // The store's connection is released with the last handle on it: this app's, and those of
    // its background tasks, which end with the server.
    drop(app);
    tracing::info!(service = service_name::USER_SERVICE, "stopped");
    Ok(())
}

fn log_listening(service: &'static str, address: SocketAddr) {
    tracing::info!(service, address = %address, "listening");
}
