# Custom resource types (kubenix customTypes) for the CRDs the manifests use.
# Specs are free-form: the operators validate them on admission.
{
  kubernetes.customTypes = [
    { group = "monitoring.coreos.com"; version = "v1"; kind = "ServiceMonitor"; attrName = "serviceMonitors"; }
    { group = "monitoring.coreos.com"; version = "v1"; kind = "PrometheusRule"; attrName = "prometheusRules"; }
    { group = "external-secrets.io"; version = "v1"; kind = "ExternalSecret"; attrName = "externalSecrets"; }
  ];
}
