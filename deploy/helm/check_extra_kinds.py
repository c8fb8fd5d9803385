"""Validates the rendered manifests whose kinds Kubernetes' own schemas do not cover
(CRDs such as the Prometheus operator's ServiceMonitor) against deploy/helm/schemas/, and fails
when kubernetes-validate found no schema for a kind that has none here either.

usage: check_extra_kinds.py SCHEMAS_DIR KUBERNETES_VALIDATE_LOG MANIFEST...
"""

import json
import pathlib
import re
import sys

import jsonschema
import yaml

schemas_dir = pathlib.Path(sys.argv[1])
log = pathlib.Path(sys.argv[2]).read_text()
schemas = {p.stem: json.loads(p.read_text()) for p in schemas_dir.glob("*.json")}
failures = 0

# "Couldn't find schema for kind ServiceMonitor with api version monitoring.coreos.com/v1"
for kind, api in re.findall(r"Couldn't find schema for kind (\S+) with api version (\S+)", log):
    if f"{api.split('/')[0]}_{kind}" not in schemas:
        print(f"check-deploy: no schema for {api} {kind} (add one to {schemas_dir})", file=sys.stderr)
        failures += 1

for path in sys.argv[3:]:
    for doc in yaml.safe_load_all(pathlib.Path(path).read_text()):
        if not doc:
            continue
        key = f"{doc['apiVersion'].split('/')[0]}_{doc['kind']}"
        schema = schemas.get(key)
        if schema is None:
            continue
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
        for e in errors:
            where = ".".join(str(p) for p in e.absolute_path)
            print(f"check-deploy: {path}: {doc['kind']} {where}: {e.message}", file=sys.stderr)
        failures += len(errors)

sys.exit(1 if failures else 0)
