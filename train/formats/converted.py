"""Formats converted from a SavedModel of the model's inference copy."""

import os
import tempfile

from train.formats.base import ExportFormat, Written
from train.formats.saved_model import write_source


class ConvertedFormat(ExportFormat):
    """A format converted from a SavedModel of the model's inference copy
    (`train.formats.rewrite.inference_copy`), as LiteRT and ONNX are."""

    def convert(self, saved_model, path, calibration=None):
        raise NotImplementedError

    def write(self, model, model_name, folder, calibration=None, source=None):
        if self.needs_calibration and calibration is None:
            raise ValueError(f"{self.name} needs calibration examples from the training data")
        batch_size = self.signature_batch_size(model)
        path = self.path_in(folder)
        with tempfile.TemporaryDirectory(prefix=".convert-", dir=folder) as scratch:
            if source is None:
                source = write_source(model, model_name, os.path.join(scratch, "saved_model"),
                                      batch_size)
            elif source.batch_size != batch_size:
                raise ValueError(
                    f"{self.name} needs a source of batch size {batch_size}, got {source.batch_size}"
                )
            self.convert(source.path, path, calibration if self.needs_calibration else None)
        return Written(path, source.rewrites, batch_size)
