"""The interface every export format implements, and what they share.

A format is an `ExportFormat` instance registered in `train.formats`:
`write` turns a Keras model into a file (or folder) in a version folder,
`load_runner` reloads that file in the format's own runtime as a `Runner`,
and the gate (`train.formats.gates.verify`) checks the runner against
Keras on held-out inputs, with the decision metric of the model's task for
a quantized format and the largest absolute difference for the others.
"""

import contextlib
import dataclasses
import io
import os

import numpy as np


@dataclasses.dataclass
class Written:
    """What `write` made: the file (or folder), the rewrites of the model
    it was converted from, and the batch size its signature fixes."""

    path: str
    rewrites: list
    batch_size: int | None


class Runner:
    """A reloaded export: `runner(inputs) -> outputs`, NumPy dicts with a
    batch axis. `signature()` describes its inputs and outputs as
    `({name: (shape, dtype)}, {name: (shape, dtype)})`."""

    batch_size = None

    def __call__(self, inputs):
        inputs = {key: np.asarray(value) for key, value in inputs.items()}
        count = len(next(iter(inputs.values())))
        if self.batch_size is None or count == self.batch_size:
            return self.run(inputs)
        # A signature of a fixed batch: the examples go through in chunks.
        parts = [
            self.run({key: value[start:start + self.batch_size] for key, value in inputs.items()})
            for start in range(0, count, self.batch_size)
        ]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def run(self, inputs):
        raise NotImplementedError

    def signature(self):
        raise NotImplementedError


class ExportFormat:
    """One export format.

    Attributes:
        name: the format's name (`--format NAME`).
        runtime: the package whose runtime reloads the export.
        packages: the packages whose versions the export report records.
        file_name: the file the format writes in its version folder; None
            when the version folder itself is the export (a SavedModel).
        serving_root: versions live directly under `<out>/<model>/` (TF
            Serving's layout) instead of `<out>/<model>/<name>/`.
        quantized: outputs are only close to Keras', so the gate is the
            task's decision metric (`Task.export_gate`), not the largest
            difference.
        needs_calibration: `write` needs examples of the training data.
    """

    name = ""
    runtime = ""
    packages = ()
    file_name = None
    serving_root = False
    quantized = False
    needs_calibration = False

    def signature_batch_size(self, model):
        """The batch size this format's signature fixes for `model`, or None."""
        return None

    def write(self, model, model_name, folder, calibration=None, source=None) -> Written:
        """Writes `model` into the version folder `folder` (which exists).

        Args:
            model: the Keras model.
            model_name: its registered name (names the signature's outputs).
            folder: the version folder being built.
            calibration: a callable returning an iterator of input dicts of
                one example each, from the training data (quantized formats).
            source: a converted-from SavedModel (`Written`) to share between
                formats, where the format converts from one.
        """
        raise NotImplementedError

    def load_runner(self, folder, threads=None) -> Runner:
        """The export in `folder` reloaded in its own runtime."""
        raise NotImplementedError

    def path_in(self, folder):
        """The export's file in a version folder (the folder itself when
        the format has no single file)."""
        return folder if self.file_name is None else os.path.join(folder, self.file_name)


def quiet(function, *args, **kwargs):
    """Runs a converter with its progress prints on stdout swallowed; a
    command's stdout stays its result."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args, **kwargs)
