"""The stack's GitHub deployment environment, with the secrets and variables the CI workflow reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_github as github

from components.settings import GitHubSettings, StackSecrets, StackSettings

# Names the workflow in .github/workflows/ reads as `secrets.*` and `vars.*`.
REGISTRY_PASSWORD_SECRET: Final = "REGISTRY_PASSWORD"
PULUMI_ACCESS_TOKEN_SECRET: Final = "PULUMI_ACCESS_TOKEN"
STACK_VARIABLE: Final = "BASE_IMAGES_STACK"
REGISTRY_VARIABLE: Final = "BASE_IMAGES_REGISTRY"


@dataclass(frozen=True)
class GitHubEnvironmentArgs:
    settings: StackSettings
    secrets: StackSecrets


class GitHubEnvironment(pulumi.ComponentResource):
    """One deployment environment of the repository that the stack's github section names.

    The environment carries the required reviewers and the branch policy, the
    secrets that the workflow copies back into the stack config before each
    run, and the variables that tie the environment to this stack. Every child
    uses one explicit provider for the section's owner, whose token comes from
    `github:token` or else GITHUB_TOKEN.
    """

    provider: github.Provider
    environment: github.RepositoryEnvironment
    secrets: dict[str, github.ActionsEnvironmentSecret]
    variables: dict[str, github.ActionsEnvironmentVariable]

    def __init__(self, name: str, args: GitHubEnvironmentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("base-images:index:GitHubEnvironment", name, None, opts)

        section = args.settings.github
        if section is None:
            raise ValueError("GitHubEnvironment needs settings.github; create it only for stacks with a github section")

        # A token of None makes the provider read GITHUB_TOKEN.
        self.provider = github.Provider(
            f"{name}-provider",
            github.ProviderArgs(owner=section.owner, token=args.secrets.github_token),
            pulumi.ResourceOptions(parent=self),
        )
        child_opts = pulumi.ResourceOptions(parent=self, provider=self.provider)

        self.environment = github.RepositoryEnvironment(
            f"{name}-environment",
            _environment_args(section),
            child_opts,
        )

        # Secrets and variables name the environment through its output, so
        # they are created after it and replaced with it.
        environment_name = self.environment.environment
        secret_values = {
            REGISTRY_PASSWORD_SECRET: args.secrets.registry_password,
            PULUMI_ACCESS_TOKEN_SECRET: args.secrets.pulumi_access_token,
        }
        self.secrets = {}
        for secret_name, value in secret_values.items():
            if value is None:
                continue
            self.secrets[secret_name] = github.ActionsEnvironmentSecret(
                f"{name}-{_role(secret_name)}",
                github.ActionsEnvironmentSecretArgs(
                    repository=section.repository,
                    environment=environment_name,
                    secret_name=secret_name,
                    # `value` replaces plaintext_value, deprecated in
                    # pulumi-github 6.x. The provider encrypts it for GitHub.
                    value=pulumi.Output.secret(value),
                ),
                child_opts,
            )

        variable_values = {
            STACK_VARIABLE: args.settings.stack,
            REGISTRY_VARIABLE: args.settings.registry.address,
        }
        self.variables = {}
        for variable_name, value in variable_values.items():
            self.variables[variable_name] = github.ActionsEnvironmentVariable(
                f"{name}-{_role(variable_name)}",
                github.ActionsEnvironmentVariableArgs(
                    repository=section.repository,
                    environment=environment_name,
                    variable_name=variable_name,
                    value=value,
                ),
                child_opts,
            )

        self.register_outputs(
            {
                "environment": environment_name,
                "secretNames": sorted(self.secrets),
                "variableNames": sorted(self.variables),
            }
        )


def _environment_args(section: GitHubSettings) -> github.RepositoryEnvironmentArgs:
    reviewers = None
    if section.reviewer_users or section.reviewer_teams:
        reviewers = [
            github.RepositoryEnvironmentReviewerArgs(
                users=list(section.reviewer_users),
                teams=list(section.reviewer_teams),
            )
        ]

    # GitHub reads no policy as "every branch may use the environment".
    branch_policy = None
    if section.protected_branches_only:
        branch_policy = github.RepositoryEnvironmentDeploymentBranchPolicyArgs(
            protected_branches=True,
            custom_branch_policies=False,
        )

    return github.RepositoryEnvironmentArgs(
        repository=section.repository,
        environment=section.environment,
        reviewers=reviewers,
        deployment_branch_policy=branch_policy,
    )


def _role(github_name: str) -> str:
    """Turn a secret or variable name such as REGISTRY_PASSWORD into a resource role, registry-password."""
    return github_name.lower().replace("_", "-")
