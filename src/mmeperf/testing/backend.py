"""The Backend conformance suite: the tests every backend plugin must pass, in one base class.

Subclass it in a test module, say which backend, build a tiny native model and a batch, and
pytest runs the whole contract (save/load parity, codecs, typed errors, pickle refusal,
entry-point discovery)::

    class TestMyBackend(BackendConformance):
        backend = "mine"                      # entry-point name (or the Backend class)

        def make_model(self): ...             # a tiny native model, built in milliseconds
        def make_batch(self): ...             # a few rows the model accepts
        def native_predict(self, model, batch): ...   # what the framework itself predicts

Set ``rtol``/``atol`` when the runner may differ from the framework by rounding (the default,
0, demands bit-for-bit equality). Override ``request_body`` or ``malformed_payloads`` for content
types of your own.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from mmeperf._types import Array, Batch
from mmeperf.backends import codecs, get_backend
from mmeperf.backends.base import Backend, Runner
from mmeperf.backends.bodies import encode_request
from mmeperf.errors import (
    ConfigurationError,
    ModelLoadError,
    PayloadError,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
)
from mmeperf.plugins import BACKENDS, get_backend_class

__all__ = ["BackendConformance"]

_UNKNOWN_TYPE = "application/x-mmeperf-unknown"
_pickle_canary_calls: list[str] = []


def _pickle_canary(tag: str) -> str:
    """Called only if someone unpickles the bytes of :class:`_Canary`: proof a pickle ran."""
    _pickle_canary_calls.append(tag)
    return tag


class _Canary:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_pickle_canary, ("unpickled",))


class BackendConformance:
    """Base class of a backend plugin's conformance tests (pytest collects your ``Test*`` subclass)."""

    #: The backend under test: its entry-point name, or its class.
    backend: ClassVar[str | type[Backend]]
    #: Tolerances against ``native_predict``; 0 and 0 mean bit for bit.
    rtol: ClassVar[float] = 0.0
    atol: ClassVar[float] = 0.0

    # --- what a plugin author writes -----------------------------------------------------------

    def make_model(self) -> Any:
        """A tiny native model of the framework (train or build it here; nothing downloaded)."""
        raise NotImplementedError("BackendConformance subclasses implement make_model()")

    def make_batch(self) -> Batch:
        """A few input rows the model accepts (2-D float array for tabular models)."""
        raise NotImplementedError("BackendConformance subclasses implement make_batch()")

    def native_predict(self, model: Any, batch: Batch) -> Array:
        """What the framework itself predicts for ``batch`` (the reference for parity)."""
        raise NotImplementedError("BackendConformance subclasses implement native_predict()")

    def request_body(self, batch: Batch, content_type: str) -> bytes:
        """A request body of ``content_type`` carrying ``batch``; override for your own types."""
        if isinstance(batch, dict):
            pytest.skip("named-tensor batches have no generic request encoding; override request_body")
        try:
            return encode_request(batch, content_type)
        except UnsupportedContentTypeError:
            pytest.skip(f"no generic encoder for {content_type}; override request_body")

    def malformed_payloads(self, n_features: int | None) -> list[tuple[str, bytes]]:
        """(content type, body) pairs that must raise PayloadError; extend for your own types."""
        bodies: dict[str, list[bytes]] = {
            codecs.CSV: [b"", b"  \n ", b"not,a,number", b"1,2\n1"],
            codecs.JSON: [b"", b"{not json", b'["a", "b"]', b"[[1, 2], [1]]", b'{"rows": []}', b"[]"],
            codecs.NPY: [b"", b"\x93NUMPY garbage", _object_npy()],
            codecs.LIBSVM: [b"", b"1 x:y", b"1 -3:1.0", b"1 0:1 0:2"],
        }
        if n_features is not None:
            wide = ",".join(["1"] * (n_features + 1)).encode()
            bodies[codecs.CSV].append(wide)
            bodies[codecs.JSON].append(b"[" + wide + b"]")
            # Index 0 makes the body 0-based whatever convention the decoder detects.
            bodies[codecs.LIBSVM].append(f"1 0:1.0 {n_features}:1.0".encode())
            bodies[codecs.NPY].append(_npy(np.ones((2, n_features + 1), dtype=np.float32)))
        out: list[tuple[str, bytes]] = []
        for content_type in self._backend_class().content_types:
            out.extend((content_type, body) for body in bodies.get(codecs.media_type(content_type), []))
        return out

    # --- fixtures ------------------------------------------------------------------------------

    def _backend_class(self) -> type[Backend]:
        target = type(self).backend
        cls = get_backend_class(target) if isinstance(target, str) else target
        if not issubclass(cls, Backend):
            pytest.fail(f"{cls!r} is not a mmeperf.backends.base.Backend subclass")
        return cls

    @pytest.fixture
    def conformance_backend(self) -> Backend:
        return get_backend(self._backend_class().name)

    # Class-scoped: the model is built and saved once per subclass, however slow the framework.
    @pytest.fixture(scope="class")
    @classmethod
    def conformance_model(cls) -> Any:
        return cls().make_model()

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_saved(
        cls, conformance_model: Any, tmp_path_factory: pytest.TempPathFactory
    ) -> tuple[Path, Path]:
        """(artifact folder, main artifact file), saved once per class; copy before changing it."""
        backend = get_backend(cls()._backend_class().name)
        directory = tmp_path_factory.mktemp("artifact")
        main = backend.save(conformance_model, directory)
        return directory, Path(main)

    @pytest.fixture
    def conformance_runner(
        self, conformance_backend: Backend, conformance_saved: tuple[Path, Path]
    ) -> Iterator[Runner]:
        runner = conformance_backend.load(conformance_saved[0])
        yield runner
        runner.close()

    def _copy(self, saved: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
        directory, main = saved
        copy = tmp_path / "artifact-copy"
        shutil.copytree(directory, copy)
        return copy, copy / main.relative_to(directory)

    def _assert_matches(self, actual: Array, expected: Array, what: str) -> None:
        actual, expected = np.asarray(actual), np.asarray(expected)
        if self.rtol == 0 and self.atol == 0:
            np.testing.assert_array_equal(actual, expected, err_msg=what)
        else:
            np.testing.assert_allclose(actual, expected, rtol=self.rtol, atol=self.atol, err_msg=what)

    # --- the contract --------------------------------------------------------------------------

    def test_registered_through_entry_point(self) -> None:
        cls = self._backend_class()
        found = metadata.entry_points(group=BACKENDS).select(name=cls.name)
        assert found, (
            f"No {BACKENDS!r} entry point named {cls.name!r}. Add to your pyproject.toml:\n"
            f'[project.entry-points."{BACKENDS}"]\n{cls.name} = "{cls.__module__}:{cls.__qualname__}"'
        )
        assert next(iter(found)).load() is cls
        assert get_backend_class(cls.name) is cls
        assert isinstance(get_backend(cls.name), cls)

    def test_declares_its_surface(self) -> None:
        cls = self._backend_class()
        assert isinstance(cls.name, str) and cls.name
        assert cls.content_types, "a backend decodes at least one content type"
        assert cls.accept_types, "a backend encodes at least one accept type"
        assert cls.artifact_patterns, "artifact_patterns let repositories without a manifest be served"
        cls.check_dependencies()

    def test_save_writes_inside_the_folder(self, conformance_saved: tuple[Path, Path]) -> None:
        directory, main = conformance_saved
        assert main.is_file() and main.stat().st_size > 0
        assert main.resolve().is_relative_to(directory.resolve())

    def test_save_rejects_foreign_objects(self, conformance_backend: Backend, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError):
            conformance_backend.save(object(), tmp_path)

    def test_claims_its_own_artifact(self, conformance_saved: tuple[Path, Path], tmp_path: Path) -> None:
        cls = self._backend_class()
        assert cls.claims(conformance_saved[0])
        assert not cls.claims(tmp_path)

    def test_load_predicts_what_the_framework_predicts(
        self, conformance_model: Any, conformance_runner: Runner
    ) -> None:
        batch = self.make_batch()
        expected = self.native_predict(conformance_model, batch)
        self._assert_matches(conformance_runner.predict(batch), expected, "runner vs native predict")

    def test_runner_reports_memory_and_features(self, conformance_runner: Runner) -> None:
        assert isinstance(conformance_runner.memory_bytes, int)
        assert conformance_runner.memory_bytes >= 0
        batch = self.make_batch()
        n_features = conformance_runner.n_features
        if n_features is not None and not isinstance(batch, dict):
            assert n_features == np.asarray(batch).shape[-1]

    def test_decode_round_trips_each_content_type(
        self, conformance_backend: Backend, conformance_runner: Runner
    ) -> None:
        batch = self.make_batch()
        for content_type in conformance_backend.content_types:
            body = self.request_body(batch, content_type)
            decoded = conformance_backend.decode(body, content_type, conformance_runner)
            assert not isinstance(decoded, dict)
            expected = np.asarray(batch).astype(decoded.dtype)
            np.testing.assert_array_equal(decoded, expected, err_msg=f"decode({content_type})")
            # Parameters on the header are tolerated.
            with_params = conformance_backend.decode(body, f"{content_type}; charset=utf-8", conformance_runner)
            np.testing.assert_array_equal(with_params, decoded, err_msg=f"{content_type}; charset")

    def test_wire_round_trip_each_accept_type(
        self, conformance_backend: Backend, conformance_model: Any, conformance_runner: Runner
    ) -> None:
        batch = self.make_batch()
        expected = np.asarray(self.native_predict(conformance_model, batch))
        body = self.request_body(batch, conformance_backend.content_types[0])
        decoded = conformance_backend.decode(body, conformance_backend.content_types[0], conformance_runner)
        predictions = conformance_runner.predict(decoded)
        for accept in conformance_backend.accept_types:
            encoded = conformance_backend.encode(predictions, accept)
            assert codecs.media_type(encoded.content_type) == codecs.media_type(accept)
            try:
                answer = codecs.decode_predictions(encoded.body, encoded.content_type)
            except UnsupportedContentTypeError:
                continue  # a type of the plugin's own; its author tests the parsing
            # CSV flattens one-row multi-output answers; compare values in order.
            self._assert_matches(
                answer.ravel(), expected.astype(answer.dtype).ravel(), f"answer as {accept}"
            )

    def test_default_accept_is_the_first_accept_type(
        self, conformance_backend: Backend, conformance_runner: Runner
    ) -> None:
        predictions = conformance_runner.predict(self.make_batch())
        first = codecs.media_type(conformance_backend.accept_types[0])
        for accept in (None, "", "*/*"):
            assert codecs.media_type(conformance_backend.encode(predictions, accept).content_type) == first

    def test_malformed_payloads_raise_payload_error(
        self, conformance_backend: Backend, conformance_runner: Runner
    ) -> None:
        cases = self.malformed_payloads(conformance_runner.n_features)
        assert cases, "no malformed payloads to check; override malformed_payloads()"
        _pickle_canary_calls.clear()
        for content_type, body in cases:
            with pytest.raises(PayloadError) as info:
                conformance_backend.decode(body, content_type, conformance_runner)
            assert 400 <= info.value.http_status < 500, (content_type, body[:40])
            assert str(info.value), "errors say what was expected and what was received"
        assert not _pickle_canary_calls, "decode() unpickled an object array from a request body"

    def test_unknown_content_type_is_415(
        self, conformance_backend: Backend, conformance_runner: Runner
    ) -> None:
        with pytest.raises(UnsupportedContentTypeError) as info:
            conformance_backend.decode(b"1,2,3", _UNKNOWN_TYPE, conformance_runner)
        assert info.value.http_status == 415
        assert _UNKNOWN_TYPE in str(info.value)

    def test_unknown_accept_is_406(self, conformance_backend: Backend, conformance_runner: Runner) -> None:
        predictions = conformance_runner.predict(self.make_batch())
        with pytest.raises(UnsupportedAcceptError) as info:
            conformance_backend.encode(predictions, _UNKNOWN_TYPE)
        assert info.value.http_status == 406

    def test_missing_artifact_raises_model_load_error(
        self, conformance_backend: Backend, tmp_path: Path
    ) -> None:
        with pytest.raises(ModelLoadError):
            conformance_backend.load(tmp_path)  # an empty folder
        with pytest.raises(ModelLoadError):
            conformance_backend.load(tmp_path / "does-not-exist")

    def test_corrupt_artifact_raises_model_load_error(
        self, conformance_backend: Backend, conformance_saved: tuple[Path, Path], tmp_path: Path
    ) -> None:
        directory, main = self._copy(conformance_saved, tmp_path)
        main.write_bytes(np.random.default_rng(0).bytes(256))
        with pytest.raises(ModelLoadError) as info:
            conformance_backend.load(directory)
        assert main.name in str(info.value), "the error names the file it could not load"

    def test_pickle_is_refused_without_opt_in(
        self, conformance_backend: Backend, conformance_saved: tuple[Path, Path], tmp_path: Path
    ) -> None:
        directory, main = self._copy(conformance_saved, tmp_path)
        main.write_bytes(pickle.dumps(_Canary(), protocol=pickle.HIGHEST_PROTOCOL))
        _pickle_canary_calls.clear()
        with pytest.raises(ModelLoadError):
            conformance_backend.load(directory)
        assert not _pickle_canary_calls, "load() unpickled an artifact without allow_pickle=True"


def _npy(array: Array, *, allow_pickle: bool = False) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _object_npy() -> bytes:
    """An .npy holding a pickled object array: decoding must refuse it, never unpickle it."""
    return _npy(np.array([_Canary()], dtype=object), allow_pickle=True)
