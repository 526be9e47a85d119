# dev: only what differs from the defaults in ../options.nix.
{
  usersPlatform = {
    logLevel = "debug";
    seedSampleUsers = true;
    ingress.host = "api.dev.users-platform.example.com";
  };
}
