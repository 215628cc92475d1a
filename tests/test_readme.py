"""The README's two commands are the ones CI and new users run."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_COMMAND = 'python -m pip install -e ".[dev]" && python -m pytest'
MAIN_COMMAND = "python -m pip install -e . && lymphonet train"


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert TEST_COMMAND in readme and MAIN_COMMAND in readme
    assert any(line.strip() == TEST_COMMAND for line in ci.splitlines())


def test_readme_links_point_inside_the_repository():
    import re

    readme = (REPO / "README.md").read_text()
    for target in re.findall(r"\]\(((?:docs|configs|benchmarks)/[^)#]+)\)", readme):
        assert (REPO / target).exists(), target
