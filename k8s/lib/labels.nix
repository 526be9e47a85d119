# The one definition of the app.kubernetes.io/* labels.
# instance = the namespace (one installation per environment); selectors use name + instance only,
# so adding or changing the descriptive labels never changes an immutable selector.
{ namespace }:
rec {
  partOf = "users-platform";

  selector = name: {
    "app.kubernetes.io/name" = name;
    "app.kubernetes.io/instance" = namespace;
  };

  labels = { name, component }: selector name // {
    "app.kubernetes.io/component" = component;
    "app.kubernetes.io/part-of" = partOf;
    "app.kubernetes.io/managed-by" = "kubenix";
  };
}
