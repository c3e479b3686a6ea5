"""The README's walkthrough, run as written (only the gateway address differs)."""

import re
import subprocess

from .conftest import REPOSITORY

README_GATEWAY = "GATEWAY=http://127.0.0.1:8080"


def walkthrough_script() -> str:
    readme = (REPOSITORY / "README.md").read_text()
    section = readme.split("<!-- walkthrough:start -->")[1].split("<!-- walkthrough:end -->")[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the README walkthrough has no bash blocks"
    script = "\n".join(blocks)
    assert README_GATEWAY in script
    return script


def test_readme_walkthrough_runs_as_written(stack, tmp_path):
    script = walkthrough_script().replace(README_GATEWAY, f"GATEWAY={stack.gateway_url}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert any('"message":"Hello from the demo API"' in line for line in lines), lines
    assert any(
        re.fullmatch(r'ratelimit: "org-hour";r=998;t=\d+, "org-day";r=9998;t=\d+', line)
        for line in lines
    ), lines
    assert '["org-hour",998]' in lines and '["org-day",9998]' in lines, lines
    assert '["api_requests",100000,"hard"]' in lines, lines
    # Onboarding: each step's next one, then the billing page on Pro's trial.
    assert lines[lines.index("choose_plan") : lines.index("completed") + 1] == [
        "choose_plan",
        "add_payment_method",
        "start_subscription",
        "complete",
        "completed",
    ], lines
    # Usage counts from the trial's first minute on: the earlier calls only if in that minute.
    assert any(
        re.fullmatch(r'\["pro","trialing","4242",("\d+"|null),0\]', line) for line in lines
    ), lines
    assert '"revoked"' in lines, lines
    assert lines[-1] == "401", lines
