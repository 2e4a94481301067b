"""The README's cluster commands are the ones the cluster-path test runs: every command of the README's
"On a cluster" block appears (as the comment above the step that performs it) in
``test_readme_cluster_path.py``, or is listed here with the reason it cannot run against the emulator."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: README commands the test cannot run, and why.
NOT_RUN = {
    "helm test musicgen -n musicgen": "helm test runs hook pods of the chart's images; the test's kubelet "
    "runs the operator Deployment and Jobs, not Helm hooks (the hook manifests are checked in tests/chart)",
}


def readme_cluster_commands() -> list[str]:
    """The commands of the README's first bash block under "On a cluster", continuations joined."""
    section = (REPO / "README.md").read_text().split("## On a cluster", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        command = re.sub(r"\s+#(?![^']*'\)).*$", "", line).strip()  # trailing comment, not inside '...'
        if command:
            commands.append(re.sub(r"\s+", " ", command))
    return commands


def test_every_readme_cluster_command_is_run_by_the_cluster_path_test() -> None:
    test_source = (Path(__file__).parent / "test_readme_cluster_path.py").read_text()
    commands = readme_cluster_commands()
    assert len(commands) >= 8
    missing = []
    for command in commands:
        if any(command.startswith(skipped) for skipped in NOT_RUN):
            continue
        # The helm install line carries user choices (--set ...); its fixed part must be there.
        essential = command.split(" --set ")[0]
        if essential not in test_source:
            missing.append(command)
    assert not missing, f"README commands the cluster-path test does not run: {missing}"
