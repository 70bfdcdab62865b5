import importlib.util
import os
from pathlib import Path

# One thread per process, for this one and every designgym process a test starts (they inherit the
# environment): the networks are small, and a second torch thread per process only contends with
# the other processes of a test (vector-env workers, a training run beside its test) and with
# pytest-xdist's workers for the machine's cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

import designgym  # noqa: E402, F401  (registers the built-in envs)
from designgym.envs.extrusion.problem import Extrusion  # noqa: E402


@pytest.fixture(scope="session")
def extrusion() -> Extrusion:
    return Extrusion()


def i_beam(size: int = 32, flange: int = 3, web: int = 2, width: int = 24) -> np.ndarray:
    """A symmetric I-section: full-height web, flanges at the top and bottom rows."""
    grid = np.zeros((size, size), dtype=np.float32)
    left = (size - width) // 2
    grid[:flange, left : left + width] = 1
    grid[size - flange :, left : left + width] = 1
    mid = size // 2
    grid[:, mid - web // 2 : mid - web // 2 + web] = 1
    return grid


def tensorboard_contents(tb_dir):
    """Tags of a run's event files, read with TensorBoard's own reader: scalars (with their values),
    images, and the plugins that wrote summaries (hparams)."""
    (run,) = [p for p in tb_dir.iterdir() if p.is_dir()]
    return tensorboard_run(run)


def tensorboard_run(run):
    """:func:`tensorboard_contents` of one run folder (the one holding the event files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    plugins = set()
    for file in run.glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(file)).Load():
            plugins.update((v.tag, v.metadata.plugin_data.plugin_name) for v in event.summary.value)
    return scalars, events.Tags()["images"], plugins, events


def benchmark_module(name: str):
    """The script ``benchmarks/<name>.py`` as a module (benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
