"""The ONNX exports the throughput run made: model file sizes and fp32/int8 logit parity with torch on real texts."""

import dataclasses
from pathlib import Path

from polyhead.serving import ONNX_FILE, QUANTIZED_FILE


SIZED_FILES = ("model.safetensors", ONNX_FILE, QUANTIZED_FILE)


@dataclasses.dataclass
class OnnxFilesSummary:
    """One exported multitask model: file sizes (MiB) and the largest |onnx - torch| logit per task."""

    num_tasks: int
    file_mib: dict[str, float]
    fp32_max_abs_diff: dict[str, float]
    int8_max_abs_diff: dict[str, float]


def export_summary(num_tasks: int, export) -> OnnxFilesSummary:
    """An `OnnxFilesSummary` from `polyhead.exporters.onnx.export_onnx`'s result (files in `<folder>/onnx/`)."""
    folder = Path(export.files[0]).parent.parent
    sizes = {name: (folder / name).stat().st_size / 2**20 for name in SIZED_FILES if (folder / name).is_file()}
    return OnnxFilesSummary(num_tasks, sizes, export.max_abs_diff, export.int8_max_abs_diff or {})
