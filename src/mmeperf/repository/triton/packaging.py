"""Packaging for Triton: a model folder (``config.pbtxt`` + ``<version>/model.*``) from an
exported artifact, added to a :class:`~mmeperf.repository.ModelRepository` with N copies.

SageMaker layout: ``<name>.tar.gz`` holding ``<name>/...`` (what SageMaker's Triton MME container
unpacks); Triton layout: the folder itself. The only part of the storage layer that knows
exporters and TensorRT engines.
"""

from __future__ import annotations

import builtins
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mmeperf.backends.tensorrt import EngineProfile
from mmeperf.errors import ConfigurationError, MissingDependencyError
from mmeperf.exporters.base import ExportResult
from mmeperf.repository.triton.config import (
    BACKEND_PLATFORMS,
    CONFIG_FILE,
    TritonModelConfig,
    check_engine_profile,
    parse_config,
)

if TYPE_CHECKING:
    from mmeperf.repository.manifest import ModelEntry
    from mmeperf.repository.repository import ModelRepository

__all__ = ["package_model", "triton_model_folder"]


def triton_model_folder(
    destination: Path, config: TritonModelConfig, artifact_dir: Path, *, version: int = 1
) -> Path:
    """Lay out ``destination/config.pbtxt`` and ``destination/<version>/<artifact files>``.

    Checks the artifact file the platform loads is there before writing anything.
    """
    if version < 1:
        raise ConfigurationError(f"Triton model versions start at 1, got {version}")
    artifact_dir = Path(artifact_dir)
    wanted = config.model_filename
    if not (artifact_dir / wanted).is_file():
        present = sorted(p.name for p in artifact_dir.iterdir()) if artifact_dir.is_dir() else []
        raise ConfigurationError(
            f"{config.platform} loads {wanted}, which {artifact_dir} does not hold (it has {present})"
        )
    text = config.to_pbtxt()
    try:
        parse_config(text)
    except MissingDependencyError:
        pass
    destination = Path(destination)
    version_dir = destination / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    for item in artifact_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, version_dir / item.name)
    (destination / CONFIG_FILE).write_text(text)
    return destination


def package_model(
    repository: ModelRepository,
    name: str,
    artifact: ExportResult | Path,
    config: TritonModelConfig,
    *,
    backend: str | None = None,
    copies: int = 0,
    template: str = "{name}-v{i}",
    overwrite: bool = False,
) -> builtins.list[ModelEntry]:
    """Add one model (and ``copies`` copies) to ``repository`` in Triton's folder structure.

    SageMaker layout: ``<name>.tar.gz`` holding ``<name>/config.pbtxt`` and ``<name>/1/model.*``
    (what SageMaker's Triton MME container unpacks); Triton layout: the same folder under the
    repository. Copies are ``template.format(name=name, i=0..copies-1)``: how the GPU
    workflow fills an instance's memory. Returns the entries added, the model first.
    """
    if isinstance(artifact, ExportResult):
        backend = backend or artifact.backend
        artifact_dir = artifact.directory
    else:
        artifact_dir = Path(artifact)
    if backend is None:
        raise ConfigurationError("package_model needs backend= when given a folder")
    expected = BACKEND_PLATFORMS.get(backend)
    if expected is not None and expected != config.platform:
        raise ConfigurationError(
            f"A {backend!r} artifact is served by Triton's {expected}, but the config says {config.platform}"
        )
    if config.platform == "tensorrt_plan":
        profile = EngineProfile.load(artifact_dir)
        if profile is not None:
            check_engine_profile(config, profile)
    if copies < 0:
        raise ConfigurationError(f"copies must be >= 0, got {copies}")
    # The repository's own name rules (InvalidModelNameError, 400) before any path is built.
    name = repository.layout_strategy.name_of(name)
    with tempfile.TemporaryDirectory(prefix="mmeperf-triton-") as tmp:
        # A fixed folder name: the model's name never becomes part of a local path here.
        folder = triton_model_folder(Path(tmp) / "model", config, artifact_dir)
        prefix = repository.layout_strategy.folder_prefix(name)
        entry = repository.add(
            name, folder, backend=backend, arcname_prefix=prefix, overwrite=overwrite
        )
    entries = [entry]
    if copies:
        entries.extend(repository.copies(name, copies, template=template, overwrite=overwrite))
    return entries
