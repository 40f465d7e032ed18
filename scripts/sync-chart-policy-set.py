#!/usr/bin/env python3
"""Copies policies/policies.yaml (the built-in policy set) into the `policySet:` block of
charts/plate-policy/values.yaml, comments dropped and YAML anchors expanded.

tests/chart (test_default_policy_set_is_policies_yaml) fails while the two differ; run
this after editing policies/policies.yaml:

    .venv/bin/python scripts/sync-chart-policy-set.py      # needs PyYAML (the .venv of scripts/chart-tests.sh has it)
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "policies" / "policies.yaml"
VALUES = ROOT / "charts" / "plate-policy" / "values.yaml"


class Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True  # write anchors out in full

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # indent list items under their key


def _scalar(value):
    return not isinstance(value, (list, dict))


def _short(items):
    return len(", ".join(str(i) for i in items)) <= 60


def _list(dumper, data):
    flow = all(_scalar(i) for i in data) and _short(data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _dict(dumper, data):
    flow = (
        bool(data)
        and len(data) <= 3
        and all(_scalar(v) for v in data.values())
        and _short(f"{k}: {v}" for k, v in data.items())
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


Dumper.add_representer(list, _list)
Dumper.add_representer(dict, _dict)


def main() -> int:
    policy_set = yaml.safe_load(SOURCE.read_text())
    body = yaml.dump(policy_set, Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True)
    block = "policySet:\n" + "".join(
        f"  {line}\n" if line else "\n" for line in body.rstrip("\n").split("\n")
    )
    text = VALUES.read_text()
    # The block runs from `policySet:` to the next comment or top-level key.
    new, count = re.subn(r"^policySet:\n(?:(?:  .*)?\n)*?(?=\n# |\S)", block, text, flags=re.M)
    if count != 1:
        print(f"{VALUES}: no single top-level `policySet:` block found", file=sys.stderr)
        return 1
    if yaml.safe_load(new)["policySet"] != policy_set:
        print("internal error: the written block does not parse back to the policy set", file=sys.stderr)
        return 1
    if new != text:
        VALUES.write_text(new)
        print(f"updated {VALUES.relative_to(ROOT)} from {SOURCE.relative_to(ROOT)}")
    else:
        print(f"{VALUES.relative_to(ROOT)} already matches {SOURCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
