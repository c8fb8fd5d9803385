"""Raw containers (issue 15 item 9) through the real flytekit: a ContainerTask's inputs are
files in its input_data_dir (and inputs.json), its outputs are read from files in its
output_data_dir, including a file output uploaded to the blob store and a `_ERROR` file that
fails the task with its message, as Flyte's copilot does."""

from __future__ import annotations

from conftest import EXAMPLES_PROJECT, Server
from flytekit.models.core.execution import WorkflowExecutionPhase
from test_executions import assert_phase, run_remote, wait

PATH = "examples/raw_containers.py"


def test_primitive_inputs_and_outputs_as_files(server: Server, remote):
    name = run_remote(server, EXAMPLES_PROJECT, PATH, "ellipse_wf", "--a", "2", "--b", "3")
    done = wait(remote, name)
    assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
    area = done.outputs.get("o0", as_type=float)
    assert abs(area - 3.141592653589793 * 6) < 1e-9, area
    assert done.outputs.get("o1", as_type=str) == "[from python rawcontainer]"
    # A templated argument ({{.inputs.word}}) and a string output read back trimmed.
    assert done.outputs.get("o2", as_type=str) == "HELLO!"


def test_collections_in_inputs_json_and_a_file_output(server: Server, remote, tmp_path):
    from flytekit.types.file import FlyteFile

    name = run_remote(server, EXAMPLES_PROJECT, PATH, "report_wf", "--n", "3", "--words", '["ab", "c", "xyz"]')
    done = wait(remote, name)
    assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
    assert done.outputs.get("o1", as_type=int) == 3
    report = done.outputs.get("o0", as_type=FlyteFile)
    assert open(report.download()).read() == "ababab\nccc\nxyzxyzxyz"


def test_error_file_fails_the_task_with_its_message(server: Server, remote):
    name = run_remote(server, EXAMPLES_PROJECT, PATH, "refuse_wf")
    done = wait(remote, name)
    assert_phase(done, WorkflowExecutionPhase.FAILED, server)
    assert "x must be positive" in done.closure.error.message, done.closure.error
