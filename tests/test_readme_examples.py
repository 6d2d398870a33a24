"""README.md's examples, run as they are written there: README and tests cannot drift apart.

Each example is the ```python block that defines a given test function; it is executed as a
module of its own and its test function called with the fixtures it names.
"""

from __future__ import annotations

import pathlib
import re
import types

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def readme_example(function: str) -> types.ModuleType:
    """The README block that defines `function`, executed as a module."""
    blocks = re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.M | re.S)
    found = [b for b in blocks if f"\ndef {function}(" in b or b.startswith(f"def {function}(")]
    assert len(found) == 1, f"README.md has {len(found)} python blocks defining {function}"
    module = types.ModuleType(f"readme_{function}")
    exec(compile(found[0], f"README.md:{function}", "exec"), module.__dict__)
    return module


def test_the_lock_under_a_partition_example(zkpy_inprocess_ensemble):
    readme_example("test_my_lock_under_a_partition").test_my_lock_under_a_partition(zkpy_inprocess_ensemble)


def test_the_reference_model_example():
    readme_example("test_my_app_against_the_model").test_my_app_against_the_model()
