"""GitHub settings as code: the environment, its secrets and variables, under Pulumi's mocks."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime import rpc

from components.errors import InputError
from components.github_environment import (
    PULUMI_ACCESS_TOKEN_SECRET,
    REGISTRY_PASSWORD_SECRET,
    REGISTRY_VARIABLE,
    STACK_VARIABLE,
)
from components.settings import load_settings
from tests.unit.harness import plain_paths, run_program

ENVIRONMENT_TYPE = "github:index/repositoryEnvironment:RepositoryEnvironment"
SECRET_TYPE = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
VARIABLE_TYPE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
PROVIDER_TYPE = "pulumi:providers:github"

PASSWORD_MARKER = "registry-password-marker-8d02"
ACCESS_TOKEN_MARKER = "pulumi-access-token-marker-41ac"
GITHUB_TOKEN_MARKER = "github-token-marker-c7e3"

REGISTRY = {"address": "ghcr.io", "namespace": "acme/base-images", "username": "acme-ci"}
GITHUB_SECTION = {
    "owner": "acme",
    "repository": "base-images",
    "environment": "production",
    "reviewerUsers": [101],
    "reviewerTeams": [202, 203],
}


def github_config(section: dict | None = None, **extra) -> dict:
    config = {
        "registry": REGISTRY,
        "builder": {"name": "base-images", "network": "host"},
        "github": section or GITHUB_SECTION,
        "registryPassword": PASSWORD_MARKER,
        "pulumiAccessToken": ACCESS_TOKEN_MARKER,
    }
    config.update(extra)
    return config


SECRET_KEYS = ("registryPassword", "pulumiAccessToken", "github:token")


@pytest.fixture(scope="module")
def github_run():
    config = github_config(**{"github:token": GITHUB_TOKEN_MARKER})
    return run_program(config, secret_keys=SECRET_KEYS, stack="production")


@pytest.fixture(scope="module")
def local_run():
    from tests.unit.harness import PROJECT_DIR, stack_file_config

    return run_program(stack_file_config(PROJECT_DIR / "Pulumi.local.yaml"), stack="local")


def by_name(resources, field: str) -> dict:
    return {resource.inputs[field]: resource for resource in resources}


def test_one_environment(github_run):
    environments = github_run.of_type(ENVIRONMENT_TYPE)
    assert len(environments) == 1
    inputs = environments[0].inputs
    assert inputs["environment"] == "production"
    assert inputs["repository"] == "base-images"


def test_environment_reviewers(github_run):
    inputs = github_run.of_type(ENVIRONMENT_TYPE)[0].inputs
    assert inputs["reviewers"] == [{"users": [101], "teams": [202, 203]}]


def test_environment_protected_branches(github_run):
    inputs = github_run.of_type(ENVIRONMENT_TYPE)[0].inputs
    assert inputs["deploymentBranchPolicy"] == {"protectedBranches": True, "customBranchPolicies": False}


def test_unprotected_environment_allows_every_branch():
    section = {"owner": "acme", "repository": "base-images", "environment": "ci", "protectedBranchesOnly": False}
    run = run_program(github_config(section), secret_keys=SECRET_KEYS[:2], stack="ci")
    inputs = run.of_type(ENVIRONMENT_TYPE)[0].inputs
    assert "deploymentBranchPolicy" not in inputs
    assert "reviewers" not in inputs


def test_secret_names(github_run):
    secrets = by_name(github_run.of_type(SECRET_TYPE), "secretName")
    assert sorted(secrets) == sorted([REGISTRY_PASSWORD_SECRET, PULUMI_ACCESS_TOKEN_SECRET])


@pytest.mark.parametrize(
    ("secret_name", "marker"),
    [(REGISTRY_PASSWORD_SECRET, PASSWORD_MARKER), (PULUMI_ACCESS_TOKEN_SECRET, ACCESS_TOKEN_MARKER)],
)
def test_secret_value_is_secret_output(github_run, secret_name, marker):
    inputs = by_name(github_run.of_type(SECRET_TYPE), "secretName")[secret_name].inputs
    assert rpc.is_rpc_secret(inputs["value"]), f"{secret_name} value is not a secret"
    assert plain_paths(inputs, marker) == [], f"{secret_name} has its value in plain text"
    assert marker in json.dumps(inputs), f"{secret_name} does not carry the configured value"


def test_secrets_in_environment(github_run):
    for resource in github_run.of_type(SECRET_TYPE):
        assert resource.inputs["environment"] == "production", resource.name
        assert resource.inputs["repository"] == "base-images", resource.name


def test_variables_match_config(github_run):
    variables = by_name(github_run.of_type(VARIABLE_TYPE), "variableName")
    values = {name: resource.inputs["value"] for name, resource in variables.items()}
    assert values == {STACK_VARIABLE: "production", REGISTRY_VARIABLE: "ghcr.io"}


def test_variables_in_environment(github_run):
    for resource in github_run.of_type(VARIABLE_TYPE):
        assert resource.inputs["environment"] == "production", resource.name
        assert resource.inputs["repository"] == "base-images", resource.name


def test_provider_owner_and_token(github_run):
    providers = github_run.of_type(PROVIDER_TYPE)
    assert len(providers) == 1
    inputs = providers[0].inputs
    assert inputs["owner"] == "acme"
    assert plain_paths(inputs, GITHUB_TOKEN_MARKER) == [], "github:token reached the provider in plain text"
    assert GITHUB_TOKEN_MARKER in json.dumps(inputs), "github:token did not reach the provider"


def test_children_use_explicit_provider(github_run):
    provider = github_run.of_type(PROVIDER_TYPE)[0]
    for resource in github_run.of_type("github:"):
        assert resource.provider is not None and provider.name in resource.provider, resource.name


def test_provider_token_unset_without_config():
    run = run_program(github_config(), secret_keys=SECRET_KEYS[:2], stack="production")
    inputs = run.of_type(PROVIDER_TYPE)[0].inputs
    # The provider then reads GITHUB_TOKEN from its environment.
    assert "token" not in inputs


def test_no_registry_password_secret_without_password():
    config = github_config(registry={"address": "localhost:5000"})
    del config["registryPassword"]
    run = run_program(config, secret_keys=("pulumiAccessToken",), stack="production")
    names = [resource.inputs["secretName"] for resource in run.of_type(SECRET_TYPE)]
    assert names == [PULUMI_ACCESS_TOKEN_SECRET]


def test_secrets_not_exported(github_run):
    exported = json.dumps(github_run.exports, default=str)
    for marker in (PASSWORD_MARKER, ACCESS_TOKEN_MARKER, GITHUB_TOKEN_MARKER):
        assert marker not in exported


def test_local_stack_creates_no_github_resource(local_run):
    assert local_run.of_type("github:") == []
    assert local_run.of_type(PROVIDER_TYPE) == []
    assert local_run.of_type("base-images:index:GitHubEnvironment") == []


def test_ci_stack_manages_its_environment(ci_config):
    config = {**ci_config, "registryPassword": "x", "pulumiAccessToken": "y"}
    run = run_program(config, secret_keys=SECRET_KEYS[:2], stack="ci")
    environments = run.of_type(ENVIRONMENT_TYPE)
    assert [resource.inputs["environment"] for resource in environments] == ["ci"]


def settings_error(raw: dict, secret_keys: frozenset[str] = frozenset()) -> str:
    with pytest.raises(InputError) as raised:
        load_settings(raw, "unit", secret_keys)
    return str(raised.value)


def test_access_token_required_with_github():
    error = settings_error({"registry": {"address": "localhost:5000"}, "github": GITHUB_SECTION})
    assert "base-images:pulumiAccessToken: missing while github is set" in error
    assert "pulumi config set --secret base-images:pulumiAccessToken" in error


def test_access_token_without_github_rejected():
    raw = {"registry": {"address": "localhost:5000"}, "pulumiAccessToken": "x"}
    error = settings_error(raw, frozenset({"pulumiAccessToken"}))
    assert "base-images:github: missing while pulumiAccessToken is set" in error


def test_plain_access_token_rejected_and_hidden():
    raw = {"registry": {"address": "localhost:5000"}, "github": GITHUB_SECTION, "pulumiAccessToken": "tok-marker-1"}
    error = settings_error(raw)
    assert "base-images:pulumiAccessToken: is stored in plain text" in error
    assert "tok-marker-1" not in error


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("owner", "acme/base-images", "is not a GitHub account name"),
        ("owner", "-acme", "is not a GitHub account name"),
        ("repository", "acme/base-images", "must not contain '/'"),
        ("repository", "base images", "is not a GitHub repository name"),
        ("environment", "", "at least 1 character"),
        ("reviewerUsers", [0], "greater than 0"),
        ("reviewerTeams", ["core"], "valid integer"),
    ],
)
def test_bad_github_field_named(field, value, reason):
    raw = {"registry": {"address": "localhost:5000"}, "github": {**GITHUB_SECTION, field: value}}
    error = settings_error(raw, frozenset({"pulumiAccessToken"}))
    assert f"base-images:github.{field}" in error
    assert reason in error


def test_reviewer_limit():
    section = {**GITHUB_SECTION, "reviewerUsers": [1, 2, 3, 4], "reviewerTeams": [5, 6, 7]}
    error = settings_error({"registry": {"address": "localhost:5000"}, "github": section})
    assert "base-images:github: reviewerUsers and reviewerTeams list 7 reviewers" in error
    assert "at most 6" in error
