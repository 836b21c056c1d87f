"""Vectors leaving and entering the workbench, one module per target: llama.cpp control vectors
(``llamacpp``), lm-eval's ``steered`` model and IFEval task (``lm_eval_files``), model-to-model
transfer (``transfer``), an embedded model as a Hugging Face folder (``model_folder``)."""

from workbench.interop.llamacpp import (
    ARCH,
    apply_control_vector,
    control_vector_data,
    control_vector_specs,
    export_control_vector,
    import_control_vector,
)
from workbench.interop.lm_eval_files import export_lm_eval, lm_eval_module, write_ifeval_task
from workbench.interop.model_folder import export_model
from workbench.interop.transfer import transfer

__all__ = [
    "ARCH",
    "apply_control_vector",
    "control_vector_data",
    "control_vector_specs",
    "export_control_vector",
    "export_lm_eval",
    "export_model",
    "import_control_vector",
    "lm_eval_module",
    "transfer",
    "write_ifeval_task",
]
