# The clients' entry point: an Ingress for the api-gateway Service (ingress-nginx by default).
# Only the API prefix is routed (never /health or /metrics). TLS in prod: the certificate is
# issued by cert-manager (annotation cert-manager.io/cluster-issuer) into `tls.secretName`, or,
# without a clusterIssuer, read from a Secret of that name you create. The ingress controller's
# request metrics are the availability SLI (k8s/monitoring/rules.nix, docs/monitoring.md): when no
# gateway pod is ready the controller answers 503 and that is charged to the error budget.
{ lib, config, platform, ... }:
let
  cfg = config.usersPlatform;
  ing = cfg.ingress;
  name = "api-gateway";
in
{
  config = lib.mkIf ing.enable {
    kubernetes.resources.ingresses.${name} = {
      metadata = platform.meta {
        inherit name;
        component = "gateway";
        annotations = ing.annotations
          // lib.optionalAttrs (ing.tls.enable && ing.tls.clusterIssuer != null) {
          "cert-manager.io/cluster-issuer" = ing.tls.clusterIssuer;
        };
      };
      spec = {
        ingressClassName = ing.className;
        rules = [{
          inherit (ing) host;
          http.paths = [{
            inherit (ing) path;
            pathType = "Prefix";
            backend.service = { inherit name; port.name = "http"; };
          }];
        }];
      } // lib.optionalAttrs ing.tls.enable {
        tls = [{ hosts = [ ing.host ]; inherit (ing.tls) secretName; }];
      };
    };
  };
}
