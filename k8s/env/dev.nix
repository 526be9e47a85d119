# dev (kind): only what differs from the defaults in ../options.nix.
{
  usersPlatform = {
    imagePullPolicy = "IfNotPresent"; # images are `kind load`ed, not pulled
    logLevel = "debug";
    seedSampleUsers = true;
  };
}
