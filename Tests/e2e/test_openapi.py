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


def strict_components(components):
    """The document's schemas with every object that lists its properties closed to keys it does not list
    (`unevaluatedProperties: false`), so a field a reply sends that the document lacks is an error, as well as a
    documented required field the reply lacks. A schema used as a part of an `allOf` stays open where it is a part
    (the composing schema is closed instead) and is closed through a copy where it is referenced on its own."""
    parts = set()

    def find_parts(node):
        if isinstance(node, dict):
            for part in node.get("allOf", []):
                if "$ref" in part:
                    parts.add(part["$ref"].rsplit("/", 1)[-1])
            for value in node.values():
                find_parts(value)
        elif isinstance(node, list):
            for value in node:
                find_parts(value)

    def close(node, top=True, in_all_of=False):
        if isinstance(node, list):
            return [close(value, in_all_of=in_all_of) for value in node]
        if not isinstance(node, dict):
            return node
        copy = {}
        for key, value in node.items():
            if key == "allOf":
                copy[key] = [close(part, in_all_of=True) for part in value]
            elif key == "$ref" and not in_all_of and value.rsplit("/", 1)[-1] in parts:
                copy[key] = value + "__closed"
            elif key in ("properties", "patternProperties"):
                copy[key] = {name: close(sub) for name, sub in value.items()}
            else:
                copy[key] = close(value)
        opens = "additionalProperties" in node or "unevaluatedProperties" in node
        if not opens and not (top and in_all_of) and ("properties" in node or "allOf" in node):
            copy["unevaluatedProperties"] = False
        return copy

    find_parts(components)
    schemas = {}
    for name, schema in components["schemas"].items():
        schemas[name] = close(schema, in_all_of=name in parts)
        if name in parts:
            schemas[name + "__closed"] = close(schema)
    return {"schemas": schemas}


def json_schema_of(operation, status="200"):
    reply = operation["responses"].get(status, {})
    return reply.get("content", {}).get("application/json", {}).get("schema")


def test_every_read_operation_answers_as_documented_for_a_viewer(api, steward, account):
    """Each GET with a JSON reply, called as a viewer, returns a body its documented schema accepts, read strictly:
    no key the schema does not list (see strict_components), every required key present. Path parameters
    are filled from the lists the same document describes (the panel host, its first job, ...)."""
    status, document = api.call("GET", "/api/openapi.json")
    reader = viewer_api(steward, account)
    registry = referencing.Registry().with_resource("urn:steward", referencing.Resource.from_contents(
        {"components": strict_components(document["components"])}, default_specification=referencing.jsonschema.DRAFT202012))
    status, hosts = reader.call("GET", "/api/v1/hosts")
    status, jobs = reader.call("GET", "/api/v1/jobs")
    first_job = jobs["items"][0]["id"] if jobs["items"] else None
    known = {"/api/v1/hosts/{id}": hosts["items"][0]["id"], "/api/v1/jobs/{id}": first_job, "/api/v1/jobs/{id}/hosts": first_job}
    queries = {"/api/v1/metrics/query": "?name=steward_host_up&host=localhost", "/api/v1/metrics/series": "?host=localhost",
               "/api/v1/packages": "?name=bash", "/api/v1/metrics/promql": "?query=steward_host_up",
               "/api/v1/metrics/promql/range": "?query=max+by+(host)+(steward_host_up)&range=10m"}
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
        reference = schema.get("$ref")
        if reference and reference.rsplit("/", 1)[-1] + "__closed" in registry.contents("urn:steward")["components"]["schemas"]:
            reference += "__closed"
        resolved = {"$ref": "urn:steward" + reference} if reference else schema
        validator = jsonschema.Draft202012Validator(resolved, registry=registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        wrong.extend(f"{concrete}: {list(e.absolute_path)}: {e.message[:200]}" for e in errors[:3])
        checked.append(path)
    assert not wrong, "\n".join(wrong)
    assert len(checked) >= 30, (checked, skipped)
