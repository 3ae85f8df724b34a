"""The served OpenAPI document is a valid OpenAPI 3.1 document, and what the read operations answer matches it."""
import subprocess

import jsonschema
import referencing
from openapi_spec_validator import validate

from conftest import Api, _binary


def viewer_api(steward, account):
    token = subprocess.run(
        [str(_binary()), "token", "create", "--user", account.name, "--name", "openapi reader", "--role", "viewer", "--data", str(steward.data)],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return Api(steward, token)


def test_the_served_document_is_valid_openapi_and_every_reference_resolves(api):
    status, document = api.call("GET", "/api/openapi.json")
    assert status == 200
    validate(document)  # raises with the first problem: a missing $ref, a bad schema, a malformed operation
    assert document["openapi"].startswith("3.1")


def json_schema_of(operation, status="200"):
    reply = operation["responses"].get(status, {})
    return reply.get("content", {}).get("application/json", {}).get("schema")


def test_every_read_operation_answers_as_documented_for_a_viewer(api, steward, account):
    """Each GET with a JSON reply, called as a viewer, returns a body its documented schema accepts. Path parameters
    are filled from the lists the same document describes (the panel host, its first job, ...)."""
    status, document = api.call("GET", "/api/openapi.json")
    reader = viewer_api(steward, account)
    registry = referencing.Registry().with_resource("urn:steward", referencing.Resource.from_contents(
        {"components": document["components"]}, default_specification=referencing.jsonschema.DRAFT202012))
    status, hosts = reader.call("GET", "/api/v1/hosts")
    status, jobs = reader.call("GET", "/api/v1/jobs")
    first_job = jobs["items"][0]["id"] if jobs["items"] else None
    known = {"/api/v1/hosts/{id}": hosts["items"][0]["id"], "/api/v1/jobs/{id}": first_job, "/api/v1/jobs/{id}/hosts": first_job}
    queries = {"/api/v1/metrics/query": "?name=steward_host_up&host=localhost", "/api/v1/metrics/series": "?host=localhost"}
    checked, skipped, wrong = [], [], []
    for path, item in sorted(document["paths"].items()):
        operation = item.get("get")
        schema = operation and json_schema_of(operation)
        if not schema or not path.startswith("/api/v1"):
            continue
        if "{" in path:
            value = known.get(path)
            if value is None:
                skipped.append(path)
                continue
            concrete = path.replace("{id}", str(value))
        else:
            concrete = path + queries.get(path, "")
        status, body = reader.call("GET", concrete)
        if status == 403:  # a read above a viewer's role (the audit log): read it as the admin
            status, body = api.call("GET", concrete)
        if status != 200:
            wrong.append(f"{concrete}: {status} {body}")
            continue
        resolved = {"$ref": "urn:steward" + schema["$ref"]} if "$ref" in schema else schema
        validator = jsonschema.Draft202012Validator(resolved, registry=registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        wrong.extend(f"{concrete}: {list(e.absolute_path)}: {e.message[:200]}" for e in errors[:3])
        checked.append(path)
    assert not wrong, "\n".join(wrong)
    assert len(checked) >= 30, (checked, skipped)
