"""The real-image no-op benchmark's pure parts: the generated script, step counts and the report."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from bench.real_images import (
    BEGIN_MARKER,
    END_MARKER,
    SCRIPT_TAG,
    count_steps,
    local_cache_dirs,
    plain_script,
    render_section,
    script_step_counts,
    write_section,
)
from components.settings import load_settings

ADDRESS = "unix:///run/test-buildkitd.sock"
BUILDCTL = Path("/opt/buildkit/buildctl")


def parent_refs(catalog) -> dict[str, str]:
    return {entry.name: f"localhost:5000/base-images/{entry.name}@sha256:{index:064x}" for index, entry in enumerate(catalog.images)}


def script_commands(catalog, local_config) -> dict[str, list[str]]:
    """Generate the script for the local stack and return each image's buildctl call, split into words."""
    settings = load_settings(local_config, "local")
    script = plain_script(catalog, settings, parent_refs(catalog), ADDRESS, BUILDCTL)
    commands = {}
    name = None
    for line in script.splitlines():
        if line.startswith("echo '== "):
            name = line.removeprefix("echo '== ").removesuffix("'")
        elif line.startswith(str(BUILDCTL)):
            commands[name] = shlex.split(line)
    return commands


def test_script_is_valid_bash(catalog, local_config, tmp_path: Path):
    settings = load_settings(local_config, "local")
    script = tmp_path / "rebuild.sh"
    script.write_text(plain_script(catalog, settings, parent_refs(catalog), ADDRESS, BUILDCTL))
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_script_builds_parents_first(catalog, local_config):
    order = list(script_commands(catalog, local_config))
    assert sorted(order) == sorted(entry.name for entry in catalog.images)
    for entry in catalog.images:
        if entry.parent is not None:
            assert order.index(entry.parent) < order.index(entry.name), entry.name


def test_script_child_base_is_parent_ref(catalog, local_config):
    commands = script_commands(catalog, local_config)
    refs = parent_refs(catalog)
    assert f"build-arg:BASE_IMAGE={refs['python-ml']}" in commands["python-ml-torch"]
    assert f"build-arg:BASE_IMAGE={refs['python-base']}" in commands["tools"]


def test_script_root_base_is_mirrored_upstream(catalog, local_config):
    command = script_commands(catalog, local_config)["python-base"]
    assert "build-arg:BASE_IMAGE=localhost:5000/mirror/python:3.11-slim" in command


def test_script_has_stack_inputs(catalog, local_config):
    command = script_commands(catalog, local_config)["python-ml-torch"]
    assert "build-arg:TORCH_INDEX_URL=https://pypi.org/simple" in command
    assert "platform=linux/amd64" in command
    assert "id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt" in command
    assert "context=images/python-ml-torch" in command


def test_script_pushes_own_tag(catalog, local_config):
    command = script_commands(catalog, local_config)["tools"]
    output = command[command.index("--output") + 1]
    assert output == f"type=image,name=localhost:5000/base-images/tools:{SCRIPT_TAG},push=true"


PROGRESS = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#4 [1/3] FROM localhost:5000/mirror/python:3.11-slim@sha256:abc
#4 resolve localhost:5000/mirror/python:3.11-slim@sha256:abc done
#4 DONE 0.0s
#8 [builder 1/2] COPY wheels /wheels
#8 CACHED
#5 [2/3] RUN apt-get update
#5 CACHED
#6 [builder 3/3] RUN pip wheel
#6 DONE 12.1s
#7 exporting to image
#7 CACHED
"""


def test_count_steps_ignores_from_internal_export():
    count = count_steps(PROGRESS)
    assert count.total == 3
    assert count.cached == 2


def test_script_step_counts_per_image():
    log = "$ bash rebuild.sh\n== python-base\n" + PROGRESS + "== tools\n#2 [1/2] FROM x\n#2 DONE 0.0s\n#3 [2/2] RUN true\n#3 CACHED\n"
    counts = script_step_counts(log)
    assert [(count.cached, count.total) for count in counts] == [(2, 3), (1, 1)]


def test_cold_script_imports_local_cache(catalog, local_config):
    settings = load_settings(local_config, "local")
    caches = local_cache_dirs(catalog, settings)
    assert caches["tools"] == ".cache/buildkit/local/tools"
    script = plain_script(catalog, settings, parent_refs(catalog), ADDRESS, BUILDCTL, caches)
    assert "--import-cache type=local,src=.cache/buildkit/local/python-ml-torch" in script


def test_no_local_cache_no_dirs(catalog, local_config):
    settings = load_settings({**local_config, "caches": []}, "local")
    assert local_cache_dirs(catalog, settings) == {}
    assert "--import-cache" not in plain_script(catalog, settings, parent_refs(catalog), ADDRESS, BUILDCTL)


def results(script_seconds: list[float], up_seconds: list[float]) -> dict:
    return {
        "date": "2026-12-04T23:00:00Z",
        "machine": {"cpu": "AMD EPYC", "cores": 2, "memory_gib": 23.5, "kernel": "6.18"},
        "stack": "local",
        "runs": 3,
        "images": 9,
        "load_average_before": [0.1, 0.2, 0.3],
        "steps_per_script_run": 80,
        "samples": {
            "script": script_seconds,
            "preview": [2.0, 2.1, 2.2],
            "up": up_seconds,
            "up_with_preview": [4.0, 4.1, 4.2],
        },
        "commands": {"script": "bash rebuild.sh", "preview": "pulumi preview", "up": "pulumi up", "up_with_preview": "pulumi up"},
        "script_examples": {"script": "buildctl --addr unix:///x build"},
        "environment": {"PULUMI_SKIP_UPDATE_CHECK": "true"},
    }


def test_render_target_met():
    section = render_section(results([30.0, 31.0, 29.0], [2.0, 2.5, 1.5]))
    assert "15.00x, met" in section
    assert "30.00 s (29.00–31.00)" in section
    assert "export PULUMI_SKIP_UPDATE_CHECK=true" in section


def test_render_target_missed():
    section = render_section(results([3.0, 3.0, 3.0], [2.0, 2.0, 2.0]))
    assert "1.50x, **missed**" in section


def test_render_cold_builder_baseline():
    data = results([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
    data["samples"]["script_cold"] = [8.0, 9.0, 10.0]
    data["commands"]["script_cold"] = "bash rebuild-cold.sh"
    section = render_section(data)
    assert "by the script on the stack's builder: 0.50x, **missed**" in section
    assert "by the script on a new builder: 4.50x, met" in section
    assert "| script on the stack's builder divided by it | script on a new builder divided by it |" in section


def test_write_section_replaces_own_block():
    text = f"# Benchmarks\n\n{BEGIN_MARKER}\nold\n{END_MARKER}\n\n## Later\n"
    updated = write_section(text, "new\n")
    assert "old" not in updated
    assert f"{BEGIN_MARKER}\nnew\n{END_MARKER}" in updated
    assert updated.endswith("## Later\n")


def test_write_section_appends_heading():
    updated = write_section("# Benchmarks\n", "new\n")
    assert updated.startswith("# Benchmarks\n\n## No-op cost on the real images\n")
    assert BEGIN_MARKER in updated
