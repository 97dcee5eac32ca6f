"""Each model's train step beside the same architecture in PyTorch.

`python -m benchmarks.torch_twin [--models NAME ...] [--repeats N]` builds,
for every registered model and every preset its family benchmarks
(`Family.benchmark_presets`), the project's Keras model as the train-step
benchmark builds it (`benchmarks.train_step`, compiled with the family's
optimizer and loss, and with the XLA choices `train.run` makes for it:
`jit_compile` and the XLA-compiled optimizer update from
`train/engine/jit_choices.json`) and a PyTorch twin of the same
architecture: the same layers and widths, the same parameter count (or a
stated difference), the same optimizer with the same hyperparameters, the
same loss, the same batch and input shape.

The two run in two child processes, one per framework, so that neither
framework's thread pools or libraries touch the other's; the parent asks
them for one train step in turn (Keras, PyTorch, Keras, PyTorch, ...), so
load on a shared machine falls on both alike. Each child times its own
step: wall seconds and the CPU seconds its process used (user + system,
`os.times`, all threads). The table gives medians, samples/s and the ratio
of Keras' samples/s to PyTorch's (in wall and in CPU time), the threads
each framework ran with (PyTorch is given TensorFlow's intra-op count),
the load average over the rounds, and each framework's train GFLOP per
CPU second beside the same for a float32 matmul in its own process (FLOPs
counted from the Keras model by `benchmarks.flops`; both run the same
arithmetic): per CPU second, so that waiting for a core on a loaded
machine does not count, and the matmul is the most a core does.

PyTorch is not a requirement of the project: without it the command prints
one line saying so and exits 0. Nothing outside this module imports torch,
and this module imports it only inside the functions that use it.

Twins and what differs (all differences in bookkeeping, not in arithmetic
that matters for speed):

- convlstm: ConvLSTM layers written out (PyTorch has none): the input
  convolution of all frames as one batched `conv2d` before the time loop,
  the recurrent convolution and the gates inside it.
- bilstm_attention: `nn.LSTM` (bidirectional, 4 layers, dropout between)
  on packed sequences, PyTorch's way of skipping padded steps; `nn.LSTM`
  has two bias vectors per direction where Keras has one (stated in the
  parameter check).
- keyframe_transformer: the encoder and both temporal attentions with
  `scaled_dot_product_attention` and the same boolean masks; in frames
  mode a frozen EfficientNet-B0 written out here (same blocks as
  `keras.applications.EfficientNetB0`) runs without gradients.
- r2plus1d, r2plus1d_perceiver: torchvision's R(2+1)D-18 layout written
  out here (torchvision's compiled ops need a matching CUDA or CPU build),
  and the Perceiver with its GEGLU blocks.

Project modules, Keras and torch are imported inside the functions that use
them: each child loads only its own framework.
"""

import dataclasses
import importlib.util
import math
import multiprocessing
import os
import statistics
import sys
import time

from common.cli import ArgumentParser, run_main
from common.tables import markdown_table

TORCH_MISSING = (
    "benchmarks.torch_twin: PyTorch is not installed, so there is nothing to compare "
    "against; skipped (install torch in a separate environment to run it)"
)
COLUMNS = [
    "model", "input", "batch", "Keras params", "PyTorch params", "Keras step (s)",
    "Keras CPU (s)", "PyTorch step (s)", "PyTorch CPU (s)", "Keras samples/s",
    "PyTorch samples/s", "Keras / PyTorch", "Keras GFLOP per CPU s (of matmul's)",
    "PyTorch GFLOP per CPU s (of matmul's)", "Keras XLA", "threads", "load",
]
# The spec's target: Keras' samples/s over PyTorch's.
TARGET_RATIO = 1.2


def torch_available():
    """Whether PyTorch can be imported here (looked up, not imported)."""
    return importlib.util.find_spec("torch") is not None


# --------------------------------------------------------------------------
# Timing inside a child.


def cpu_seconds():
    """User + system CPU seconds of this process so far, all threads."""
    times = os.times()
    return times.user + times.system


def timed_step(step):
    """(wall seconds, CPU seconds) of one call of `step()`."""
    started, cpu_started = time.perf_counter(), cpu_seconds()
    step()
    return time.perf_counter() - started, cpu_seconds() - cpu_started


def best_matmul_gflops(matmul, size=2048, repeats=10):
    """fp32 GFLOP per CPU second of the best of `repeats` calls of
    `matmul()` on two `size` x `size` matrices: the arithmetic one core
    does in a second of its time, which waiting for a core on a loaded
    machine does not change (wall-clock GFLOP/s would)."""
    matmul()
    best = min(timed_step(matmul)[1] for _ in range(repeats))
    return 2 * size**3 / max(best, 1e-9) / 1e9


# --------------------------------------------------------------------------
# The Keras side.


def keras_step_maker(name, preset, threads):
    """Builds the project's model at `preset` as the train-step benchmark
    does and returns `(step, info)`: `step()` runs one `train_on_batch`;
    `info` has the parameter counts, train FLOPs per sample, the XLA
    choices, TensorFlow's threads and its matmul peak."""
    import keras
    import numpy as np
    import tensorflow as tf

    import models  # see the module doc: imported when needed
    from benchmarks.flops import train_flops  # see the module doc: imported when needed
    from benchmarks.train_step import benchmark_config  # see the module doc: imported when needed
    from train.engine import distribute  # see the module doc: imported when needed

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    family = models.get_family(name)
    config, batch_size = benchmark_config(name, preset)
    keras.utils.set_random_seed(0)
    model = models.build_from_config(name, config)
    jit_compile = distribute.resolve_jit_compile(name, "auto", model)
    xla_update = distribute.resolve_xla_update(name, "auto", jit_compile=jit_compile)
    spec = family.training(config, steps_per_epoch=100)
    model.compile(optimizer=spec.optimizer, loss=spec.loss, jit_compile=jit_compile)
    if xla_update:
        from train import engine  # see the module doc: imported when needed

        engine.build_optimizer(model)
        distribute.compile_optimizer_update(model.optimizer)
    inputs, targets = family.example_batch(config, batch_size, seed=0)
    forward, train = train_flops(model, {key: value[:1] for key, value in inputs.items()})
    intra = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((2048, 2048), dtype=np.float32))
    b = tf.constant(rng.standard_normal((2048, 2048), dtype=np.float32))
    peak = best_matmul_gflops(lambda: float(tf.matmul(a, b)[0, 0]))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    info = {
        "params": model.count_params(),
        "trainable": trainable,
        "train_flops": train,
        "forward_flops": forward,
        "batch": batch_size,
        "input": "x".join(str(d) for d in config.input_shape),
        "xla": ("jit" if jit_compile else "update" if xla_update else "off"),
        "threads": intra,
        "peak_gflops": peak,
        "version": f"TensorFlow {tf.__version__}, Keras {keras.__version__}",
    }
    return (lambda: model.train_on_batch(inputs, targets)), info


# --------------------------------------------------------------------------
# The PyTorch side: twins.


@dataclasses.dataclass
class Twin:
    """A PyTorch twin ready to train.

    Args:
        model: the `torch.nn.Module`.
        loss: `(outputs, targets) -> scalar tensor`.
        optimizer: a `torch.optim` optimizer over the model's parameters.
        inputs: the positional arguments of `model(...)`, as tensors.
        targets: the loss's targets, as a tensor.
        scheduler: an optional per-step learning-rate scheduler.
        clip_norm: clip the gradients to this global norm, or None.
        difference: parameters the twin has beyond the Keras model
            (PyTorch minus Keras, all weights and statistics), and why.
    """

    model: object
    loss: object
    optimizer: object
    inputs: tuple
    targets: object
    scheduler: object = None
    clip_norm: float | None = None
    difference: tuple = (0, "")


def torch_parameter_counts(module):
    """`(all, trainable)`: every parameter and statistic (buffers, less
    BatchNorm's step counters) as Keras' `count_params` counts them, and
    the parameters that train."""
    parameters = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for name, b in module.named_buffers()
                  if not name.endswith("num_batches_tracked"))
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return parameters + buffers, trainable


def twin_train_step(twin):
    """One train step of `twin`: forward, loss, backward, (clip), update."""
    import torch

    twin.optimizer.zero_grad(set_to_none=True)
    loss = twin.loss(twin.model(*twin.inputs), twin.targets)
    loss.backward()
    if twin.clip_norm:
        torch.nn.utils.clip_grad_norm_(twin.model.parameters(), twin.clip_norm)
    twin.optimizer.step()
    if twin.scheduler is not None:
        twin.scheduler.step()
    return loss


def _torch_modules():
    """The twin classes, defined on first use so that importing this
    module never imports torch."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def tf2_hard_sigmoid(x):
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)

    class ConvLSTM(nn.Module):
        """Keras' `ConvLSTM2D` (valid input convolution, "same" recurrent
        one, no bias, gates i, f, c, o), over [B, T, C, H, W]."""

        def __init__(self, channels, filters, kernel_size, dropout, return_sequences,
                     recurrent_activation):
            super().__init__()
            self.filters = filters
            self.dropout = dropout
            self.return_sequences = return_sequences
            self.recurrent_activation = recurrent_activation
            self.input_conv = nn.Conv2d(channels, 4 * filters, kernel_size, bias=False)
            self.recurrent_conv = nn.Conv2d(filters, 4 * filters, kernel_size,
                                            padding=kernel_size // 2, bias=False)

        def forward(self, x):
            batch, steps = x.shape[:2]
            if self.training and self.dropout:
                # One input mask per sequence, as the Keras cell draws it.
                keep = torch.bernoulli(torch.full_like(x[:, 0], 1.0 - self.dropout))
                x = x * (keep / (1.0 - self.dropout)).unsqueeze(1)
            projected = self.input_conv(x.flatten(0, 1))
            projected = projected.unflatten(0, (batch, steps))
            h = projected.new_zeros(batch, self.filters, *projected.shape[-2:])
            c = torch.zeros_like(h)
            outputs = []
            for t in range(steps):
                z = projected[:, t] + self.recurrent_conv(h)
                z_i, z_f, z_c, z_o = z.chunk(4, dim=1)
                gate = self.recurrent_activation
                c = gate(z_f) * c + gate(z_i) * torch.tanh(z_c)
                h = gate(z_o) * torch.tanh(c)
                if self.return_sequences:
                    outputs.append(h)
            return torch.stack(outputs, 1) if self.return_sequences else h

    class ConvLSTMClassifier(nn.Module):
        """`models.convlstm.build_convlstm` on frames [B, T, H, W, C]."""

        def __init__(self, config):
            super().__init__()
            activation = (tf2_hard_sigmoid if config.recurrent_activation == "tf2_hard_sigmoid"
                          else {"hard_sigmoid": lambda x: torch.clamp(x / 6 + 0.5, 0, 1),
                                "sigmoid": torch.sigmoid}[config.recurrent_activation])
            channels = config.input_shape[-1]
            self.layers = nn.ModuleList()
            self.norms = nn.ModuleList()
            for index, filters in enumerate(config.filters):
                last = index == len(config.filters) - 1
                self.layers.append(ConvLSTM(channels, filters, config.kernel_size,
                                            config.dropout, not last, activation))
                if not last:
                    # Keras' BatchNormalization(center=False, scale=False):
                    # momentum 0.99, epsilon 1e-3, over batch, time and space.
                    self.norms.append(nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01,
                                                     affine=False))
                channels = filters
            self.head = nn.Linear(channels, config.num_classes)

        def forward(self, frames):
            x = frames
            for index, layer in enumerate(self.layers):
                x = layer(x)
                if index < len(self.norms):
                    batch, steps = x.shape[:2]
                    x = self.norms[index](F.max_pool2d(x.flatten(0, 1), 2))
                    x = x.unflatten(0, (batch, steps))
            return self.head(torch.amax(x, dim=(-2, -1)))

    class MultiHeadAttention(nn.Module):
        """Keras' `MultiHeadAttention` weights: query, key, value and
        output projections with biases, `heads` x `head_dim` wide, the
        output back to the query's width; the attention itself is
        `scaled_dot_product_attention`."""

        def __init__(self, query_dim, heads, head_dim, key_dim=None, dropout=0.0):
            super().__init__()
            key_dim = key_dim or query_dim
            self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
            self.query = nn.Linear(query_dim, heads * head_dim)
            self.key = nn.Linear(key_dim, heads * head_dim)
            self.value = nn.Linear(key_dim, heads * head_dim)
            self.output = nn.Linear(heads * head_dim, query_dim)

        def forward(self, query, keys, mask=None):
            def split(x):
                return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

            attended = F.scaled_dot_product_attention(
                split(self.query(query)), split(self.key(keys)), split(self.value(keys)),
                attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            )
            return self.output(attended.transpose(1, 2).flatten(-2))

    class BiLSTMAttention(nn.Module):
        """`models.bilstm_attention.build_bilstm_attention`."""

        def __init__(self, config):
            super().__init__()
            epsilon = config.layer_norm_epsilon
            self.projection = nn.Sequential(
                nn.Linear(config.input_shape[1], config.projection_dim),
                nn.LayerNorm(config.projection_dim, eps=epsilon), nn.GELU(),
                nn.Dropout(config.projection_dropout),
            )
            self.lstm = nn.LSTM(config.projection_dim, config.lstm_units,
                                num_layers=config.lstm_layers, batch_first=True,
                                bidirectional=True, dropout=config.lstm_dropout)
            width = 2 * config.lstm_units
            self.attention = MultiHeadAttention(width, config.attention_heads,
                                                config.attention_key_dim,
                                                dropout=config.attention_dropout)
            self.attention_norm = nn.LayerNorm(width, eps=epsilon)
            self.pool_hidden = nn.Linear(width, config.pooling_dim)
            self.pool_dropout = nn.Dropout(config.pooling_dropout)
            self.pool_score = nn.Linear(config.pooling_dim, 1)
            layers, previous = [], width
            for units in config.classifier_units:
                layers += [nn.Linear(previous, units), nn.LayerNorm(units, eps=epsilon),
                           nn.GELU(), nn.Dropout(config.classifier_dropout)]
                previous = units
            self.classifier = nn.Sequential(*layers, nn.Linear(previous, config.num_classes))

        def forward(self, features, mask):
            x = self.projection(features)
            lengths = mask.sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                       enforce_sorted=False)
            x, _ = self.lstm(packed)
            x, _ = nn.utils.rnn.pad_packed_sequence(x, batch_first=True,
                                                    total_length=features.shape[1])
            x = self.attention_norm(x + self.attention(x, x, mask[:, None, None, :]))
            scores = self.pool_score(self.pool_dropout(torch.tanh(self.pool_hidden(x))))
            scores = scores.squeeze(-1).masked_fill(~mask, -1e9)
            weights = torch.softmax(scores, dim=1) * mask
            weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-9)
            return self.classifier((x * weights.unsqueeze(-1)).sum(1))

    def sinusoidal_positions(steps, width, dtype):
        positions = torch.arange(steps, dtype=dtype)
        frequencies = 10000.0 ** (-torch.arange(width // 2, dtype=dtype) * (2.0 / width))
        angles = positions[:, None] * frequencies[None]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    def temporal_attention_mask(padding_mask, window=None):
        """`models.keyframe_transformer.temporal_attention_mask`: [B, 1, T, T]."""
        steps = padding_mask.shape[1]
        offsets = torch.arange(steps)[:, None] - torch.arange(steps)[None, :]
        mask = padding_mask[:, None, :] | (offsets == 0)[None]
        if window is not None:
            mask = mask & (offsets.abs() <= window)[None]
        return mask[:, None]

    class EncoderBlock(nn.Module):
        """Post-norm Transformer encoder block (`_encoder_block`)."""

        def __init__(self, config):
            super().__init__()
            dim, heads = config.model_dim, config.num_heads
            self.attention = MultiHeadAttention(dim, heads, dim // heads, dropout=config.dropout)
            self.attention_dropout = nn.Dropout(config.dropout)
            self.attention_norm = nn.LayerNorm(dim, eps=config.layer_norm_epsilon)
            self.feed_forward = nn.Sequential(
                nn.Linear(dim, config.ff_dim), nn.ReLU(), nn.Dropout(config.dropout),
                nn.Linear(config.ff_dim, dim), nn.Dropout(config.dropout),
            )
            self.ff_norm = nn.LayerNorm(dim, eps=config.layer_norm_epsilon)

        def forward(self, x, mask):
            x = self.attention_norm(x + self.attention_dropout(self.attention(x, x, mask)))
            return self.ff_norm(x + self.feed_forward(x))

    class SqueezeExcite(nn.Module):
        def __init__(self, channels, squeezed):
            super().__init__()
            self.reduce = nn.Conv2d(channels, squeezed, 1)
            self.expand = nn.Conv2d(squeezed, channels, 1)

        def forward(self, x):
            scale = F.adaptive_avg_pool2d(x, 1)
            return x * torch.sigmoid(self.expand(F.silu(self.reduce(scale))))

    def conv_bn(channels, filters, kernel, stride=1, groups=1):
        return [nn.Conv2d(channels, filters, kernel, stride, kernel // 2, groups=groups,
                          bias=False),
                nn.BatchNorm2d(filters, eps=1e-3)]

    class MBConv(nn.Module):
        """EfficientNet's inverted residual block with squeeze-excitation."""

        def __init__(self, channels, filters, kernel, stride, expand):
            super().__init__()
            hidden = channels * expand
            layers = [*conv_bn(channels, hidden, 1), nn.SiLU()] if expand != 1 else []
            layers += [*conv_bn(hidden, hidden, kernel, stride, groups=hidden), nn.SiLU(),
                       SqueezeExcite(hidden, max(1, int(channels * 0.25))),
                       *conv_bn(hidden, filters, 1)]
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and channels == filters

        def forward(self, x):
            return x + self.block(x) if self.residual else self.block(x)

    # (expansion, kernel, stride, input width, output width, repeats).
    efficientnet_b0_blocks = (
        (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    )

    class EfficientNetB0(nn.Module):
        """`keras.applications.EfficientNetB0(include_top=False,
        pooling="avg")` on RGB 0..255, its rescaling and ImageNet
        normalisation included."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
            layers = [*conv_bn(3, 32, 3, 2), nn.SiLU()]
            for expand, kernel, stride, channels, filters, repeats in efficientnet_b0_blocks:
                for index in range(repeats):
                    layers.append(MBConv(channels if index == 0 else filters, filters, kernel,
                                         stride if index == 0 else 1, expand))
            layers += [*conv_bn(320, 1280, 1), nn.SiLU()]
            self.features = nn.Sequential(*layers)

        def forward(self, images):
            x = (images / 255.0 - self.mean) / self.std
            return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    class KeyframeTransformer(nn.Module):
        """`models.keyframe_transformer.build_keyframe_transformer` with
        the "concat" fusion and its "direct" attention."""

        def __init__(self, config):
            super().__init__()
            if config.fusion != "concat":
                raise ValueError("the PyTorch twin has the 'concat' fusion only")
            dim, heads = config.model_dim, config.num_heads
            self.backbone = None
            feature_dim = config.input_shape[-1]
            if config.input_mode == "frames":
                if config.backbone != "efficientnet_b0":
                    raise ValueError("the PyTorch twin's frame backbone is efficientnet_b0")
                self.backbone = EfficientNetB0().eval().requires_grad_(False)
                feature_dim = 1280
            self.window = config.local_window
            self.projection = nn.Linear(feature_dim, dim)
            self.input_dropout = nn.Dropout(config.dropout)
            self.encoder = nn.ModuleList(EncoderBlock(config) for _ in range(config.num_layers))
            self.local_attention = MultiHeadAttention(dim, heads, dim // heads,
                                                      dropout=config.dropout)
            self.global_attention = MultiHeadAttention(dim, heads, dim // heads,
                                                       dropout=config.dropout)
            self.fusion = nn.Linear(2 * dim, dim)
            self.scorer = nn.Sequential(nn.Linear(dim, config.scorer_units), nn.ReLU(),
                                        nn.Dropout(config.dropout),
                                        nn.Linear(config.scorer_units, 1))

        def train(self, mode=True):
            super().train(mode)
            if self.backbone is not None:
                self.backbone.eval()  # frozen: BatchNorm in inference mode
            return self

        def forward(self, inputs, mask):
            if self.backbone is not None:
                batch, steps = inputs.shape[:2]
                with torch.no_grad():
                    inputs = self.backbone(inputs.flatten(0, 1)).unflatten(0, (batch, steps))
            x = inputs * mask.unsqueeze(-1)
            x = self.projection(x)
            x = self.input_dropout(x + sinusoidal_positions(x.shape[1], x.shape[2], x.dtype))
            global_mask = temporal_attention_mask(mask)
            local_mask = temporal_attention_mask(mask, self.window)
            for block in self.encoder:
                x = block(x, global_mask)
            fused = self.fusion(torch.cat([self.local_attention(x, x, local_mask),
                                           self.global_attention(x, x, global_mask)], -1))
            scores = torch.sigmoid(self.scorer(fused).squeeze(-1))
            return torch.where(mask, scores, torch.zeros_like(scores))

    def midplanes(in_width, out_width):
        return (in_width * out_width * 27) // (in_width * 9 + 3 * out_width)

    def conv3d_bn(channels, filters, kernel, stride, padding):
        return [nn.Conv3d(channels, filters, kernel, stride, padding, bias=False),
                nn.BatchNorm3d(filters, eps=1e-5, momentum=0.1)]

    class Conv2Plus1D(nn.Sequential):
        def __init__(self, channels, filters, mid, stride):
            super().__init__(*conv3d_bn(channels, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1)),
                             nn.ReLU(),
                             nn.Conv3d(mid, filters, (3, 1, 1), (stride, 1, 1), (1, 0, 0),
                                       bias=False))

    class BasicBlock(nn.Module):
        def __init__(self, channels, filters, stride):
            super().__init__()
            mid = midplanes(channels, filters)
            self.conv1 = nn.Sequential(Conv2Plus1D(channels, filters, mid, stride),
                                       nn.BatchNorm3d(filters, eps=1e-5), nn.ReLU())
            self.conv2 = nn.Sequential(Conv2Plus1D(filters, filters, mid, 1),
                                       nn.BatchNorm3d(filters, eps=1e-5))
            self.downsample = None
            if stride != 1 or channels != filters:
                self.downsample = nn.Sequential(*conv3d_bn(channels, filters, 1, stride, 0))

        def forward(self, x):
            shortcut = x if self.downsample is None else self.downsample(x)
            return F.relu(self.conv2(self.conv1(x)) + shortcut)

    class R2Plus1D(nn.Module):
        """torchvision's `r2plus1d_18` layout, truncated to `cnn_blocks`,
        on frames [B, T, H, W, C] normalised with the Kinetics statistics;
        with `perceiver` a Perceiver head on the flattened feature map."""

        def __init__(self, config, perceiver=False):
            super().__init__()
            from models import r2plus1d  # see the module doc: imported when needed

            widths = config.widths
            channels = config.input_shape[-1]
            mean, std = r2plus1d.KINETICS_MEAN, r2plus1d.KINETICS_STD
            if channels != 3:
                mean = (sum(mean) / 3,) * channels
                std = (sum(std) / 3,) * channels
            # Constants, as in Keras' Normalization layer given its statistics.
            self.mean = torch.tensor(mean).view(1, -1, 1, 1, 1)
            self.std = torch.tensor(std).view(1, -1, 1, 1, 1)
            self.normalize = config.normalize_input
            stem = r2plus1d.stem_width(widths)
            layers = [*conv3d_bn(channels, stem, (1, 7, 7), (1, 2, 2), (0, 3, 3)), nn.ReLU(),
                      *conv3d_bn(stem, widths[0], (3, 1, 1), 1, (1, 0, 0)), nn.ReLU()]
            for _, in_width, out_width, stride in r2plus1d.block_plan(config.cnn_blocks, widths):
                layers.append(BasicBlock(in_width, out_width, stride))
                width = out_width
            self.backbone = nn.Sequential(*layers)
            self.perceiver = Perceiver(config, width) if perceiver else None
            head_width = config.latent_dim if perceiver else width
            self.head = nn.Linear(head_width, config.num_classes)

        def forward(self, frames):
            x = frames.permute(0, 4, 1, 2, 3)
            if self.normalize:
                x = (x - self.mean) / self.std
            x = self.backbone(x)
            if self.perceiver is None:
                return self.head(x.mean(dim=(2, 3, 4)))
            return self.head(self.perceiver(x.permute(0, 2, 3, 4, 1)))

    class GEGLU(nn.Module):
        def __init__(self, dim, multiplier, dropout):
            super().__init__()
            self.expand = nn.Linear(dim, 2 * multiplier * dim)
            self.project = nn.Linear(multiplier * dim, dim)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            value, gate = self.expand(x).chunk(2, dim=-1)
            return self.dropout(self.project(value * F.gelu(gate)))

    class PerceiverBlock(nn.Module):
        """Pre-norm attention + GEGLU block; cross-attention when
        `token_dim` is given, else self-attention."""

        def __init__(self, dim, heads, head_dim, multiplier, dropout, token_dim=None):
            super().__init__()
            self.cross = token_dim is not None
            self.query_norm = nn.LayerNorm(dim, eps=1e-5)
            if self.cross:
                self.token_norm = nn.LayerNorm(token_dim, eps=1e-5)
            self.attention = MultiHeadAttention(dim, heads, head_dim, key_dim=token_dim or dim)
            self.attention_dropout = nn.Dropout(dropout)
            self.ff_norm = nn.LayerNorm(dim, eps=1e-5)
            self.feed_forward = GEGLU(dim, multiplier, dropout)

        def forward(self, x, tokens=None):
            query = self.query_norm(x)
            keys = self.token_norm(tokens) if self.cross else query
            x = x + self.attention_dropout(self.attention(query, keys))
            return x + self.feed_forward(self.ff_norm(x))

    def video_positions(steps, height, width, channels, dtype):
        """`models.perceiver.VideoPositionEncoding`'s encoding [T, H, W, C]."""
        pairs = channels // 6
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(pairs, dtype=dtype) / pairs)

        def axis(length):
            angles = torch.arange(length, dtype=dtype)[:, None] * frequencies[None]
            return torch.cat([torch.sin(angles), torch.cos(angles)], -1)

        size = (steps, height, width, 2 * pairs)
        return torch.cat([axis(steps)[:, None, None].expand(size),
                          axis(height)[None, :, None].expand(size),
                          axis(width)[None, None, :].expand(size),
                          torch.zeros(steps, height, width, channels - 6 * pairs)], -1)

    class Perceiver(nn.Module):
        """`models.perceiver.Perceiver` with cross-attention blocks."""

        def __init__(self, config, token_dim):
            super().__init__()
            if not config.cross_blocks:
                raise ValueError("the PyTorch twin's Perceiver needs cross_blocks >= 1")
            dim = config.latent_dim
            self.position_encoding = config.position_encoding
            self.latents = nn.Parameter(torch.randn(config.num_latents, dim) * 0.02)
            self.per_cross = config.self_blocks // config.cross_blocks
            self.cross_layers = nn.ModuleList(
                PerceiverBlock(dim, config.cross_heads, config.cross_head_dim,
                               config.ff_multiplier, config.dropout, token_dim)
                for _ in range(config.cross_blocks))
            self.self_layers = nn.ModuleList(
                PerceiverBlock(dim, config.self_heads, config.self_head_dim,
                               config.ff_multiplier, config.dropout)
                for _ in range(config.self_blocks))
            self.output_norm = nn.LayerNorm(dim, eps=1e-5)

        def forward(self, feature_map):
            if self.position_encoding:
                feature_map = feature_map + video_positions(*feature_map.shape[1:],
                                                            feature_map.dtype)
            tokens = feature_map.flatten(1, 3)
            x = self.latents.expand(tokens.shape[0], -1, -1)
            for index, cross in enumerate(self.cross_layers):
                x = cross(x, tokens)
                for block in self.self_layers[index * self.per_cross:
                                              (index + 1) * self.per_cross]:
                    x = block(x)
            return self.output_norm(x.mean(1))

    return {
        "ConvLSTMClassifier": ConvLSTMClassifier,
        "BiLSTMAttention": BiLSTMAttention,
        "KeyframeTransformer": KeyframeTransformer,
        "R2Plus1D": R2Plus1D,
    }


def focal_loss(logits, labels, gamma, label_smoothing):
    """`models.losses.FocalLoss` (from logits), mean over the batch."""
    import torch

    classes = logits.shape[-1]
    target = torch.nn.functional.one_hot(labels, classes).to(logits.dtype)
    target = target * (1.0 - label_smoothing) + label_smoothing / classes
    log_probs = torch.log_softmax(logits, dim=-1)
    weight = torch.clamp(1.0 - log_probs.exp(), min=0.0) ** gamma
    return -(target * weight * log_probs).sum(-1).mean()


def spearman_ranking_loss(scores, targets, temperature, mse_weight=0.0):
    """`models.losses.SpearmanRankingLoss`, mean over the sequences."""
    import torch

    valid = (targets >= 0).to(scores.dtype)
    other = valid.unsqueeze(1)
    soft_rank = (torch.sigmoid((scores.unsqueeze(2) - scores.unsqueeze(1)) / temperature)
                 * other).sum(-1)
    pairs = targets.unsqueeze(2) - targets.unsqueeze(1)
    target_rank = (((pairs > 0).to(scores.dtype) + 0.5 * (pairs == 0).to(scores.dtype))
                   * other).sum(-1)
    count = valid.sum(-1, keepdim=True).clamp(min=1.0)
    dx = (soft_rank - (soft_rank * valid).sum(-1, keepdim=True) / count) * valid
    dy = (target_rank - (target_rank * valid).sum(-1, keepdim=True) / count) * valid
    pearson = (dx * dy).sum(-1) / torch.sqrt((dx * dx).sum(-1) * (dy * dy).sum(-1) + 1e-8)
    loss = 1.0 - pearson
    if mse_weight:
        mse = (valid * (scores - targets) ** 2).sum(-1) / count.squeeze(-1)
        loss = loss + mse_weight * mse
    return loss.mean()


def classifier_loss(num_classes):
    """The clip classifiers' loss: binary cross-entropy of one sigmoid
    output, else cross-entropy of softmax (both taken from the logits, as
    Keras' TensorFlow backend does for a sigmoid or softmax output)."""
    import torch.nn.functional as F

    if num_classes == 1:
        return lambda logits, labels: F.binary_cross_entropy_with_logits(logits, labels)
    return lambda logits, labels: F.cross_entropy(logits, labels)


def decay_groups(model, excluded=("latents",)):
    """AdamW / SGD parameter groups: norm layers' weights, biases and the
    named parameters in `excluded` without weight decay, as the Keras
    optimizers' `exclude_from_weight_decay(["gamma", "beta", "bias", ...])`."""
    from torch import nn

    no_decay = set()
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            if (isinstance(module, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm))
                    or name == "bias" or name in excluded):
                no_decay.add(id(parameter))
    trainable = [p for p in model.parameters() if p.requires_grad]
    return ([p for p in trainable if id(p) not in no_decay],
            [p for p in trainable if id(p) in no_decay])


def build_twin(name, config, inputs, targets):
    """The PyTorch twin of model `name` at `config`, with its optimizer,
    loss and the batch (`inputs`, `targets`: the Keras example batch, numpy,
    put into the layout the twin reads once, as a data loader would)."""
    import torch

    classes = _torch_modules()
    tensors = {key: torch.from_numpy(value) for key, value in inputs.items()}
    if name == "convlstm":
        model = classes["ConvLSTMClassifier"](config)
        frames = tensors["frames"].permute(0, 1, 4, 2, 3).contiguous()  # [B, T, C, H, W]
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                     betas=(config.beta_1, config.beta_2), eps=1e-7)
        labels = torch.from_numpy(targets)
        labels = labels.float() if config.num_classes == 1 else labels.long()
        return Twin(model, classifier_loss(config.num_classes), optimizer, (frames,), labels)
    if name == "bilstm_attention":
        model = classes["BiLSTMAttention"](config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                      betas=(config.beta_1, config.beta_2), eps=1e-7,
                                      weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=config.restart_epochs * 100, T_mult=int(config.restart_t_mul),
            eta_min=config.min_learning_rate)
        # nn.LSTM keeps two bias vectors per direction, Keras one.
        extra = config.lstm_layers * 2 * 4 * config.lstm_units
        return Twin(
            model,
            lambda logits, labels: focal_loss(logits, labels, config.focal_gamma,
                                              config.label_smoothing),
            optimizer, (tensors["features"], tensors["mask"]),
            torch.from_numpy(targets).long(), scheduler=scheduler, clip_norm=config.clipnorm,
            difference=(extra, "nn.LSTM has two bias vectors (b_ih, b_hh) per direction, "
                               "Keras' LSTM one"),
        )
    if name == "keyframe_transformer":
        model = classes["KeyframeTransformer"](config)
        values = tensors["features"] if config.input_mode == "features" else (
            tensors["frames"].permute(0, 1, 4, 2, 3).contiguous())
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=config.learning_rate, eps=1e-7,
                                      weight_decay=config.weight_decay)
        # Keras' EfficientNetB0 keeps its Normalization layer's mean, variance
        # and count (7 numbers), the twin its mean and std (6).
        extra = -1 if config.input_mode == "frames" else 0
        return Twin(
            model,
            lambda scores, target: spearman_ranking_loss(scores, target, config.rank_temperature,
                                                         config.mse_weight),
            optimizer, (values, tensors["mask"]), torch.from_numpy(targets),
            difference=(extra, "Keras' Normalization layer also stores its sample count"
                        if extra else ""),
        )
    if name in ("r2plus1d", "r2plus1d_perceiver"):
        model = classes["R2Plus1D"](config, perceiver=name == "r2plus1d_perceiver")
        decay, no_decay = decay_groups(model)
        groups = [{"params": decay, "weight_decay": config.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        if config.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=config.learning_rate,
                                        momentum=config.momentum)
        else:
            optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, eps=1e-7)
        warmup, total = config.warmup_epochs * 100, config.epochs * 100

        def schedule(step):
            if step < warmup:
                return step / warmup
            return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup)
                                       / max(total - warmup, 1)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        labels = torch.from_numpy(targets)
        labels = labels.float() if config.num_classes == 1 else labels.long()
        return Twin(model, classifier_loss(config.num_classes), optimizer,
                    (tensors["frames"],), labels, scheduler=scheduler)
    raise ValueError(f"no PyTorch twin for model {name!r}")


def torch_step_maker(name, preset, threads):
    """Builds the PyTorch twin of `name` at `preset` and returns `(step,
    info)`, as `keras_step_maker`."""
    import numpy as np
    import torch

    import models  # see the module doc: imported when needed
    from benchmarks.train_step import benchmark_config  # see the module doc: imported when needed

    torch.set_num_threads(threads or os.cpu_count())
    # TensorFlow's CPU thread pools flush denormal floats to zero; PyTorch
    # does not unless asked, and denormals slow x86 arithmetic many times.
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    family = models.get_family(name)
    config, batch_size = benchmark_config(name, preset)
    inputs, targets = family.example_batch(config, batch_size, seed=0)
    twin = build_twin(name, config, inputs, targets)
    twin.model.train()
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal((2048, 2048), dtype=np.float32))
    b = torch.from_numpy(rng.standard_normal((2048, 2048), dtype=np.float32))
    peak = best_matmul_gflops(lambda: torch.matmul(a, b))
    total, trainable = torch_parameter_counts(twin.model)
    info = {
        "params": total,
        "trainable": trainable,
        "difference": twin.difference,
        "threads": torch.get_num_threads(),
        "peak_gflops": peak,
        "version": f"PyTorch {torch.__version__}",
    }
    return (lambda: twin_train_step(twin)), info


# --------------------------------------------------------------------------
# The two children and the interleaved rounds.

MAKERS = {"keras": keras_step_maker, "torch": torch_step_maker}


def child(connection, framework, name, preset, threads):
    """A child process: builds its framework's step, sends its info, then
    answers each "step" with `(wall, cpu)` seconds until "stop"."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if framework == "keras":
        from common.native_logs import hide_tensorflow_start

        hide_tensorflow_start()
    try:
        step, info = MAKERS[framework](name, preset, threads)
    except Exception as error:  # reported to the parent, which names the model
        connection.send({"error": f"{type(error).__name__}: {error}"})
        return
    connection.send(info)
    while connection.recv() == "step":
        connection.send(timed_step(step))


def compare(name, preset, repeats, warmup=2, threads=None):
    """One table row: `name` at `preset` in Keras and in PyTorch, their
    steps interleaved in `warmup + repeats` rounds (the first `warmup`
    untimed), each in its own process; see the module doc."""
    context = multiprocessing.get_context("spawn")
    children, infos = {}, {}
    try:
        for framework in MAKERS:
            parent_end, child_end = context.Pipe()
            process = context.Process(target=child, args=(child_end, framework, name, preset,
                                                          threads), daemon=True)
            process.start()
            children[framework] = (process, parent_end)
            infos[framework] = parent_end.recv()
            if "error" in infos[framework]:
                raise RuntimeError(f"{name} ({preset}), {framework}: {infos[framework]['error']}")
        times = {framework: [] for framework in MAKERS}
        loads = []
        for round_index in range(warmup + repeats):
            loads.append(os.getloadavg()[0])
            for framework, (_, connection) in children.items():
                connection.send("step")
                wall, cpu = connection.recv()
                if round_index >= warmup:
                    times[framework].append((wall, cpu))
    finally:
        for process, connection in children.values():
            try:
                connection.send("stop")
            except (BrokenPipeError, OSError):
                pass
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
    return row(name, preset, infos, times, loads)


def row(name, preset, infos, times, loads):
    """The table row of one comparison (see `COLUMNS`)."""
    from benchmarks.train_step import row_label

    keras_info, torch_info = infos["keras"], infos["torch"]
    batch = keras_info["batch"]
    medians = {framework: (statistics.median(w for w, _ in values),
                           statistics.median(c for _, c in values))
               for framework, values in times.items()}
    (keras_s, keras_cpu), (torch_s, torch_cpu) = medians["keras"], medians["torch"]
    flops = keras_info["train_flops"]

    def rate(framework, cpu):
        gflops = flops * batch / cpu / 1e9
        return f"{gflops:.3g} ({100 * gflops / infos[framework]['peak_gflops']:.0f}%)"

    difference, why = torch_info["difference"]
    params = f"{torch_info['params']:,}"
    if torch_info["params"] - keras_info["params"] != difference:
        params += " (UNEXPECTED)"
    elif difference:
        params += f" ({difference:+,}: {why})"
    return {
        "model": row_label(name, preset),
        "input": keras_info["input"],
        "batch": batch,
        "Keras params": keras_info["params"],
        "PyTorch params": params,
        "Keras step (s)": keras_s,
        "Keras CPU (s)": keras_cpu,
        "PyTorch step (s)": torch_s,
        "PyTorch CPU (s)": torch_cpu,
        "Keras samples/s": batch / keras_s,
        "PyTorch samples/s": batch / torch_s,
        "Keras / PyTorch": f"{torch_s / keras_s:.2f}x (CPU {torch_cpu / keras_cpu:.2f}x)",
        "Keras GFLOP per CPU s (of matmul's)": rate("keras", keras_cpu),
        "PyTorch GFLOP per CPU s (of matmul's)": rate("torch", torch_cpu),
        "Keras XLA": keras_info["xla"],
        "threads": f"TF {keras_info['threads']} / torch {torch_info['threads']}",
        "load": f"{min(loads):.1f}-{max(loads):.1f}",
        "steps": len(times["keras"]),
        "ratio": torch_s / keras_s,
        "cpu_ratio": torch_cpu / keras_cpu,
        "keras_peak": keras_info["peak_gflops"],
        "torch_peak": torch_info["peak_gflops"],
        "versions": f"{keras_info['version']}; {torch_info['version']}",
    }


def build_parser():
    import models  # see the module doc: imported when needed

    parser = ArgumentParser(prog="python -m benchmarks.torch_twin",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(models.names()),
                        choices=models.names(), help="model families to compare")
    parser.add_argument("--presets", nargs="+", default=None,
                        help="presets to compare (default: each family's benchmark presets)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per model (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra-op threads and torch threads (default: "
                             "TensorFlow's own choice, and the same count for torch)")
    return parser


def main(argv=None):
    if not torch_available():
        print(TORCH_MISSING)
        return 0
    import models  # see the module doc: imported when needed

    args = build_parser().parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        raise ValueError("--repeats must be >= 1 and --warmup >= 0")
    from benchmarks.timing import machine_description

    print(f"machine: {machine_description()}", flush=True)
    rows = []
    for name in args.models:
        presets = args.presets or models.get_family(name).benchmark_presets
        for preset in presets:
            if preset not in models.presets(name):
                continue
            rows.append(compare(name, preset, args.repeats, args.warmup, args.threads))
            # The whole row as soon as it is measured: a long run that is
            # stopped keeps what it measured.
            print("  measured " + markdown_table(rows[-1:], COLUMNS).splitlines()[-1],
                  file=sys.stderr, flush=True)
    if not rows:
        raise ValueError("no model has the presets asked for")
    print(rows[0]["versions"])
    print(f"fp32 matmul (2048^2, best of 10): TensorFlow "
          f"{statistics.median(r['keras_peak'] for r in rows):,.0f}, PyTorch "
          f"{statistics.median(r['torch_peak'] for r in rows):,.0f} GFLOP per CPU second "
          "(medians over rows)")
    print(f"medians of {rows[0]['steps']} interleaved steps each\n")
    print(markdown_table(rows, COLUMNS))
    below = [r["model"] for r in rows if r["ratio"] < TARGET_RATIO]
    if below:
        print(f"\nbelow {TARGET_RATIO:g}x PyTorch's samples/s: {', '.join(below)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
