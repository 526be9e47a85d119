# Indented JSON (2 spaces, keys sorted like builtins.toJSON) for data embedded in manifests,
# so that e.g. the Grafana dashboard in the golden renders diffs line by line in review.
let
  inherit (builtins) attrNames concatStringsSep isAttrs isList length map toJSON;

  go = indent: value:
    let inner = indent + "  ";
    in
    if isAttrs value && !(value ? outPath) then
      if value == { } then "{}"
      else "{\n" + concatStringsSep ",\n" (map (k: inner + toJSON k + ": " + go inner value.${k}) (attrNames value)) + "\n" + indent + "}"
    else if isList value then
      if length value == 0 then "[]"
      else "[\n" + concatStringsSep ",\n" (map (v: inner + go inner v) value) + "\n" + indent + "]"
    else toJSON value;
in
{
  toPrettyJSON = value: go "" value + "\n";
}
