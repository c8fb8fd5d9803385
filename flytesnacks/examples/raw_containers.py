"""Raw containers (flytekit's ContainerTask): inputs arrive as files in input_data_dir and
outputs are read from files in output_data_dir, as Flyte's copilot does. On Flyte-RS's local
backend the command runs on the host and the two directories are the attempt's own."""

import typing

from flytekit import ContainerTask, kwtypes, workflow
from flytekit.types.file import FlyteFile

ELLIPSE = """
import math
a = float(open('/var/inputs/a').read())
b = float(open('/var/inputs/b').read())
open('/var/outputs/area', 'w').write(str(math.pi * a * b))
open('/var/outputs/metadata', 'w').write('[from python rawcontainer]')
"""

ellipse_area = ContainerTask(
    name="ellipse-area-metadata-python",
    input_data_dir="/var/inputs",
    output_data_dir="/var/outputs",
    inputs=kwtypes(a=float, b=float),
    outputs=kwtypes(area=float, metadata=str),
    image="ghcr.io/flyteorg/rawcontainers-python:v2",
    command=["python3", "-c", ELLIPSE],
)

# Templated arguments, as Flyte's shell example passes them.
shout = ContainerTask(
    name="shout-shell",
    input_data_dir="/var/inputs",
    output_data_dir="/var/outputs",
    inputs=kwtypes(word=str),
    outputs=kwtypes(loud=str),
    image="ghcr.io/flyteorg/rawcontainers-shell:v2",
    command=["sh", "-c", "echo '{{.inputs.word}}!' | tr a-z A-Z > /var/outputs/loud"],
)

REPORT = """
import json
values = json.load(open('/var/inputs/inputs.json'))
words = values['words']
with open('/var/outputs/report', 'w') as f:
    f.write('\\n'.join(w * values['n'] for w in words))
open('/var/outputs/count', 'w').write(str(len(words)))
"""

report = ContainerTask(
    name="report-python",
    input_data_dir="/var/inputs",
    output_data_dir="/var/outputs",
    inputs=kwtypes(n=int, words=typing.List[str]),
    outputs=kwtypes(report=FlyteFile, count=int),
    image="ghcr.io/flyteorg/rawcontainers-python:v2",
    command=["python3", "-c", REPORT],
)

refuse = ContainerTask(
    name="refuse-python",
    input_data_dir="/var/inputs",
    output_data_dir="/var/outputs",
    inputs=kwtypes(x=int),
    outputs=kwtypes(y=int),
    image="ghcr.io/flyteorg/rawcontainers-python:v2",
    command=["sh", "-c", "echo 'x must be positive' > /var/outputs/_ERROR"],
)


@workflow
def ellipse_wf(a: float = 2.0, b: float = 3.0) -> typing.Tuple[float, str, str]:
    area, metadata = ellipse_area(a=a, b=b)
    return area, metadata, shout(word="hello")


@workflow
def report_wf(n: int = 2, words: typing.List[str] = ["ab", "c"]) -> typing.Tuple[FlyteFile, int]:
    return report(n=n, words=words)


@workflow
def refuse_wf(x: int = -1) -> int:
    return refuse(x=x)


# Runs for `delay` seconds, then notes that it ran (one line per run) and doubles x.
slow_double = ContainerTask(
    name="slow-double-shell",
    input_data_dir="/var/inputs",
    output_data_dir="/var/outputs",
    inputs=kwtypes(x=int, delay=float, marker_dir=str),
    outputs=kwtypes(y=int),
    image="ghcr.io/flyteorg/rawcontainers-shell:v2",
    command=[
        "sh",
        "-c",
        "sleep {{.inputs.delay}}; echo ran >> {{.inputs.marker_dir}}/slow-double; "
        "echo $(( $(cat /var/inputs/x) * 2 )) > /var/outputs/y",
    ],
)


@workflow
def slow_double_wf(x: int = 21, delay: float = 0.0, marker_dir: str = "/tmp") -> int:
    return slow_double(x=x, delay=delay, marker_dir=marker_dir)
