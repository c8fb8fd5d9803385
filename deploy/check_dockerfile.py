"""Checks deploy/Dockerfile without a Docker daemon, parsed with BuildKit's own parser (the
PyPI package `dockerfile`): a syntax error fails, every file COPY takes from the build context
exists in the repository, the build is multi-stage, the final stage runs as a numeric non-root
user, has a HEALTHCHECK, and the context ignore file keeps target/ and .venv/ out.

usage: check_dockerfile.py REPO_ROOT
"""

import pathlib
import sys

import dockerfile

root = pathlib.Path(sys.argv[1])
path = root / "deploy" / "Dockerfile"
problems = []
try:
    commands = dockerfile.parse_file(str(path))
except dockerfile.GoParseError as e:
    sys.exit(f"check-deploy: {path}: {e}")

stages = [c for c in commands if c.cmd == "FROM"]
if len(stages) < 2:
    problems.append("not a multi-stage build")
final = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
tail = commands[final:]
ignore = root / "deploy" / "Dockerfile.dockerignore"
ignored = ignore.read_text().split() if ignore.exists() else []
# Build outputs the ignore file lets back in (`!target/release/flyte-rs`, for
# BINARY_FROM=prebuilt) exist only after a build, not in a clean checkout.
built = {line[1:] for line in ignored if line.startswith("!")}
for c in commands:
    if c.cmd in ("COPY", "ADD") and not any(f.startswith("--from=") for f in c.flags):
        for src in c.value[:-1]:
            if src not in built and not (root / src).exists():
                problems.append(f"line {c.start_line}: {c.cmd} {src}: not in the repository")
users = [c.value[0] for c in tail if c.cmd == "USER"]
if not users:
    problems.append("the final stage has no USER (it would run as root)")
elif users[-1].split(":")[0] in ("0", "root") or not users[-1].split(":")[0].isdigit():
    problems.append(f"USER {users[-1]}: use a numeric non-root uid (Kubernetes runAsNonRoot checks it)")
if not any(c.cmd == "HEALTHCHECK" for c in tail):
    problems.append("the final stage has no HEALTHCHECK")
for needed in ("target/", ".venv/"):
    if needed not in ignored:
        problems.append(f"{ignore.name} does not exclude {needed} (the context would be gigabytes)")

for p in problems:
    print(f"check-deploy: {path}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
