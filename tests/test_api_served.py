"""The admin API on a real server: Schemathesis (from PyPI) generates requests from the served OpenAPI
document and sends them to gunicorn with a write token; no answer is a 5xx, every answer matches the
document, and the audit log holds exactly the changes the API said it made (a refused request changed
nothing). Then the baked README's `curl` turns a flag on, as a deploy script would."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

import pytest
from bakery import copy_project, flask_cli, free_port, run, serving

pytestmark = pytest.mark.slow

API = "/gatekeeper/api/v1"
MAX_EXAMPLES = 2  # per operation: about 70 requests, ~20 s on a loaded 2-core machine
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def accepted_changes(har: Path) -> int:
    """How many audited changes the API reported in its answers: one per `changed: true`, an import's
    `applied`."""
    total = 0
    for entry in json.loads(har.read_text())["log"]["entries"]:
        if not 200 <= entry["response"]["status"] < 300 or entry["request"]["method"] == "GET":
            continue
        body = json.loads(entry["response"]["content"].get("text") or "{}")
        total += 1 if body.get("changed") is True else body.get("applied", 0)
    return total


def audited_by(url: str, token: str, actor: str) -> int:
    request = urllib.request.Request(
        f"{url}{API}/audit?actor={actor}&per_page=1", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["total"]


def test_schemathesis_finds_no_server_error_no_undocumented_answer_and_no_refused_write(
    baked_project, baked_env, tmp_path
):
    project = copy_project(baked_project, tmp_path)
    env = {
        **baked_env(),
        "DATABASE_URL": f"sqlite:///{project / 'api.db'}",
        "GATEKEEPER_API_RATE_LIMIT": "100000 per minute",
    }
    flask_cli(project, env, "init-db")
    token = flask_cli(project, env, "gk", "tokens", "create", "schemathesis", "--scope", "write").strip()
    address = f"127.0.0.1:{free_port()}"
    app = f"{project.name}:create_app()"
    command = ["python", "-m", "gunicorn", "--bind", address, "--workers", "1", app]
    document = f"http://{address}{API}/openapi.json"
    har = tmp_path / "requests.har"
    with serving(command, document, cwd=project, env=env):
        result = run(
            [
                SCHEMATHESIS,
                "run",
                document,
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--phases",
                "examples,fuzzing",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                "23",
                "--no-color",
                "--report",
                "har",
                "--report-har-path",
                har,
            ],
            cwd=tmp_path,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-6000:]
        accepted = accepted_changes(har)
        assert accepted > 0, "no generated request changed anything: the check below would prove nothing"
        assert accepted == audited_by(f"http://{address}", token, "token:schemathesis")
        assert_the_readmes_curl_turns_a_flag_on(project, f"http://{address}", token)


def assert_the_readmes_curl_turns_a_flag_on(project: Path, url: str, token: str) -> None:
    """The baked README's deploy-script `curl`, run as written (its host swapped for the server's)."""
    readme = (project / "README.md").read_text()
    command = re.search(r"^curl -X PUT .*?\n(?=```)", readme, flags=re.DOTALL | re.MULTILINE).group()
    command = command.replace("https://example.com", url)
    run(
        ["bash", "-c", f"set -e; curl --fail-with-body -sS {command.removeprefix('curl ')}"],
        env={"GATEKEEPER_TOKEN": token, "PATH": "/usr/bin:/bin"},
    )
    request = urllib.request.Request(
        f"{url}{API}/flags/NEW_CHECKOUT", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["forced"] == "ON"
