"""Use a trained system on any audio: files, folders, path lists or arrays (issue 13).

``Predictor.from_run(run, system="S5")`` (or ``Predictor.from_bundle(dir)``, a folder ``serlib export``
wrote) rebuilds the run's encoder as its configuration says (pretrained from the local cache or a
folder, or the demo's seeded random weights) and the trained classifier, and ``.predict(items)``
scores audio into a DataFrame; ``serlib predict`` is a thin shell over it.

How a clip is scored:

- Audio goes through the project's one loader (any rate, any channel count -> 16 kHz mono).
- A clip that fits the run's window (``features.frames``: 400 frames = 8 s on the paper profile) is
  scored exactly as in training: encoded alone (the cache's batches are exact to one-clip-alone),
  rounded to float16 as the feature cache stores it, zero-padded at the end to the window, with its
  true frame count given to the model. The run's own test clips thus get their saved predictions
  back, to float rounding.
- A longer clip is cut from the audio into windows of the run's length, ``hop_s`` apart (default:
  half a window), the last window ending at the clip's end; each window is scored as above and the
  clip's probabilities are the mean over its windows (``per_window=True`` gives each window's row,
  with its start and end time). ``long="centre"`` instead scores the clip's central window of the
  whole clip's features, which is what training did with a long clip.
- A file that cannot be read, or is shorter than one frame (25 ms), is a row with its ``error``;
  the others are scored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

import serlib
from serlib.common.audio import load_audio, resample
from serlib.common.config import ConfigError, FeaturesConfig, config_from_dict, features_from_dict, primary_system
from serlib.common.facts import CLASSES
from serlib.common.io import RunFileError, read_json, write_text_atomic
from serlib.common.runfolder import RunFolder, read_run_config
from serlib.common.runtime import cpu_threads, resolve_device
from serlib.data.protocols import MAIN_PROTOCOL, evaluation_protocols
from serlib.features.encoders import build_encoder, encoder_description, fit_frames
from serlib.features.extract import encode_waves, plan_batches
from serlib.inference.audiofiles import check_hop, gather_audio, printable
from serlib.inference.bundleformat import BUNDLE_FILE, BUNDLE_FORMAT, BundleError, bundle_path, encoder_fields
from serlib.modelling.train import classifier_from_state, predict_proba, read_checkpoint

PROB_COLUMNS = [f"prob_{c}" for c in CLASSES]
CHUNK_FILES = 64  # files decoded, encoded and scored together (bounds memory on large folders)

Item = Union[str, Path, np.ndarray]


class _Unscorable(Exception):
    """An input ``gather_audio`` found but cannot score (its reason is the row's error as it stands)."""


# --------------------------------------------------------------------------- the predictor


@dataclass
class Predictor:
    """A trained classifier with the encoder of its run.

    Attributes:
        model: the classifier (eval mode, on ``device``).
        features: the run's ``features`` section (encoder, window, sample rate).
        input: "wav2vec2" or "logmel".
        frames: the window in frames (the run's ``features.frames``).
        model_id: ``<run>:<system>:seed<N>:<run key>``, written in every output row.
        system, seed: what was loaded.
        device: where encoder and classifier run.
        source: the run folder or bundle it came from.
        metadata: what the output's metadata records (encoder banner, weights, serlib version, ...).
        layers: the encoder layers the checkpoint was trained on (several: a learned layer sum).
    """

    model: nn.Module
    features: FeaturesConfig
    input: str
    frames: int
    model_id: str
    system: str
    seed: int
    device: torch.device
    source: str
    metadata: dict = field(default_factory=dict)
    layers: Optional[list] = None  # the encoder layers the model reads ("last" or indices; None: the configured one)
    in_channels: Optional[int] = None  # the feature channels the classifier was trained on (checked on the encoder)
    _encoder: Optional[nn.Module] = field(default=None, repr=False)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_run(
        cls,
        run: Union[str, Path],
        system: Optional[str] = None,
        seed: Optional[int] = None,
        device: Optional[str] = None,
        protocol: Optional[str] = None,
    ) -> "Predictor":
        """The system of a run folder (``reports/demo``, or a folder ``serlib train`` wrote), as it was trained.

        Args:
            run: the run folder (it holds ``config.resolved.yaml`` or a trained ``models/``).
            system: default: the analysed system (``analysis.primary_system``).
            seed: default: the analysed seed (the first of ``train.seeds``).
            device: cpu | cuda | auto (default: the run's ``features.device``).
            protocol: whose model (default: the split's, or the first fold's).

        Raises:
            FileNotFoundError: not a run folder, or the system / seed was never trained there.
            RunFileError: a damaged run file, or a checkpoint and a ``config.json`` from two trainings.
        """
        folder = RunFolder(Path(run).expanduser().resolve())
        if not folder.root.is_dir():
            raise FileNotFoundError(
                f"{folder.root} is not a run folder (no such folder); pass the folder "
                "`serlib run` or `serlib train` wrote"
            )
        cfg = read_run_config(folder)
        default_system, default_seed = primary_system(cfg)
        system = system or default_system
        seed = default_seed if seed is None else seed
        protocol = protocol or evaluation_protocols(cfg)[0]
        checkpoint = folder.checkpoint(system, seed, protocol)
        if not checkpoint.is_file():
            trained = sorted(p.parent.parent.name for p in folder.models.glob("*/seed*/checkpoint.pt"))
            raise FileNotFoundError(
                f"{checkpoint}: {system} seed {seed} was not trained in {folder.root} "
                f"(trained: {', '.join(sorted(set(trained))) or 'none'}); pass --system / --seed"
            )
        retrain = f"train it again (serlib train PARAMS --system {system})"
        config_path = folder.run_config(system, seed, protocol)
        if not config_path.is_file():
            raise RunFileError(
                f"{config_path}: missing beside {checkpoint.name} (training stopped before it finished?); {retrain}"
            )
        run_config = read_json(config_path, retrain)
        if (
            not isinstance(run_config, dict)
            or not isinstance(run_config.get("run_config"), dict)
            or not isinstance(run_config.get("key"), str)
        ):
            raise RunFileError(f"{config_path}: damaged: no 'key' and 'run_config'; {retrain}")
        trained_cfg = config_from_dict(run_config["run_config"], config_path)
        state = read_checkpoint(checkpoint, retrain)
        if state["key"] != run_config["key"]:
            raise RunFileError(
                f"{checkpoint} (run key {state['key']}) and {config_path.name} (run key "
                f"{run_config['key']}) come from two trainings (one stopped between them?); {retrain}"
            )
        name = cfg.run.name + ("" if protocol == MAIN_PROTOCOL else f"/{protocol}")
        return cls._make(
            checkpoint,
            trained_cfg.features,
            state,
            f"{name}:{system}:seed{seed}:{run_config['key'][:12]}",
            system,
            seed,
            device,
            f"run {folder.root}",
            {"run_title": cfg.run.title},
        )

    @classmethod
    def from_bundle(cls, bundle: Union[str, Path], device: Optional[str] = None) -> "Predictor":
        """A folder ``serlib export`` wrote, without its run folder. Loading reads data only (JSON and a
        checkpoint loaded as tensors and plain values: ``read_checkpoint``), never code.

        Raises:
            BundleError: not a bundle, one of another format version, a ``bundle.json`` that names files
                outside the folder or that disagrees with the checkpoint (the message says what to do).
        """
        root = Path(bundle).expanduser().resolve()
        meta_path = root / BUNDLE_FILE
        if not meta_path.is_file():
            raise BundleError(
                f"{root} is not a serlib model bundle (no {BUNDLE_FILE}); make one with "
                f"`serlib export RUN --system S5 --out DIR`"
            )
        try:
            meta = read_json(meta_path, "export the bundle again from its run (serlib export)")
        except RunFileError as err:
            raise BundleError(str(err)) from None
        if not isinstance(meta, dict):
            raise BundleError(f"{meta_path}: damaged: not a JSON object; export the bundle again from its run")
        version = meta.get("format_version")
        if version != BUNDLE_FORMAT:
            raise BundleError(
                f"{meta_path}: bundle format {version}, but this serlib ({serlib.__version__}) reads format "
                f"{BUNDLE_FORMAT}; export the bundle again from its run with this serlib (`serlib export`), or "
                f"install the serlib that wrote it ({meta.get('serlib_version', 'unknown')})"
            )
        missing = [k for k in ("checkpoint", "features", "model_id", "system", "seed") if k not in meta]
        if missing:
            raise BundleError(f"{meta_path}: damaged: no {', '.join(missing)}; export the bundle again from its run")
        if meta.get("serlib_version") != serlib.__version__:
            warnings.warn(
                f"{meta_path}: written by serlib {meta.get('serlib_version')}, loaded by "
                f"{serlib.__version__} (same bundle format {BUNDLE_FORMAT})",
                stacklevel=2,
            )
        checkpoint = bundle_path(root, meta["checkpoint"], "checkpoint")
        if not checkpoint.is_file():
            raise BundleError(f"{checkpoint}: the bundle's checkpoint is missing; copy the whole folder")
        state = read_checkpoint(checkpoint, "export the bundle again from its run (serlib export)")
        try:
            features = features_from_dict(meta["features"], meta_path)
        except ConfigError as err:
            raise BundleError(f"{err}; export the bundle again from its run") from None
        trained = state.get("features")
        if not isinstance(trained, dict):
            raise BundleError(
                f"{checkpoint}: records no features it was trained on (not exported by `serlib export`); "
                "export the bundle again from its run"
            )
        differ = {
            k: (v, encoder_fields(trained)[k])
            for k, v in encoder_fields(dataclasses.asdict(features)).items()
            if v != encoder_fields(trained)[k]
        }
        if differ:
            said = "; ".join(
                f"features.{k} is {a!r} where the checkpoint was trained with {b!r}" for k, (a, b) in differ.items()
            )
            raise BundleError(
                f"{meta_path}: {said}: the weights would read other features than they learned; "
                "export the bundle again from its run (or undo the edit)"
            )
        return cls._make(
            checkpoint,
            features,
            state,
            str(meta["model_id"]),
            str(meta["system"]),
            meta["seed"],
            device,
            f"bundle {root}",
            {"run_title": meta.get("run_title", "")},
        )

    @classmethod
    def _make(
        cls,
        checkpoint: Path,
        features: FeaturesConfig,
        state: dict,
        model_id: str,
        system: str,
        seed: int,
        device: Optional[str],
        source: str,
        extra: dict,
    ) -> "Predictor":
        target = resolve_device(device or features.device, "--device")
        model = classifier_from_state(state, target, checkpoint)
        input = state["input"]
        layers = state.get("layers") if input != "logmel" else None  # the encoder layers it was trained on
        described = (
            features
            if not layers or len(layers) > 1
            else dataclasses.replace(features, wav2vec2=dataclasses.replace(features.wav2vec2, layer=layers[0]))
        )
        metadata = {
            "model_id": model_id,
            "system": system,
            "seed": seed,
            "source": source,
            "encoder": encoder_description(described, "logmel" if input == "logmel" else "wav2vec2")
            + (f"; a learned sum of layers {', '.join(map(str, layers))}" if layers and len(layers) > 1 else ""),
            "window_frames": state["frames"],
            "weights": features.wav2vec2.weights if input != "logmel" else "n/a (log-Mel)",
            "serlib_version": serlib.__version__,
            "device": str(target),
            **extra,
        }
        return cls(
            model=model,
            features=features,
            input=input,
            frames=int(state["frames"]),
            model_id=model_id,
            system=system,
            seed=seed,
            device=target,
            source=source,
            metadata=metadata,
            layers=layers,
            in_channels=int(state["in_channels"]),
        )

    # ------------------------------------------------------------------ the encoder and its window

    @property
    def encoder(self) -> nn.Module:
        """The run's frozen encoder (built on first use: a wav2vec2 takes seconds)."""
        if self._encoder is None:
            encoder = build_encoder(
                self.features, "logmel" if self.input == "logmel" else "wav2vec2", self.device, self.layers
            )
            if self.in_channels is not None and encoder.channels != self.in_channels:
                raise BundleError(
                    f"{self.source}: its encoder ({encoder_description(self.features, self.input)}) gives "
                    f"{encoder.channels} channels, but the classifier was trained on {self.in_channels}: "
                    "the encoder is not the one it learned from (features.wav2vec2.model_id?)"
                )
            self._encoder = encoder
        return self._encoder

    @property
    def weights(self) -> str:
        """The encoder's weights as every output row states them: pretrained, random, or n/a (log-Mel)."""
        return str(self.metadata["weights"])

    @property
    def stride(self) -> int:
        """Samples between frames (320 at 16 kHz for both encoders)."""
        enc = self.encoder
        return enc.hop if self.input == "logmel" else math.prod(enc.strides)

    @property
    def window_samples(self) -> int:
        """Samples of one window: the fewest that give ``frames`` frames."""
        return self.encoder.min_samples + (self.frames - 1) * self.stride

    # ------------------------------------------------------------------ scoring

    def predict(
        self,
        items: Union[Item, Sequence[Item]],
        sample_rate: Optional[int] = None,
        per_window: bool = False,
        hop_s: Optional[float] = None,
        long: str = "windows",
        batch_size: int = 16,
        progress: Optional[bool] = None,
    ) -> pd.DataFrame:
        """Score audio files, folders, path lists or arrays.

        Args:
            items: a path, an array, or a sequence of them. Folders and ``.txt`` lists are expanded
                (``gather_audio``). Arrays are ``(samples,)`` or ``(samples, channels)`` at ``sample_rate``.
            sample_rate: the arrays' rate (required with arrays; files carry their own).
            per_window: one row per window (``window``, ``start_s``, ``end_s``) instead of one per file.
            hop_s: seconds between window starts for clips longer than the window (default: half a window).
            long: "windows" (the mean over windows) or "centre" (the central window, as in training).
            batch_size: windows per forward pass.
            progress: a progress bar (default: more than 5 files).

        Returns:
            One row per file (or window): path, duration_s, windows, pred, prob_negative, prob_sad_fear,
            prob_pos_neutral, model_id, weights (the encoder's: pretrained, random, or n/a for log-Mel), error
            (empty when scored). ``DataFrame.attrs["metadata"]`` holds the encoder banner and the model's identity.
        """
        if long not in ("windows", "centre"):
            raise ValueError(f"long must be 'windows' or 'centre', got {long!r}")
        entries = self._entries(items, sample_rate)
        hop = self._hop(hop_s)
        show = progress if progress is not None else len(entries) > 5
        rows: list[dict] = []
        with tqdm(
            total=len(entries), unit="file", desc=f"predict {self.system}", disable=not show, mininterval=1.0
        ) as bar:
            for start in range(0, len(entries), CHUNK_FILES):
                chunk = entries[start : start + CHUNK_FILES]
                rows.extend(self._score_chunk(chunk, per_window, hop, long, batch_size))
                bar.update(len(chunk))
        table = pd.DataFrame(rows, columns=self.columns(per_window))
        table.attrs["metadata"] = dict(self.metadata)
        return table

    @staticmethod
    def columns(per_window: bool = False) -> list[str]:
        head = ["path", "duration_s"] + (["window", "start_s", "end_s"] if per_window else ["windows"])
        return head + ["pred", *PROB_COLUMNS, "model_id", "weights", "error"]

    def _hop(self, hop_s: Optional[float]) -> int:
        if hop_s is None:
            return max(1, self.window_samples // 2)
        check_hop(hop_s)
        return max(1, round(hop_s * self.features.sample_rate))

    def _entries(self, items, sample_rate) -> list[tuple[str, str, object]]:
        """``(name, kind, payload)`` per file to score: kind "file", "array" (payload: the audio at
        ``sample_rate``) or "error" (payload: why it cannot be scored)."""
        if isinstance(items, (str, Path, np.ndarray)):
            items = [items]
        entries = []
        for i, item in enumerate(items):
            if isinstance(item, np.ndarray):
                if sample_rate is None:
                    raise ValueError("predict: arrays need sample_rate (files carry their own)")
                entries.append((f"<array {i}>", "array", (item, sample_rate)))
            else:
                entries.extend(
                    (path, "error", error) if error else (path, "file", None) for path, error in gather_audio([item])
                )
        return entries

    def _load(self, kind: str, name: str, payload) -> np.ndarray:
        rate = self.features.sample_rate
        if kind == "error":
            raise _Unscorable(payload)
        if kind == "array":
            return mono(payload[0], payload[1], rate)
        return load_audio(name, rate)

    def _score_chunk(self, chunk, per_window: bool, hop: int, long: str, batch_size: int) -> list[dict]:
        rate, window = self.features.sample_rate, self.window_samples
        segments: list[tuple[int, np.ndarray, int, int]] = []  # (file, audio, start, end)
        files: list[dict] = []
        for name, kind, payload in chunk:
            row = {"path": name, "duration_s": np.nan, "model_id": self.model_id, "weights": self.weights, "error": ""}
            files.append(row)
            try:
                with cpu_threads(1):  # decoding and resampling: one thread is fastest (serlib.common.runtime)
                    wave = self._load(kind, name, payload)
                row["duration_s"] = round(len(wave) / rate, 4)
                if len(wave) < self.encoder.min_samples:
                    raise ValueError(
                        f"{len(wave)} samples is shorter than one frame ({self.encoder.min_samples} samples, 25 ms)"
                    )
            except Exception as err:  # one bad file never stops the others
                said = str(err) if isinstance(err, _Unscorable) else f"{type(err).__name__}: {err}"
                row["error"] = printable(" ".join(said.split()))
                continue
            if len(wave) <= window or long == "centre":
                spans = [(0, len(wave))]
            else:
                starts = list(range(0, len(wave) - window + 1, hop))
                if starts[-1] != len(wave) - window:
                    starts.append(len(wave) - window)  # the last window ends at the clip's end
                spans = [(a, a + window) for a in starts]
            segments.extend((len(files) - 1, wave[a:b], a, b) for a, b in spans)
        probs = self._score_segments([s[1] for s in segments], batch_size)
        windows: dict[int, list[dict]] = {}
        for (f, _, a, b), p in zip(segments, probs):
            windows.setdefault(f, []).append({"start_s": round(a / rate, 4), "end_s": round(b / rate, 4), "p": p})
        out = []
        for f, row in enumerate(files):
            found = windows.get(f, [])
            if per_window:
                out.extend(
                    [
                        row | {"window": k, "start_s": w["start_s"], "end_s": w["end_s"]} | self._prob_fields(w["p"])
                        for k, w in enumerate(found)
                    ]
                    or [row | {"window": np.nan, "start_s": np.nan, "end_s": np.nan}]
                )
            else:
                out.append(
                    row
                    | {"windows": len(found)}
                    | (self._prob_fields(np.mean([w["p"] for w in found], axis=0)) if found else {})
                )
        return out

    @staticmethod
    def _prob_fields(p: np.ndarray) -> dict:
        return {"pred": CLASSES[int(np.argmax(p))], **{c: float(v) for c, v in zip(PROB_COLUMNS, p)}}

    def _score_segments(self, waves: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
        """Class probabilities ``(3,)`` of each segment, scored as training scored a cached clip."""
        if not waves:
            return []
        encoder = self.encoder
        out: list[Optional[np.ndarray]] = [None] * len(waves)
        jobs = [(i, "", len(w)) for i, w in enumerate(waves)]  # sorted by length: similar lengths pad little
        for batch in [
            [job[0] for job in b] for b in plan_batches(jobs, batch_size, sys.maxsize, encoder.mixes_lengths)
        ]:
            stacked = bool(self.layers) and len(self.layers) > 1  # a learned layer sum reads every layer
            feats = encode_waves(
                encoder, [waves[i] for i in batch], self.device, self.features.threads, every_layer=stacked
            )  # per clip (channels, frames) or (layers, channels, frames)
            x = torch.zeros((len(batch), *feats[0].shape[:-1], self.frames))
            kept = torch.zeros(len(batch), dtype=torch.long)
            for j, clip in enumerate(feats):
                frames = clip.astype(np.float16)  # the cache stores float16
                for position, layer_frames in enumerate(frames if stacked else [frames]):
                    fitted, kept[j] = fit_frames(torch.from_numpy(layer_frames.astype(np.float32)).T, self.frames)
                    if stacked:
                        x[j, position] = fitted
                    else:
                        x[j] = fitted
            probs = predict_proba(self.model, x.to(self.device), len(batch), kept.to(self.device)).cpu().numpy()
            for i, p in zip(batch, probs):
                out[i] = p
        return out  # type: ignore[return-value]


def sidecar_path(out: Union[str, Path]) -> Path:
    """Where the metadata of a predictions file goes: ``OUT.meta.json`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".meta.json")


def write_predictions(table: pd.DataFrame, out: Union[str, Path]) -> tuple[Path, Path]:
    """``table``'s rows to ``out`` (.csv or .jsonl: the same columns in the same order, rows only) and its
    metadata (``attrs["metadata"]``: the model's identity, the encoder and its weights) to ``OUT.meta.json``.

    Both are written atomically, the metadata first, so a rows file never stands without its sidecar.

    Returns:
        ``(rows file, sidecar)``.
    """
    out = Path(out)
    meta = {
        "metadata": table.attrs.get("metadata", {}),
        "rows_file": out.name,
        "rows": int(len(table)),
        "columns": list(table.columns),
    }
    sidecar = write_text_atomic(sidecar_path(out), json.dumps(meta, indent=1, default=str) + "\n")
    if out.suffix.lower() == ".jsonl":  # no error: null, as CSV's empty field reads back (both NaN in pandas)
        rows = table.assign(error=table["error"].mask(table["error"] == "", None)) if "error" in table else table
        body = rows.to_json(orient="records", lines=True, force_ascii=False, double_precision=15)
    else:
        body = table.to_csv(index=False)
    return write_text_atomic(out, body), sidecar


def mono(array: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """A caller's array (``(samples,)`` or ``(samples, channels)``) as the loader's mono float32 at ``sample_rate``."""
    wave = np.asarray(array, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"expected (samples,) or (samples, channels) audio, got shape {np.shape(array)}")
    if not np.isfinite(wave).all():
        raise ValueError("the audio holds NaN or infinite samples")
    return np.ascontiguousarray(resample(wave, rate, sample_rate), dtype=np.float32)


def summary_line(table: pd.DataFrame) -> str:
    """One line for stderr: files scored and failed, the predicted classes."""
    if "window" in table.columns and len(table):  # per-window rows: count files, each by its mean
        means = table[table["error"] == ""].groupby("path")[PROB_COLUMNS].mean()
        failed = int(table.loc[table["error"] != "", "path"].nunique())
        scored = (
            pd.DataFrame({"pred": [CLASSES[i] for i in means.to_numpy().argmax(1)]})
            if len(means)
            else pd.DataFrame({"pred": []})
        )
        counts = scored["pred"].value_counts()
        classes = ", ".join(f"{c} {int(counts.get(c, 0))}" for c in CLASSES)
        return (
            f"{len(means)} file(s) scored in {int((table['error'] == '').sum())} windows, {failed} failed ({classes})"
        )
    failed = int((table["error"] != "").sum()) if len(table) else 0
    scored = table[table["error"] == ""] if len(table) else table
    counts = scored["pred"].value_counts() if len(scored) else pd.Series(dtype=int)
    classes = ", ".join(f"{c} {int(counts.get(c, 0))}" for c in CLASSES)
    return f"{len(table) - failed} file(s) scored, {failed} failed ({classes})"
