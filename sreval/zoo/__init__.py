"""Model zoo: named SR models as folders of config + safetensors weights + model card, and ESRGAN network
interpolation between two of them.

One module per job: `entry` (what a config says, checked), `locations` (the roots searched, finding entries),
`weights` (safetensors and external files, read and checked), `load` (network + weights), `card` (the model
card), `write` (new entries), `interpolation` (ESRGAN eq. 4). The names other packages use are gathered here.
"""

from sreval.zoo.card import model_card
from sreval.zoo.entry import (
    CARD,
    CONFIG,
    PIPELINES,
    STATUSES,
    WEIGHTS,
    Interpolation,
    Weights,
    WeightStatus,
    ZooEntry,
    check_name,
    parse_config,
    read_entry,
)
from sreval.zoo.interpolation import alpha_sweep, interpolate, interpolate_state_dicts, sweep_name
from sreval.zoo.load import count_parameters, load_model, load_state_dict
from sreval.zoo.locations import builtin_dir, get_entry, list_models, scan, write_root, zoo_roots
from sreval.zoo.weights import (
    checksum_status,
    parse_safetensors,
    read_safetensors,
    tensor_summary,
)
from sreval.zoo.write import save_model

__all__ = [
    "CARD",
    "CONFIG",
    "PIPELINES",
    "STATUSES",
    "WEIGHTS",
    "Interpolation",
    "WeightStatus",
    "Weights",
    "ZooEntry",
    "alpha_sweep",
    "builtin_dir",
    "check_name",
    "checksum_status",
    "count_parameters",
    "get_entry",
    "interpolate",
    "interpolate_state_dicts",
    "list_models",
    "load_model",
    "load_state_dict",
    "model_card",
    "parse_config",
    "parse_safetensors",
    "read_entry",
    "read_safetensors",
    "save_model",
    "scan",
    "sweep_name",
    "tensor_summary",
    "write_root",
    "zoo_roots",
]
