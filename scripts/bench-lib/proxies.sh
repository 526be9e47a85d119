# shellcheck shell=bash
# shellcheck disable=SC2154 # work, the ports, us_url and bare_bin are set by scripts/bench
# Sourced by scripts/bench: nginx and HAProxy from Debian in front of the bench's user-service,
# configured the way one would put them there instead of the gateway: /api/ stripped to /,
# HTTP/1.1 keep-alive to the upstream, no access log, two workers (nginx) or two threads
# (HAProxy), in the foreground, on loopback only. They are the yardstick for what the gateway
# costs per request (docs/performance.md). Next to them, when scripts/bench built it, the bare
# hyper proxy (examples/bare_proxy.rs): the same relaying on hyper and tokio as the gateway,
# with none of its features, so the floor of what a hyper-based gateway can cost.
#
# Uses from scripts/bench: $work, $us_port, $us_url, $nginx_port, $haproxy_port, $bare_port,
# $bare_bin (empty: no bare proxy), log, die.
# Sets: nginx_pid, haproxy_pid, bare_pid.

write_nginx_conf() {
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/client;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream user_service { server 127.0.0.1:$us_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location /api/ {
      proxy_pass http://user_service/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
}

write_haproxy_cfg() {
  cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 2
  maxconn 8192
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend api
  bind 127.0.0.1:$haproxy_port
  default_backend user_service
backend user_service
  http-request replace-path /api(/.*) \1
  server user_service 127.0.0.1:$us_port
CONF
}

# start_proxies: starts them all and waits until each relays a page of users.
start_proxies() {
  write_nginx_conf
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" 2>>"$work/nginx.log" &
  nginx_pid=$!
  write_haproxy_cfg
  haproxy -db -f "$work/haproxy.cfg" >>"$work/haproxy.log" 2>&1 &
  haproxy_pid=$!
  local -a ports=("$nginx_port" "$haproxy_port") pids=("$nginx_pid" "$haproxy_pid")
  if [[ -n "$bare_bin" ]]; then
    PORT=$bare_port USER_SERVICE_URL=$us_url "$bare_bin" >>"$work/bare-proxy.log" 2>&1 &
    bare_pid=$!
    ports+=("$bare_port") pids+=("$bare_pid")
  fi
  local port pid
  for port in "${ports[@]}"; do
    for _ in $(seq 200); do
      curl -fsS -o /dev/null "http://127.0.0.1:$port/api/users?limit=1" 2>/dev/null && continue 2
      for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "a proxy (pid $pid) exited during start-up"
      done
      sleep 0.05
    done
    die "the proxy on :$port does not relay /api/users after 10 s"
  done
  log "$(nginx -v 2>&1 | sed 's|.*nginx/|nginx |') on :$nginx_port, $(haproxy -v | sed -n '1s/^HAProxy version \([^ ]*\).*/HAProxy \1/p') on :$haproxy_port$([[ -z "$bare_pid" ]] || echo ", bare hyper proxy on :$bare_port")"
}
