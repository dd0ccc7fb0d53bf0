"""Build the organisation's base images as one Pulumi resource graph."""

from pathlib import Path

import pulumi

from components.errors import InputError
from components.image_graph import ImageGraph, ImageGraphArgs
from components.inputs import load_inputs
from components.outputs import export_outputs

PROJECT_DIR = Path.cwd()

try:
    inputs = load_inputs(PROJECT_DIR)
except InputError as error:
    # RunError ends the program with the message alone, without a traceback.
    raise pulumi.RunError(str(error)) from None

graph = ImageGraph(
    "base-images",
    ImageGraphArgs(
        catalog=inputs.catalog,
        settings=inputs.settings,
        secrets=inputs.secrets,
        project_dir=PROJECT_DIR,
        ca_bundle_pem=inputs.ca_bundle_pem,
    ),
)

# Only a stack with a github section manages GitHub. Other stacks need no
# token and skip importing pulumi_github, which `python -X importtime` put at
# 0.1 to 0.2 s of every preview and update here.
if inputs.settings.github is not None:
    from components.github_environment import GitHubEnvironment, GitHubEnvironmentArgs

    GitHubEnvironment("github", GitHubEnvironmentArgs(settings=inputs.settings, secrets=inputs.secrets))

export_outputs(graph, inputs.catalog)
