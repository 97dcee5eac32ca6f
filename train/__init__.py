"""Training, evaluation, prediction, export and serving of the video models."""

# The commands of this package print TensorFlow's native start-up lines only
# when asked (see common.native_logs).
from common.native_logs import hide_tensorflow_start

hide_tensorflow_start()
