"""The README's example is examples/python_client.py, and it works as written."""
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _example():
    spec = importlib.util.spec_from_file_location("python_client", REPO / "examples" / "python_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_readme_example_runs_against_a_real_router(router_process, capsys):
    router = router_process()
    example = _example()
    example.URL = router.url
    await example.main()
    assert capsys.readouterr().out.splitlines() == ["/mixer/3/fader 0.75", "0.75"]


def test_readme_example_is_the_file_in_examples():
    """Every line of the README's example (but its last, asyncio.run) is in the file."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S).group(1).rstrip().splitlines()
    example = (REPO / "examples" / "python_client.py").read_text().splitlines()
    missing = [line for line in block[:-1] if line not in example]
    assert not missing, f"README lines not in examples/python_client.py: {missing}"
