"""Rebuild a provider's schema from its prebuilt cdktf package (npm `@cdktf/provider-*`).

cdktf generates those packages from the real provider's `terraform providers schema -json`,
and each `lib/<type>/index.js` (for large types also `lib/<type>/index-structs/*.js`) embeds
the generated TypeScript in an inline source map. That TypeScript says, for every attribute
of every block class,

    // NAME - computed: B, optional: B, required: B

followed by the attribute's field or getter, and every nested block has a
`...ToHclTerraform` function whose entries carry `isBlock`, `type` and `storageClassType`.
From these this module rebuilds attribute types, required/optional/computed, block nesting
(list, set, single) and `max_items = 1`. The packages do not keep descriptions, sensitivity,
deprecation, `min_items`/`max_items` other than 1, nor anything the provider validates in Go
(enums, ConflictsWith, ExactlyOneOf...): none of those is in the result.

The result has the `terraform providers schema -json` shape plus a top-level "source" object
naming the package and the provider version it was generated from. Standard library only.

    python -m tools.tf_offline_plan.cdktf_schema PACKAGE.tgz OUT.json
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

_FIELD_COMMENT = re.compile(
    r"^  // ([a-z0-9_]+) - computed: (true|false), optional: (true|false), required: (true|false)\s*$")
_SECTION_COMMENT = "  // ===="
_CLASS = re.compile(r"^export class (\w+) extends ([\w.]+) \{", re.M)
_HCL_FUNCTION = re.compile(r"^export function (\w+)ToHclTerraform\(", re.M)
_HCL_ENTRY = re.compile(
    r"^\s+(\w+): \{\s*\n\s+value: [^\n]*\n\s+isBlock: (true|false),\s*\n"
    r"\s+type: \"(\w+)\",\s*\n\s+storageClassType: \"(\w+)\",",
    re.M)
_SOURCE_MAP = re.compile(r"sourceMappingURL=data:application/json;base64,(\S+)")
_NESTED_CLASS = re.compile(r"private _\w+ = new (\w+)\(this, \"\w+\"(?:, (true|false))?\)")
_RESOURCE_TYPE = re.compile(r'public static readonly tfResourceType = "([\w-]+)";')
_TOP_LEVEL_BASES = {
    "cdktf.TerraformResource": "resource_schemas",
    "cdktf.TerraformDataSource": "data_source_schemas",
    "cdktf.TerraformProvider": "provider",
}

_SCALARS = {"string": "string", "number": "number", "boolean": "bool"}

# How a getter or field reads its value -> the attribute's Terraform type (first match wins).
_GETTER_TYPES: list[tuple[re.Pattern[str], Any]] = [(re.compile(p), t) for p, t in [
    (r"cdktf\.Fn\.tolist\(this\.getListAttribute\(", ["set", "string"]),
    (r"cdktf\.Fn\.tolist\(this\.getNumberListAttribute\(", ["set", "number"]),
    (r"this\.getStringAttribute\(", "string"),
    (r"this\.getNumberAttribute\(", "number"),
    (r"this\.getBooleanAttribute\(", "bool"),
    (r"this\.getListAttribute\(", ["list", "string"]),
    (r"this\.getNumberListAttribute\(", ["list", "number"]),
    (r"this\.getStringMapAttribute\(", ["map", "string"]),
    (r"this\.getNumberMapAttribute\(", ["map", "number"]),
    (r"this\.getBooleanMapAttribute\(", ["map", "bool"]),
    (r"new cdktf\.StringMap\(", ["map", "string"]),
    (r"new cdktf\.NumberMap\(", ["map", "number"]),
    (r"new cdktf\.BooleanMap\(", ["map", "bool"]),
    (r"new cdktf\.AnyMap\(", ["map", "dynamic"]),
    (r"new cdktf\.StringMapList\(", ["list", ["map", "string"]]),
    (r"this\.interpolationForAttribute\(", "dynamic"),
]]
_FIELD_TYPES = {
    "string": "string", "number": "number", "boolean | cdktf.IResolvable": "bool",
    "string[]": ["list", "string"], "number[]": ["list", "number"],
    "{ [key: string]: string }": ["map", "string"],
}


def typescript_of(js_text: str) -> str:
    """The TypeScript embedded in a compiled file's inline source map ('' when there is none)."""
    match = _SOURCE_MAP.search(js_text)
    if not match:
        return ""
    return json.loads(base64.b64decode(match.group(1)))["sourcesContent"][0]


def _storage_type(kind: str, storage_class: str) -> Any:
    """Terraform type of an attribute from its HCL synthesis entry (`type`, `storageClassType`)."""
    if kind == "simple":
        return _SCALARS.get(storage_class, "dynamic")
    collection = "set" if kind == "set" else "list"
    if match := re.fullmatch(r"(string|number|boolean|any)(List|Map)", storage_class):
        element = _SCALARS.get(match.group(1), "dynamic")
        return ["map", element] if match.group(2) == "Map" else [collection, element]
    if match := re.fullmatch(r"(string|number|boolean)(List|Map)(List|Map)", storage_class):
        element = _SCALARS[match.group(1)]
        inner = ["map", element] if match.group(2) == "Map" else ["list", element]
        return ["map", inner] if match.group(3) == "Map" else [collection, inner]
    return "dynamic"


def _hcl_entries(text: str) -> dict[str, tuple[bool, str, str]]:
    """name -> (is_block, type, storage_class_type) of the entries of one HCL synthesis."""
    return {m.group(1): (m.group(2) == "true", m.group(3), m.group(4)) for m in _HCL_ENTRY.finditer(text)}


def _split(source: str, pattern: re.Pattern[str], stop: str) -> list[tuple[re.Match[str], str]]:
    """Each match of pattern with the text up to the next match, cut at the first `stop` line."""
    matches = list(pattern.finditer(source))
    parts = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(source)
        body = source[match.end():end]
        if cut := re.search(stop, body, re.M):
            body = body[:cut.start()]
        parts.append((match, body))
    return parts


class _TypeSource:
    """The generated TypeScript of one resource, data source or provider type."""

    def __init__(self, source: str) -> None:
        self.classes = {m.group(1): (m.group(2), body) for m, body in _split(source, _CLASS, r"^export ")}
        self.hcl: dict[str, dict[str, tuple[bool, str, str]]] = {}
        for match, body in _split(source, _HCL_FUNCTION, r"^export (class|interface)"):
            name = match.group(1)
            self.hcl[name[0].upper() + name[1:]] = _hcl_entries(body)
        tname = _RESOURCE_TYPE.search(source)
        self.type_name = tname.group(1) if tname else None

    def top_level(self) -> tuple[str, str] | None:
        """(class name, schema kind) of the type's resource, data source or provider class."""
        for name, (base, _) in self.classes.items():
            if base in _TOP_LEVEL_BASES:
                return name, _TOP_LEVEL_BASES[base]
        return None

    def fields(self, cls: str) -> list[tuple[str, bool, bool, bool, str]]:
        """(name, computed, optional, required, declaration) of each attribute comment of cls."""
        lines = self.classes[cls][1].split("\n")
        found = []
        for i, line in enumerate(lines):
            match = _FIELD_COMMENT.match(line)
            if not match:
                continue
            declaration = []
            for following in lines[i + 1:]:
                if _FIELD_COMMENT.match(following) or following.startswith(_SECTION_COMMENT):
                    break
                declaration.append(following)
            found.append((match.group(1), match.group(2) == "true", match.group(3) == "true",
                          match.group(4) == "true", "\n".join(declaration[:8])))
        return found

    def object_type(self, cls: str) -> list[Any]:
        """cty object type of a nested class used as an attribute (computed, or a nested attribute)."""
        return _object_type(self.block(cls, None))

    def block(self, cls: str, hcl_key: str | None) -> Schema:
        """The schema block of class cls; hcl_key names its HCL synthesis (None: computed-only)."""
        hcl = self.hcl.get(hcl_key, {}) if hcl_key else {}
        attributes: Schema = {}
        block_types: Schema = {}
        for name, computed, optional, required, declaration in self.fields(cls):
            flags = {k: True for k, v in (("required", required), ("optional", optional),
                                          ("computed", computed)) if v}
            nested = _NESTED_CLASS.search(declaration)
            if nested and not nested.group(1).startswith("cdktf."):
                base, nesting, max_items = _nesting(nested.group(1), wraps_set=nested.group(2) == "true")
                if name in hcl and hcl[name][1] == "struct":
                    nesting, max_items = "single", 0
                computed_only = computed and not optional and not required
                if computed_only or (name in hcl and not hcl[name][0]):
                    # SDKv2 computed nested objects, and plugin-framework nested attributes, are
                    # attributes of object type, not blocks.
                    object_type = self.object_type(base + "OutputReference")
                    attributes[name] = {"type": object_type if nesting == "single" else [nesting, object_type],
                                        **flags}
                    continue
                block_type: Schema = {"nesting_mode": nesting, "block": self.block(base + "OutputReference", base)}
                if required and nesting in ("list", "set"):
                    block_type["min_items"] = 1
                if max_items:
                    block_type["max_items"] = max_items
                block_types[name] = block_type
                continue
            if name in hcl and not hcl[name][0]:
                attributes[name] = {"type": _storage_type(hcl[name][1], hcl[name][2]), **flags}
            else:
                attributes[name] = {"type": _declared_type(declaration), **flags}
        block: Schema = {"attributes": attributes}
        if block_types:
            block["block_types"] = block_types
        return block

    def provider_block(self, cls: str) -> Schema:
        """The provider's configuration block: plain fields; its blocks come from the HCL synthesis."""
        hcl = _hcl_entries(self.classes[cls][1])
        attributes: Schema = {}
        block_types: Schema = {}
        for name, *_ in self.fields(cls):
            if name not in hcl:
                continue
            is_block, kind, storage_class = hcl[name]
            if is_block:
                struct = storage_class.removesuffix("List")
                nested = {k: {"type": _storage_type(v[1], v[2]), "optional": True}
                          for k, v in self.hcl.get(struct, {}).items() if not v[0]}
                block_types[name] = {"nesting_mode": "list", "block": {"attributes": nested}, "max_items": 1}
            else:
                attributes[name] = {"type": _storage_type(kind, storage_class), "optional": True}
        return {"attributes": attributes, "block_types": block_types}


def _nesting(cls: str, wraps_set: bool) -> tuple[str, str, int]:
    """(base class name, nesting mode, max_items) of a nested block's cdktf class."""
    for suffix, nesting, max_items in (("OutputReference", "list", 1),
                                       ("List", "set" if wraps_set else "list", 0),
                                       ("Map", "map", 0)):
        if cls.endswith(suffix):
            return cls[:-len(suffix)], nesting, max_items
    raise ValueError(f"unexpected nested class {cls}")


def _declared_type(declaration: str) -> Any:
    for pattern, tf_type in _GETTER_TYPES:
        if pattern.search(declaration):
            return tf_type
    field = re.search(r"private _\w+\??: ([^;]+);", declaration)
    return _FIELD_TYPES.get(field.group(1).strip() if field else "", "dynamic")


def _object_type(block: Schema) -> list[Any]:
    members = {name: a["type"] for name, a in block.get("attributes", {}).items()}
    for name, bt in block.get("block_types", {}).items():
        inner = _object_type(bt["block"])
        members[name] = [bt["nesting_mode"], inner] if bt["nesting_mode"] in ("list", "set", "map") else inner
    return ["object", members]


def _package_files(package: Path) -> tuple[dict[str, Any], Iterator[tuple[str, str]]]:
    """(package.json, (type directory, its TypeScript) for each lib/<type>/) of a package.

    package is the npm tarball itself (read in memory, nothing is unpacked) or an unpacked
    tarball's directory (holding package/, or package/ itself).
    """
    if package.is_file():
        return _tarball_files(package)
    root = package / "package" if (package / "package").is_dir() else package
    meta = json.loads((root / "package.json").read_text(encoding="utf-8"))

    def sources() -> Iterator[tuple[str, str]]:
        for directory in sorted((root / "lib").iterdir()):
            index = directory / "index.js"
            if index.exists():
                others = [p for p in sorted(directory.glob("**/*.js")) if p != index]
                yield directory.name, "\n".join(typescript_of(p.read_text(encoding="utf-8")) for p in [index, *others])

    return meta, sources()


def _tarball_files(tarball: Path) -> tuple[dict[str, Any], Iterator[tuple[str, str]]]:
    meta: dict[str, Any] | None = None
    scripts: dict[str, dict[str, str]] = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if not member.isfile():
                continue
            if member.name == "package/package.json":
                meta = json.load(archive.extractfile(member))  # type: ignore[arg-type]
                continue
            parts = member.name.split("/")
            if len(parts) >= 4 and parts[:2] == ["package", "lib"] and member.name.endswith(".js"):
                text = archive.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
                scripts.setdefault(parts[2], {})["/".join(parts[3:])] = typescript_of(text)
    if meta is None:
        raise ValueError(f"{tarball} has no package/package.json")

    def sources() -> Iterator[tuple[str, str]]:
        for name in sorted(scripts):
            files = scripts.pop(name)
            if "index.js" in files:
                index = files.pop("index.js")
                yield name, "\n".join([index, *(files[k] for k in sorted(files))])

    return meta, sources()


def convert(package: Path) -> Schema:
    """The schema of the provider a cdktf package (tarball or unpacked directory) was generated from."""
    meta, sources = _package_files(package)
    provider = meta.get("cdktf", {}).get("provider", {})
    address, version = provider.get("name"), provider.get("version")
    if not address or not version:
        raise ValueError(f"{package}: package.json names no cdktf.provider")
    schemas: Schema = {"provider": {"version": 0, "block": {}}, "resource_schemas": {}, "data_source_schemas": {}}
    skipped = []
    for _, typescript in sources:
        source = _TypeSource(typescript)
        top = source.top_level()
        if top is None or (source.type_name is None and top[1] != "provider"):
            continue
        cls, kind = top
        if kind == "provider":
            schemas["provider"] = {"version": 0, "block": source.provider_block(cls)}
            continue
        # The top-level HCL synthesis lives inside the resource class itself.
        source.hcl["__top__"] = _hcl_entries(source.classes[cls][1])
        try:
            schemas[kind][source.type_name] = {"version": 0, "block": source.block(cls, "__top__")}
        except ValueError as error:
            print(f"cdktf_schema: skipped {source.type_name}: {error}", file=sys.stderr)
            skipped.append(source.type_name)
    return {
        "format_version": "1.0",
        "source": {"package": f"{meta['name']}@{meta['version']}", "provider": address,
                   "provider_version": version, "skipped": skipped},
        "provider_schemas": {address: schemas},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path, help="a @cdktf/provider-* npm tarball (.tgz), or its unpacked directory")
    parser.add_argument("out", type=Path, help="where to write the schema JSON")
    args = parser.parse_args(argv)
    schema = convert(args.package)
    args.out.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True), encoding="utf-8")
    source = schema["source"]
    schemas = schema["provider_schemas"][source["provider"]]
    print(f"{source['provider']} {source['provider_version']} ({source['package']}): "
          f"{len(schemas['resource_schemas'])} resources, {len(schemas['data_source_schemas'])} data sources",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
