"""`pulumi up` through the Automation API, recording the engine's events for the build report.

`make up` runs `python -m components.deploy up --stack local`. The update
runs on the stack of the project in the current folder, continues past a
failed image so that independent images still build, and prints Pulumi's
output as it comes. Each engine event is appended to build-events.jsonl in
the report folder when it arrives, and the build report is written there
when the update ends, also when it fails, because a failed build is when
the timeline matters most.

The exit status is Pulumi's: 0 when the update succeeded.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pulumi import automation as auto

from components.build_events import EventRecorder, load_events
from components.build_report import EVENTS_FILE, REPORT_FILE, build_report, write_report
from components.errors import InputError
from components.stack_file import load_stack_catalog

log = logging.getLogger("deploy")


def up(stack_name: str, project_dir: Path, report_dir: Path) -> int:
    """Run `pulumi up --continue-on-error` on the stack, then write the build report and return the exit status."""
    try:
        stack = auto.select_stack(stack_name=stack_name, work_dir=str(project_dir))
    except auto.CommandError as error:
        log.error("cannot select stack %s in %s:\n%s\nCreate it with `make stack STACK=%s`", stack_name, project_dir, error, stack_name)
        return 1
    recorder = EventRecorder(report_dir / EVENTS_FILE)
    status = 0
    try:
        stack.up(
            on_event=recorder,
            on_output=_print_line,
            on_error=_print_error_line,
            continue_on_error=True,
        )
    except auto.CommandError:
        # Pulumi has already printed its errors through on_output and on_error.
        status = 1
    except KeyboardInterrupt:
        # Pulumi got the interrupt too and stops its operations, so the
        # report shows the images it never finished.
        log.warning("interrupted; writing the report of the update so far")
        status = 130
    finally:
        recorder.close()

    try:
        catalog = load_stack_catalog(project_dir, stack_name)
    except InputError as error:
        log.error("no build report, because the catalog did not load:\n%s", error)
        return status or 1

    report = build_report(stack_name, catalog, load_events(report_dir / EVENTS_FILE))
    write_report(report, catalog, report_dir)
    log.info("build report: %s", report_dir / REPORT_FILE)
    return status


def _print_line(line: str) -> None:
    print(line, flush=True)


def _print_error_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy a stack and write the build report of the update.")
    commands = parser.add_subparsers(dest="command", required=True)
    update = commands.add_parser("up", help="Run `pulumi up` on the stack and write the build report.")
    update.add_argument("--stack", required=True, help="Stack to update, such as local.")
    update.add_argument("--project-dir", type=Path, default=Path.cwd(), help="Project folder (default: the current folder).")
    update.add_argument(
        "--report-dir",
        type=Path,
        help="Folder for the events and the report (default: .local/reports/<stack> in the project folder).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="deploy: %(message)s", stream=sys.stderr)

    project_dir = args.project_dir.resolve()
    report_dir = args.report_dir or project_dir / ".local" / "reports" / args.stack
    return up(args.stack, project_dir, report_dir)


if __name__ == "__main__":
    sys.exit(main())
