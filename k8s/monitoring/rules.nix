# Prometheus recording and alerting rules of users-platform, for the prod namespace, as pure data:
#   nix-instantiate --eval --strict --json k8s/monitoring/rules.nix
# scripts/render-rules writes monitoring/rules.yml from it (promtool tests, the real-Prometheus
# test). The rules themselves, and their arguments, are in ./rules-for.nix; k8s/monitoring.nix
# calls that with the environment's namespace.
import ./rules-for.nix { }
