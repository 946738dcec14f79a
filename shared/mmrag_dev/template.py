"""template.yaml as data: CloudFormation's short-form tags, parameter values, conditions and intrinsics resolved, and
each function's handler, code directory and environment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]  # the checkout: shared/mmrag_dev/template.py
TEMPLATE = ROOT / "template.yaml"
STACK = "mmrag-local"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics, as their long forms ({"Ref": ...}, {"Fn::Sub": ...})."""


def _intrinsic(tag: str, name: str) -> None:
    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    CfnLoader.add_constructor(tag, construct)


for _tag in (
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "And",
    "Equals",
    "If",
    "Not",
    "Or",
):
    _intrinsic(f"!{_tag}", f"Fn::{_tag}")
_intrinsic("!Ref", "Ref")
_intrinsic("!Condition", "Condition")


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - our own loader, SafeLoader-based


@dataclass
class FunctionSpec:
    name: str
    properties: dict[str, Any]
    handler: str  # module.function, or run.sh
    code_dir: Path
    environment: dict[str, str] = field(default_factory=dict)


class Stack:
    """The template with parameter values, conditions evaluated and resources' stand-in physical ids."""

    def __init__(self, template: dict[str, Any], overrides: dict[str, str] | None = None):
        self.template = template
        self.resources: dict[str, dict[str, Any]] = template.get("Resources", {})
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            value = (overrides or {}).get(name, spec.get("Default", ""))
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            self.params[name] = value
        self.physical: dict[str, dict[str, str]] = {}  # logical id -> {"Ref": ..., "Arn": ..., ...}

    # conditions and intrinsics
    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def active(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": STACK,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.params:
            return self.params[name]
        if name in self.physical:
            return self.physical[name]["Ref"]
        return f"{STACK}-{name}"  # a resource this stand-in does not create (a function, an API ...)

    def getatt(self, logical_id: str, attribute: str) -> Any:
        known = self.physical.get(logical_id, {})
        if attribute in known:
            return known[attribute]
        if attribute == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-{logical_id}"
        return f"{STACK}-{logical_id}-{attribute}"

    def resolve(self, value: Any) -> Any:  # noqa: PLR0911, PLR0912 - one branch per intrinsic
        if isinstance(value, list):
            return [v for v in (self.resolve(x) for x in value) if v is not None]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.getatt(logical, attribute)
        if key == "Fn::Sub":
            if isinstance(arg, str):
                text, extra = arg, {}
            else:
                text, extra = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}

            def sub(m: re.Match[str]) -> str:
                expr = m.group(1)
                if expr in extra:
                    return str(extra[expr])
                if "." in expr and not expr.startswith("AWS::"):
                    return str(self.getatt(*expr.split(".", 1)))
                return str(self.ref(expr))

            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        if key == "Fn::If":
            cond, yes, no = arg
            return self.resolve(yes if self.condition(cond) else no)
        if key == "Fn::Equals":
            a, b = (self.resolve(x) for x in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(x) for x in arg)
        if key == "Fn::Or":
            return any(self.resolve(x) for x in arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(x) for x in self.resolve(items))
        return {k: self.resolve(v) for k, v in value.items()}

    # functions
    def functions(self) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.resources.items() if r.get("Type") == "AWS::Serverless::Function"}

    def function(self, name: str) -> FunctionSpec:
        functions = self.functions()
        if name not in functions:
            raise SystemExit(f"no function {name!r} in template.yaml; there are: {', '.join(sorted(functions))}")
        props = functions[name].get("Properties", {})
        if props.get("PackageType") == "Image":
            # the image copies functions/*.py into the task root (functions/ingest_image/Dockerfile)
            handler, code_dir = props["ImageConfig"]["Command"][0], ROOT / "functions"
        else:
            handler, code_dir = props["Handler"], ROOT / props["CodeUri"]
        env: dict[str, str] = {}
        globals_env = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        for source in (globals_env, props.get("Environment", {}).get("Variables", {})):
            for key, raw in source.items():
                value = self.resolve(raw)
                if value is not None:
                    env[key] = str(value)
        return FunctionSpec(name, props, handler, code_dir, env)
