# Entry point of scripts/render-manifests: evaluates k8s/default.nix for one environment with the
# golden placeholder images, or, with imagesJSON (a JSON object name -> image reference), with
# those: scripts/ci/render-pinned.sh passes the name:tag@sha256 references the images job pushed. kubenixSrc / nixpkgsLibSrc are source trees (absolute paths); when
# empty, the flake's locked inputs (flake.lock, inputs `kubenix` and `nixpkgs` by default) are
# fetched with builtins.fetchTree, which needs the `flakes` experimental feature and the network
# or a populated store.
{ root, env, kubenixSrc ? "", nixpkgsLibSrc ? "", kubenixInput ? "kubenix", nixpkgsInput ? "nixpkgs", imagesJSON ? "" }:
let
  rootPath = /. + root;
  lock = builtins.fromJSON (builtins.readFile (rootPath + "/flake.lock"));
  # flake.lock input references are a node name or a `follows` path from the root node.
  resolve = ref:
    if builtins.isString ref then ref
    else builtins.foldl' (node: input: resolve lock.nodes.${node}.inputs.${input}) lock.root ref;
  locked = input: (builtins.fetchTree lock.nodes.${resolve lock.nodes.${lock.root}.inputs.${input}}.locked).outPath;
  srcOr = given: input: if given != "" then given else locked input;
in
import (rootPath + "/k8s") {
  lib = import ((srcOr nixpkgsLibSrc nixpkgsInput) + "/lib");
  kubenix = srcOr kubenixSrc kubenixInput;
  inherit env;
  images =
    if imagesJSON == "" then import (rootPath + "/k8s/images-placeholder.nix")
    else builtins.fromJSON imagesJSON;
}
