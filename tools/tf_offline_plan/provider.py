"""A schema-only Terraform provider, for `terraform validate` and `plan` without the network.

Terraform starts it like any provider plugin (the filesystem mirror's wrapper execs this file
with the cache's Python, which has the `tf` package). It serves a provider schema read from a
`terraform providers schema -json` file (as cdktf_schema.py writes it) and accepts every
configuration. Terraform core still checks the configuration against that schema: resource and
data source types, unknown or missing arguments, blocks versus attributes, types, references to
attributes. The provider adds the one check SDKv2 providers make on every resource ("this field
cannot be set" for a computed-only attribute given a value), plans computed attributes as
unknown, and gives data sources placeholder values ("mock-NAME", 0, false, [], {}). It never
calls an API, writes no file, and refuses to apply.

Environment (set by the wrapper):
  OFFLINE_PLAN_SCHEMA    the compiled schema: `provider.py --compile SCHEMA.json OUT.pb` writes it
  OFFLINE_PLAN_PROVIDER  the provider's address, e.g. registry.terraform.io/hashicorp/google
  OFFLINE_PLAN_TYPES     a JSON list of the resource and data source types to serve (default: all)

The go-plugin handshake, its mTLS certificate and the gRPC server come from the `tf` package
(PyPI: tf, a Python implementation of Terraform's plugin protocol 6). It caches its self-signed
certificate under $HOME/.cache/tf-python-provider; the wrapper points HOME into the cache.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import tf.provider
from tf import runner
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc
from tf.types import Unknown
from tf.utils import Diagnostic, read_dynamic_value, to_dynamic_value

_NESTING = {"single": pb.Schema.NestedBlock.SINGLE, "list": pb.Schema.NestedBlock.LIST,
            "set": pb.Schema.NestedBlock.SET, "map": pb.Schema.NestedBlock.MAP,
            "group": pb.Schema.NestedBlock.GROUP}
_LISTS = (pb.Schema.NestedBlock.LIST, pb.Schema.NestedBlock.SET)


#-- Compiling a schema JSON file into the protocol's GetProviderSchema response --#


def block_message(block: dict[str, Any]) -> pb.Schema.Block:
    attributes = [
        pb.Schema.Attribute(name=name, type=json.dumps(a["type"]).encode(),
                            required=bool(a.get("required")), optional=bool(a.get("optional")),
                            computed=bool(a.get("computed")), sensitive=bool(a.get("sensitive")))
        for name, a in sorted(block.get("attributes", {}).items())
    ]
    nested = [
        pb.Schema.NestedBlock(type_name=name, block=block_message(bt["block"]), nesting=_NESTING[bt["nesting_mode"]],
                              min_items=bt.get("min_items", 0), max_items=bt.get("max_items", 0))
        for name, bt in sorted(block.get("block_types", {}).items())
    ]
    return pb.Schema.Block(version=0, attributes=attributes, block_types=nested)


def _schema_message(schema: dict[str, Any]) -> pb.Schema:
    return pb.Schema(version=schema.get("version", 0), block=block_message(schema["block"]))


def compile_schema(schema_json: str, out: str) -> None:
    """Write the GetProviderSchema response of the one provider in a `providers schema -json` file."""
    with open(schema_json, encoding="utf-8") as handle:
        (schema,) = json.load(handle)["provider_schemas"].values()
    response = pb.GetProviderSchema.Response(
        provider=_schema_message(schema["provider"]),
        provider_meta=pb.Schema(version=0, block=pb.Schema.Block()),
        resource_schemas={k: _schema_message(v) for k, v in schema["resource_schemas"].items()},
        data_source_schemas={k: _schema_message(v) for k, v in schema["data_source_schemas"].items()},
        server_capabilities=pb.ServerCapabilities(plan_destroy=True),
    )
    with open(out, "wb") as handle:
        handle.write(response.SerializeToString())


def load_schema(path: str, types: set[str] | None) -> pb.GetProviderSchema.Response:
    """The compiled response, cut to `types` (the configuration's resource and data source types)."""
    with open(path, "rb") as handle:
        response = pb.GetProviderSchema.Response.FromString(handle.read())
    if types is not None:
        # Terraform decodes every schema it is sent, twice per command: sending only the types
        # the configuration uses saves most of its time. An unknown type is still unknown.
        for kind in (response.resource_schemas, response.data_source_schemas):
            for name in [n for n in kind if n not in types]:
                del kind[name]
    return response


#-- What the provider adds to terraform's own checks --#


def placeholder(tf_type: Any, name: str) -> Any:
    """A known value of tf_type for a data source's computed attribute."""
    if tf_type == "string":
        return f"mock-{name}"
    if tf_type == "number":
        return 0
    if tf_type == "bool":
        return False
    if isinstance(tf_type, list) and tf_type[0] in ("list", "set"):
        return []
    if isinstance(tf_type, list) and tf_type[0] == "map":
        return {}
    return None


def fill_computed(block: pb.Schema.Block, value: Any, make) -> Any:
    """value with each null computed attribute, at every depth, replaced by make(type, name)."""
    if value is None or value is Unknown:
        return value
    out = dict(value)
    for attribute in block.attributes:
        if attribute.computed and out.get(attribute.name) is None:
            out[attribute.name] = make(json.loads(attribute.type), attribute.name)
    for nested in block.block_types:
        item = out.get(nested.type_name)
        if item is None or item is Unknown:
            continue
        if nested.nesting in _LISTS:
            out[nested.type_name] = [fill_computed(nested.block, i, make) for i in item]
        elif nested.nesting == pb.Schema.NestedBlock.MAP:
            out[nested.type_name] = {k: fill_computed(nested.block, i, make) for k, i in item.items()}
        else:
            out[nested.type_name] = fill_computed(nested.block, item, make)
    return out


def computed_only_paths(block: pb.Schema.Block, value: Any, path: list[Any]) -> list[list[Any]]:
    """Attribute paths of computed-only attributes that the configuration sets."""
    if not isinstance(value, dict):
        return []
    found = []
    for attribute in block.attributes:
        settable = attribute.optional or attribute.required
        if attribute.computed and not settable and value.get(attribute.name) not in (None, Unknown):
            found.append(path + [attribute.name])
    for nested in block.block_types:
        item = value.get(nested.type_name)
        if isinstance(item, list):
            for index, element in enumerate(item):
                found += computed_only_paths(nested.block, element, path + [nested.type_name, (index,)])
        elif isinstance(item, dict) and nested.nesting == pb.Schema.NestedBlock.SINGLE:
            found += computed_only_paths(nested.block, item, path + [nested.type_name])
    return found


class SchemaOnlyProvider(rpc.ProviderServicer):
    """Serves one provider's schema; validates against it and plans, never applies."""

    def __init__(self, schema: pb.GetProviderSchema.Response) -> None:
        self.schema = schema

    def _computed_only_diagnostics(self, schemas, type_name: str, config: Any) -> list[pb.Diagnostic]:
        return [Diagnostic.error("Computed-only attribute cannot be set",
                                 f"{type_name}: {'.'.join(str(s[0]) if isinstance(s, tuple) else s for s in path)}"
                                 ": this field cannot be set", path).to_pb()
                for path in computed_only_paths(schemas[type_name].block, config, [])]

    def GetMetadata(self, request, context):
        return pb.GetMetadata.Response(server_capabilities=pb.ServerCapabilities(plan_destroy=True))

    def GetProviderSchema(self, request, context):
        return self.schema

    def ValidateProviderConfig(self, request, context):
        return pb.ValidateProviderConfig.Response()

    def ValidateResourceConfig(self, request, context):
        config = read_dynamic_value(request.config)
        return pb.ValidateResourceConfig.Response(
            diagnostics=self._computed_only_diagnostics(self.schema.resource_schemas, request.type_name, config))

    def ValidateDataResourceConfig(self, request, context):
        config = read_dynamic_value(request.config)
        return pb.ValidateDataResourceConfig.Response(
            diagnostics=self._computed_only_diagnostics(self.schema.data_source_schemas, request.type_name, config))

    def ConfigureProvider(self, request, context):
        return pb.ConfigureProvider.Response()

    def UpgradeResourceState(self, request, context):
        return pb.UpgradeResourceState.Response(upgraded_state=pb.DynamicValue(json=request.raw_state.json))

    def ReadResource(self, request, context):
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request, context):
        proposed = read_dynamic_value(request.proposed_new_state)
        if proposed is not None and read_dynamic_value(request.prior_state) is None:
            # A create: whatever the provider computes is known only after apply.
            proposed = fill_computed(self.schema.resource_schemas[request.type_name].block, proposed,
                                     lambda tf_type, name: Unknown)
        return pb.PlanResourceChange.Response(planned_state=to_dynamic_value(proposed))

    def ApplyResourceChange(self, request, context):
        return pb.ApplyResourceChange.Response(diagnostics=[
            Diagnostic.error("Schema-only provider", "tf_offline_plan's provider cannot apply.").to_pb()])

    def ReadDataSource(self, request, context):
        config = read_dynamic_value(request.config)
        state = fill_computed(self.schema.data_source_schemas[request.type_name].block, config, placeholder)
        return pb.ReadDataSource.Response(state=to_dynamic_value(state))

    def StopProvider(self, request, context):
        return pb.StopProvider.Response()


class _Name:
    """What tf.runner asks of a provider before serving it: its full name."""

    def __init__(self, address: str) -> None:
        self.address = address

    def full_name(self) -> str:
        return self.address


def main(argv: list[str]) -> None:
    if argv[1:2] == ["--compile"]:
        compile_schema(argv[2], argv[3])
        return
    types = None
    if types_file := os.environ.get("OFFLINE_PLAN_TYPES"):
        with open(types_file, encoding="utf-8") as handle:
            types = set(json.load(handle))
    servicer = SchemaOnlyProvider(load_schema(os.environ["OFFLINE_PLAN_SCHEMA"], types))
    # tf.runner.run_provider serves tf.provider.ProviderServicer(app), the servicer of its own
    # class-based framework; this provider has no classes, only a schema, so it serves ours.
    tf.provider.ProviderServicer = lambda app: servicer
    runner.run_provider(_Name(os.environ["OFFLINE_PLAN_PROVIDER"]), argv)


if __name__ == "__main__":
    main(sys.argv)
