#!/usr/bin/env python3
# Golden SAE fixtures: small sparse autoencoders saved by EleutherAI sparsify and SAELens, and repeng 0.4.0's ControlVector.train_with_sae on SmolLM2-135M-Instruct.
"""Writes the SAE fixtures used by the steering tests (SAE-based control-vector training).

Run by hand with the reference environment described in scripts/reference/README.md
(the packages of requirements.txt, including eai-sparsify and sae-lens):

    /work/venv-ref/bin/python scripts/reference/make_sae_fixtures.py \
        [--models .cache/models] [--out Tests/RepengSteeringTests/Fixtures/sae] [--bench | --bench-only]

Reads Tests/RepengSteeringTests/Fixtures/repeng/dataset.json (128 pairs). Outputs:

  eleuther/config.json                      sparsify's TrainConfig.save_json (informative; not an SAE)
  eleuther/layers.{9,19,28}/cfg.json        sparsify SparseCoder.save_to_disk: float32, bfloat16, float32
  eleuther/layers.{9,19,28}/sae.safetensors
  saelens/blocks.{9,14,19,24}.hook_resid_post/cfg.json               SAELens SAE.save_model
  saelens/blocks.{9,14,19,24}.hook_resid_post/sae_weights.safetensors
  eleuther_pca_center.json          train_with_sae, project pairing N <-> layers.N, decoded
  eleuther_pca_diff.json            the same with method pca_diff
  eleuther_repeng_pairing.json      repeng's own saes.from_eleuther, layers 10/20/29 <-> layers.9/19/28
  eleuther_features_pca_center.json decode=False: directions in feature space (256) + top 10 features
  saelens_pca_center.json           train_with_sae, N <-> blocks.N.hook_resid_post, SAELens' own encode
  encode_check.json                 one hidden-state row per SAE layer and what every SAE makes of it

LAYER CONVENTIONS
* This project: layer N = output of block N (0-based) = transformers hidden_states[N + 1].
  repeng's read_representations reads its layer N from hidden_states[N + 1] as well; for
  N = L-1 (29 here) transformers 5 returns the state AFTER the final RMSNorm.
* sparsify folder `layers.N`: the trainer hooks model.base_model.get_submodule("layers.N")
  (the LlamaDecoderLayer) with a forward hook and takes outputs[0] when the output is a
  tuple: the output of block N (= hidden_states[N + 1] for N < L-1; for N = L-1 the raw,
  pre-final-norm block output, which is NOT hidden_states[L]). Hence no fixture SAE at 29.
* SAELens `blocks.N.hook_resid_post` (TransformerLens): residual stream after block N, also
  before ln_final for the last block. Same as sparsify `layers.N`.
* repeng 0.4.0 `saes.from_eleuther(repo, layers=...)` loads `layers.{N-1}` for repeng layer
  N (its docstring: "repeng counts embed_tokens as layer 0"), so repeng layer 10 (block 10's
  output) is encoded with the SAE trained on block 9's output: off by one. The project's
  default pairing is N <-> layers.N; eleuther_repeng_pairing.json reproduces repeng's.

SPARSIFY (eai-sparsify 1.3.3, `import sparsify`; read from sparsify/sparse_coder.py,
fused_encoder.py, config.py)
* SparseCoder.save_to_disk(path): safetensors.torch.save_model(self, path/"sae.safetensors")
  and path/"cfg.json" = json.dump({**cfg.to_dict(), "d_in": d_in}) (one line, no indent):
    {"activation": "topk", "expansion_factor": 32, "normalize_decoder": true,
     "num_latents": 256, "k": 32, "multi_topk": false, "skip_connection": false,
     "transcode": false, "d_in": 576}
  num_latents 0 means d_in * expansion_factor. activation is "topk" or "groupmax".
  Tensors (all in the SAE's one dtype; no safetensors metadata): encoder.weight
  [num_latents, d_in], encoder.bias [num_latents], W_dec [num_latents, d_in], b_dec
  [d_in]; W_skip [d_in, d_in] only when skip_connection (kept false here). load_from_disk
  builds the SAE in the dtype of the file's first tensor.
* Encoding (SparseCoder.encode -> fused_encoder):
      x' = x - b_dec                      (only if not transcode; always here)
      pre_acts = relu(x' @ encoder.weight^T + encoder.bias)        [num_latents]
      topk:     top_acts, top_indices = torch.topk(pre_acts, k, sorted=False)  (top-k of the
                ReLU'd values: with fewer than k positive latents some picks are 0, indices arbitrary)
      groupmax: pre_acts viewed as [k, num_latents / k], max of each group
  SparseCoder.decode(top_acts, top_indices) = sum_i top_acts[i] * W_dec[top_indices[i]] + b_dec.
  sparsify 1.3.3 has NO `pre_acts` method any more (the old EleutherAI `sae` package had
  `pre_acts(x) = relu(encoder(x.to(dtype) - b_dec))`, the same formula); it lives on as
  the `pre_acts` field of encode()'s EncoderOutput. There is no `sae` module either.
* repeng's from_eleuther does `import sae as eleuther_sae`, snapshot_download(repo_id),
  cfg = eleuther_sae.SaeConfig(**cfg_json minus "d_in" and "signed"),
  eleuther_sae.Sae(d_in, cfg, device, dtype) and safetensors.torch.load_model(strict=True).
  Its adapter: encode(h) = sae.pre_acts(h) (dense ReLU pre-activations, NO top-k and NO
  b_dec on the way back), decode(f) = f @ W_dec (NO b_dec). The smallest shim that makes it
  run on a local sparsify folder (used here): sys.modules["sae"] = a module whose SaeConfig
  is sparsify.SaeConfig and whose Sae subclasses sparsify.Sae with
  pre_acts(x) = self.encode(x).pre_acts; huggingface_hub.snapshot_download patched to
  return the local folder. sparsify's cfg.json keys are all SaeConfig fields, so repeng's
  config parsing works unchanged. dtype=torch.float32: bfloat16 files are upcast on load.

SAELENS (sae-lens 6.54.12; read from sae_lens/saes/{sae,standard_sae,jumprelu_sae,
topk_sae,gated_sae}.py, loading/pretrained_sae_loaders.py, constants.py)
* SAE.save_model(path): path/"sae_weights.safetensors" = save_file(state_dict) and
  path/"cfg.json" = json.dump(cfg.to_dict()) (one line). cfg.json, SAELens >= 6:
    top level: "d_in", "d_sae", "dtype" ("float32" | "float16" | "bfloat16" | "float64"),
      "device", "apply_b_dec_to_input" (bool), "normalize_activations" ("none" |
      "expected_average_only_in" | "constant_norm_rescale" | "layer_norm" |
      "covariance_whitening"), "reshape_activations" ("none" | "hook_z"), "architecture"
      ("standard" | "jumprelu" | "topk" | "gated" | ...), and for topk also "k" and
      "rescale_acts_by_decoder_norm" (bool).
    "metadata" object: "sae_lens_version", "sae_lens_training_version", "model_name",
      "hook_name" (e.g. "blocks.9.hook_resid_post"), "hook_head_index" and whatever else
      the trainer recorded (prepend_bos, context_size, ...). hook_name and model_name are
      NOT top-level keys in >= 6.
  A config is "pre-6.0" when neither cfg["sae_lens_version"] nor
  cfg["metadata"]["sae_lens_version"] exists or it is < 6.0.0-rc.0; handle_pre_6_0_config
  then renames hook_point -> hook_name, hook_point_head_index -> hook_head_index,
  activation_fn_str -> activation_fn, defaults apply_b_dec_to_input = true, architecture =
  "standard", activation_fn "topk" with activation_fn_kwargs.k -> architecture "topk",
  k = that k; normalize_activations true/false -> "expected_average_only_in"/"none", null
  -> "none"; model_name/hook_name/... move into metadata. Unknown keys are ignored.
* Weights (shapes; all in cfg.dtype): W_enc [d_in, d_sae] (note: transposed relative to
  sparsify's encoder.weight), W_dec [d_sae, d_in], b_dec [d_in], and
    standard, topk: b_enc [d_sae]
    jumprelu:       b_enc [d_sae], threshold [d_sae]  (the raw threshold, NOT log_threshold;
                    the inference JumpReLUSAE refuses a file with log_threshold, only
                    JumpReLUTrainingSAE.process_state_dict_for_loading converts it with
                    threshold = exp(log_threshold))
    gated:          b_gate [d_sae], r_mag [d_sae], b_mag [d_sae]  (no b_enc)
  SAE.load_from_disk(path, dtype="float32") casts every tensor to float32 on load.
* Input processing, process_sae_in(x), in this order:
      x = x.to(dtype)
      x = norm_in(x)                          (see normalize_activations below)
      sae_in = x - b_dec * apply_b_dec_to_input   (b_dec multiplied by 1.0 or 0.0)
* normalize_activations as applied by SAE.encode/decode at inference:
    "none":                  norm_in(x) = x, norm_out(y) = y
    "constant_norm_rescale": c = sqrt(d_in) / ||x||_2 (per row, no epsilon);
                             norm_in(x) = x * c; norm_out(y) = y / c (c of the last encode)
    "layer_norm":            mu = mean(x), xc = x - mu, s = std(xc) with Bessel's
                             correction (torch.std default, divides by d_in - 1),
                             norm_in(x) = xc / (s + 1e-5); norm_out(y) = y * s + mu
    "expected_average_only_in", "covariance_whitening": identity in encode/decode. They are
                             training-time scalings that the trainer folds into the weights
                             at the end of training (and then writes "none"); only
                             SAE.from_pretrained folds a directory-listed factor for
                             "expected_average_only_in" (W_enc *= f, W_dec /= f, b_dec /= f).
  The fixture uses "constant_norm_rescale" on blocks.24 (gated).
* Encode formulas (encode(x) returns dense [d_sae] features; hp = pre-activation):
    standard: hp = sae_in @ W_enc + b_enc;  f = relu(hp)
    jumprelu: hp = sae_in @ W_enc + b_enc;  f = relu(hp) * (hp > threshold)   (strict >)
    topk:     hp = sae_in @ W_enc + b_enc;  if rescale_acts_by_decoder_norm:
              hp = hp * ||W_dec[j, :]||_2 (per latent j); idx = torch.topk(hp, k) (the k
              largest hp, not by |hp|, sorted=False); f = zeros, f[idx] = relu(hp[idx])
              (so a selected negative hp gives 0)
    gated:    active = (sae_in @ W_enc + b_gate > 0)  (strict >, as 0/1)
              mag = relu(sae_in @ (W_enc * exp(r_mag)) + b_mag)   (column j of W_enc
              scaled by exp(r_mag[j]))
              f = active * mag
  Decode (for reference): y = f @ W_dec + b_dec (topk with rescale_acts_by_decoder_norm:
  f / ||W_dec[j]|| first), then norm_out(y). The repeng adapter here decodes
  f @ W_dec only: no b_dec, no norm_out, like repeng's Eleuther adapter.
* SAELens' own sparsify converter (sparsify_disk_loader) cannot load sparsify 1.3.3's
  output: it transposes W_dec to [d_in, d_sae] (size mismatch on load) and sets
  apply_b_dec_to_input = not normalize_decoder (false here) although sparsify always
  subtracts b_dec. Do not copy that converter.

REPENG (0.4.0) train_with_sae: batched_get_hiddens (last real token, right padding, batch
32) -> for each layer features = sae.layers[N].encode(h) (float32 numpy, [256, d_sae]) ->
the same PCA/sign-vote code as ControlVector.train, in feature space (PCA forced to
svd_solver="full" here, as in make_repeng_fixtures.py; the feature-space direction is
unit length) -> if decode: direction = sae.layers[N].decode(feature_direction), NOT
renormalised, so decoded vectors are not unit length (each file lists the L2 norms).
method defaults to pca_center for train_with_sae. The sign vote compares the projections of
each pair's positive and negative FEATURE rows on the feature direction.

THE FIXTURE SAES (torch.manual_seed(1000 + N) for sparsify, 2000 + N for SAELens; 256
latents; random, not trained; scales derived from this dataset's hidden states h_N)
* sparsify layers.N: SparseCoder(576, SaeConfig(activation="topk", k=32, num_latents=256))
  in float32 (encoder = nn.Linear's default init, W_dec = its copy with unit rows), then
  W_dec += 0.5 * std(W_dec) * randn, rows renormalised with the library's
  set_decoder_norm_to_unit_norm; b_dec = 0.25 * rms(h_N) * randn; encoder.bias = 0.5 *
  std(pre-activations without bias) * randn. Cast to the target dtype, then save_to_disk.
* SAELens: W_enc = W_dec^T + 0.5 * std(W_dec) * randn (the library inits W_enc = W_dec^T);
  b_dec = 0.25 * rms(SAE input) * randn; b_enc/b_gate/b_mag = 0.5 * std(hp) * randn;
  r_mag = 0.2 * randn; jumprelu threshold_j = max(quantile(hp[:, j] over the 256 rows,
  q_j), 0.05 * std(hp) * (1 + u_j)) with q_j ~ U(0.3, 0.9), u_j ~ U(0, 1): always > 0, then
  moved to the middle of the gap between the two dataset values of hp[:, j] around it; b_gate_j
  likewise shifted so that 0 lies mid-gap of latent j's gate pre-activations. So no threshold or
  gate decision on this dataset sits near its boundary (encode_check.json lists the margins);
  top-k selections are not adjusted.
    blocks.9  standard  float32  apply_b_dec_to_input true   normalize none
    blocks.14 jumprelu  float32  apply_b_dec_to_input FALSE  normalize none
    blocks.19 topk k=32 float16  apply_b_dec_to_input true   normalize none
    blocks.24 gated     float32  apply_b_dec_to_input true   normalize constant_norm_rescale
  All computation uses float32 (bfloat16/float16 weights upcast exactly).

The hidden states are extracted once with repeng's own batched_get_hiddens (all layers the
five trainings need) and reused by the five train_with_sae calls; the forward pass is
deterministic, so this only saves time. --bench does not reuse them: it times repeng's
train_with_sae split into hidden-state extraction, SAE encoding, PCA (incl. scikit-learn's
own centring) and decoding, in a child process per configuration so that ru_maxrss is that
configuration's peak.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from transformers import AutoModelForCausalLM, AutoTokenizer

import huggingface_hub
import repeng
import repeng.extract
import repeng.saes
from repeng import ControlVector, DatasetEntry
from sklearn.decomposition import PCA as SklearnPCA

import sparsify
from sparsify import SaeConfig as SparsifySaeConfig, TrainConfig as SparsifyTrainConfig
import sae_lens
from sae_lens import SAE, GatedSAE, GatedSAEConfig, JumpReLUSAE, JumpReLUSAEConfig, \
    StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HF_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
THREADS = 2
BATCH_SIZE = 32
LATENTS = 256
TOPK = 32
D_IN = 576

# sparsify folder layers.N -> dtype
ELEUTHER = {9: torch.float32, 19: torch.bfloat16, 28: torch.float32}
# repeng's from_eleuther pairing: repeng layer N reads folder layers.{N-1}
REPENG_PAIRING_LAYERS = [10, 20, 29]
# (block, architecture, saved dtype, apply_b_dec_to_input, normalize_activations)
SAELENS = [
    (9, "standard", torch.float32, True, "none"),
    (14, "jumprelu", torch.float32, False, "none"),
    (19, "topk", torch.float16, True, "none"),
    (24, "gated", torch.float32, True, "constant_norm_rescale"),
]
ALL_LAYERS = sorted(set(ELEUTHER) | set(REPENG_PAIRING_LAYERS) | {n for n, *_ in SAELENS})
BENCH_LATENTS = 16384


def hook_name(n: int) -> str:
    return f"blocks.{n}.hook_resid_post"


def f32(values) -> list[float]:
    """Shortest decimal that round-trips each float32 value (at most 9 significant digits)."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32).ravel()]


def versions() -> dict:
    out = {}
    for name in ["repeng", "transformers", "torch", "eai-sparsify", "sae-lens", "scikit-learn",
                 "numpy", "safetensors", "huggingface_hub"]:
        out[name] = importlib.metadata.version(name)
    return out


# ---------------------------------------------------------------------------------------
# instrumentation: timers, full-SVD PCA, memoised hidden states


TIMES: dict[str, float] = defaultdict(float)
PCA_LOG: list[dict] = []
DIAGNOSTICS = True  # second singular value per PCA (fixture mode only)


class _TimedFullPCA:
    """What repeng.extract.PCA(n_components=1, whiten=False) is replaced with."""

    def __init__(self, *args, **kwargs):
        kwargs["svd_solver"] = "full"
        self.pca = SklearnPCA(*args, **kwargs)

    def fit(self, x):
        t0 = time.perf_counter()
        fitted = self.pca.fit(x)
        TIMES["pca"] += time.perf_counter() - t0
        entry = {"singular_value_1": float(fitted.singular_values_[0]),
                 "explained_variance_ratio_1": float(fitted.explained_variance_ratio_[0])}
        if DIAGNOSTICS:
            s = np.linalg.svd(np.asarray(x, dtype=np.float64) - np.asarray(x, dtype=np.float64).mean(0),
                              compute_uv=False)
            entry["singular_value_2"] = float(s[1])
            entry["gap_s1_over_s2"] = float(s[0] / s[1])
        PCA_LOG.append(entry)
        return fitted


def install_instrumentation(cache: dict | None) -> None:
    repeng.extract.PCA = _TimedFullPCA
    original = install_instrumentation.original

    def timed_hiddens(model, tokenizer, inputs, hidden_layers, batch_size):
        t0 = time.perf_counter()
        if cache is None:
            out = original(model, tokenizer, inputs, hidden_layers, batch_size)
        else:
            key = (tuple(inputs), batch_size)
            if key not in cache:
                cache[key] = original(model, tokenizer, inputs, ALL_LAYERS, batch_size)
            out = {k: cache[key][k].copy() for k in hidden_layers}
        TIMES["hidden"] += time.perf_counter() - t0
        return out

    repeng.extract.batched_get_hiddens = timed_hiddens


install_instrumentation.original = repeng.extract.batched_get_hiddens


class TimedLayer:
    """Wraps an SaeLayer: times encode/decode and keeps what it saw (fixture mode)."""

    def __init__(self, inner, keep: bool = True):
        self.inner = inner
        self.keep = keep
        self.encoded = None
        self.decode_input = None

    def encode(self, activation: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.encode(activation)
        TIMES["encode"] += time.perf_counter() - t0
        if self.keep:
            self.encoded = out.copy()
        return out

    def decode(self, features: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.decode(features)
        TIMES["decode"] += time.perf_counter() - t0
        if self.keep:
            self.decode_input = features.copy()
        return out


class SaeLensLayer:
    """repeng SaeLayer over a SAELens SAE: SAELens' own encode, decode = f @ W_dec (no bias)."""

    def __init__(self, sae: SAE):
        self.sae = sae

    def encode(self, activation: np.ndarray) -> np.ndarray:
        return self.sae.encode(torch.from_numpy(activation)).float().numpy()

    def decode(self, features: np.ndarray) -> np.ndarray:
        return (torch.from_numpy(features).float() @ self.sae.W_dec.float()).numpy()


# ---------------------------------------------------------------------------------------
# repeng's from_eleuther on a local sparsify folder


class ShimSae(sparsify.Sae):
    """sparsify 1.3.3's SparseCoder plus the `pre_acts` method repeng calls (old `sae` API)."""

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x).pre_acts


def install_sae_shim(local_root: Path) -> None:
    shim = types.ModuleType("sae")
    shim.Sae = ShimSae
    shim.SaeConfig = sparsify.SaeConfig
    shim.__doc__ = "shim: repeng 0.4.0 imports EleutherAI's old `sae` package; this maps it to sparsify"
    sys.modules["sae"] = shim

    def local_snapshot(repo_id, revision=None, **kwargs):
        return str(local_root)

    huggingface_hub.snapshot_download = local_snapshot


def load_repeng_eleuther(eleuther_dir: Path) -> repeng.saes.Sae:
    install_sae_shim(eleuther_dir)
    return repeng.saes.from_eleuther("local/fixture", dtype=torch.float32, layers=REPENG_PAIRING_LAYERS)


def project_pairing(repeng_sae: repeng.saes.Sae) -> repeng.saes.Sae:
    """N <-> layers.N, with instances of repeng's own EleutherSaeLayer class."""
    layer_cls = type(next(iter(repeng_sae.layers.values())))
    layers = {}
    for n in ELEUTHER:
        src = repeng_sae.layers[n + 1]
        assert src.eleuther_layer == n
        layers[n] = layer_cls(repeng_layer=n, eleuther_layer=n, sae=src.sae)
    return repeng.saes.Sae(layers=layers)


# ---------------------------------------------------------------------------------------
# making the SAEs


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def midpoints(values: torch.Tensor, cut: torch.Tensor) -> torch.Tensor:
    """Per column j: the shift that moves cut[j] to the middle of the two values[:, j] around it
    (0 where all values lie on one side), so that no row sits near a decision boundary."""
    shift = torch.zeros_like(cut)
    for j in range(values.shape[1]):
        v = torch.sort(values[:, j]).values
        below, above = v[v <= cut[j]], v[v > cut[j]]
        if len(below) and len(above):
            shift[j] = (below[-1] + above[0]) / 2 - cut[j]
    return shift


@torch.no_grad()
def make_eleuther(out_dir: Path, hiddens: dict[int, np.ndarray], latents: int) -> dict:
    info = {}
    cfg = SparsifySaeConfig(activation="topk", k=TOPK, num_latents=latents)
    for n, dtype in ELEUTHER.items():
        torch.manual_seed(1000 + n)
        sae = sparsify.Sae(D_IN, cfg, device="cpu", dtype=torch.float32)
        h = torch.from_numpy(hiddens[n])
        sae.W_dec.add_(0.5 * sae.W_dec.std() * torch.randn_like(sae.W_dec))
        sae.set_decoder_norm_to_unit_norm()
        sae.b_dec.copy_(0.25 * rms(hiddens[n]) * torch.randn(D_IN))
        pre = (h - sae.b_dec) @ sae.encoder.weight.T
        sae.encoder.bias.copy_(0.5 * pre.std() * torch.randn(latents))
        sae = sae.to(dtype)
        path = out_dir / f"layers.{n}"
        sae.save_to_disk(path)
        back = sparsify.Sae.load_from_disk(path)
        assert back.dtype == dtype and torch.equal(back.W_dec, sae.W_dec)
        info[n] = {"folder": f"layers.{n}", "dtype": str(dtype).removeprefix("torch.")}
    # What sparsify's trainer writes next to the layer folders (a TrainConfig; not an SAE).
    tcfg = SparsifyTrainConfig(sae=cfg, layers=sorted(ELEUTHER), log_to_wandb=False,
                               run_name="smollm2-135m-instruct-fixture")
    tcfg.hookpoints = [f"layers.{n}" for n in sorted(ELEUTHER)]
    tcfg.save_json(str(out_dir / "config.json"))
    return info


@torch.no_grad()
def make_saelens(out_dir: Path, hiddens: dict[int, np.ndarray], latents: int) -> dict:
    info = {}
    classes = {"standard": (StandardSAE, StandardSAEConfig), "jumprelu": (JumpReLUSAE, JumpReLUSAEConfig),
               "topk": (TopKSAE, TopKSAEConfig), "gated": (GatedSAE, GatedSAEConfig)}
    for n, arch, dtype, apply_b_dec, norm in SAELENS:
        torch.manual_seed(2000 + n)
        sae_cls, cfg_cls = classes[arch]
        extra = {"k": TOPK} if arch == "topk" else {}
        metadata = SAEMetadata(model_name=HF_MODEL_NAME, hook_name=hook_name(n), hook_head_index=None,
                               prepend_bos=False, context_size=128)
        cfg = cfg_cls(d_in=D_IN, d_sae=latents, dtype="float32", device="cpu",
                      apply_b_dec_to_input=apply_b_dec, normalize_activations=norm,
                      metadata=metadata, **extra)
        sae = sae_cls(cfg)
        sae.W_enc.copy_(sae.W_dec.T + 0.5 * sae.W_dec.std() * torch.randn(D_IN, latents))
        x = torch.from_numpy(hiddens[n])
        if norm == "constant_norm_rescale":
            x = x * (D_IN ** 0.5) / x.norm(dim=-1, keepdim=True)
        else:
            assert norm == "none"
        sae.b_dec.copy_(0.25 * rms(x.numpy()) * torch.randn(D_IN))
        sae_in = x - sae.b_dec * apply_b_dec
        pre = sae_in @ sae.W_enc
        if arch == "gated":
            sae.b_gate.copy_(0.5 * pre.std() * torch.randn(latents))
            sae.r_mag.copy_(0.2 * torch.randn(latents))
            pre_mag = sae_in @ (sae.W_enc * sae.r_mag.exp())
            sae.b_mag.copy_(0.5 * pre_mag.std() * torch.randn(latents))
            # keep every gate decision on this dataset well away from 0
            sae.b_gate.sub_(midpoints(pre + sae.b_gate, torch.zeros(latents)))
        else:
            sae.b_enc.copy_(0.5 * pre.std() * torch.randn(latents))
        if arch == "jumprelu":
            hp = sae_in @ sae.W_enc + sae.b_enc
            q = 0.3 + 0.6 * torch.rand(latents)
            u = torch.rand(latents)
            quant = torch.stack([torch.quantile(hp[:, j], q[j]) for j in range(latents)])
            thr = torch.maximum(quant, 0.05 * hp.std() * (1 + u))
            # move each threshold to the middle of the gap between the dataset's values around it
            sae.threshold.copy_(thr + midpoints(hp, thr))
        sae = sae.to(dtype)
        path = out_dir / hook_name(n)
        sae.save_model(path)
        back = SAE.load_from_disk(path)
        assert type(back) is sae_cls and back.W_dec.dtype == dtype and torch.equal(back.W_dec, sae.W_dec)
        info[n] = {"folder": hook_name(n), "architecture": arch, "dtype": str(dtype).removeprefix("torch."),
                   "apply_b_dec_to_input": apply_b_dec, "normalize_activations": norm}
        if arch == "topk":
            info[n]["k"] = TOPK
    return info


def load_saelens(saelens_dir: Path) -> dict[int, SAE]:
    return {n: SAE.load_from_disk(saelens_dir / hook_name(n), dtype="float32").eval()
            for n, *_ in SAELENS}


# ---------------------------------------------------------------------------------------
# reference re-implementations (float64 numpy) of the formulas in the docstring


def _load_f32(file: Path) -> dict[str, np.ndarray]:
    from safetensors.torch import load_file
    return {k: v.float().numpy() for k, v in load_file(str(file)).items()}


def np_sparsify_pre_acts(path: Path, x: np.ndarray, *, use_b_dec: bool = True, use_bias: bool = True) -> np.ndarray:
    t = {k: v.astype(np.float64) for k, v in _load_f32(path / "sae.safetensors").items()}
    x = x.astype(np.float64) - (t["b_dec"] if use_b_dec else 0.0)
    return np.maximum(x @ t["encoder.weight"].T + (t["encoder.bias"] if use_bias else 0.0), 0.0)


def np_saelens_parts(path: Path, x: np.ndarray, *, apply_b_dec: bool | None = None,
                     normalize: str | None = None, use_threshold: bool = True) -> dict[str, np.ndarray]:
    """float64 re-implementation of SAELens' encode; keyword overrides only for the sensitivity check."""
    cfg = json.loads((path / "cfg.json").read_text())
    t = {k: v.astype(np.float64) for k, v in _load_f32(path / "sae_weights.safetensors").items()}
    x = x.astype(np.float64)
    norm = cfg["normalize_activations"] if normalize is None else normalize
    if norm == "constant_norm_rescale":
        x = x * np.sqrt(cfg["d_in"]) / np.linalg.norm(x, axis=-1, keepdims=True)
    elif norm == "layer_norm":
        xc = x - x.mean(-1, keepdims=True)
        x = xc / (xc.std(-1, ddof=1, keepdims=True) + 1e-5)
    apply = cfg["apply_b_dec_to_input"] if apply_b_dec is None else apply_b_dec
    sae_in = x - t["b_dec"] * float(apply)
    arch = cfg["architecture"]
    out = {"sae_in": sae_in}
    if arch == "gated":
        out["gate_pre"] = sae_in @ t["W_enc"] + t["b_gate"]
        out["hp"] = sae_in @ (t["W_enc"] * np.exp(t["r_mag"])) + t["b_mag"]
        out["features"] = (out["gate_pre"] > 0) * np.maximum(out["hp"], 0.0)
        return out
    hp = out["hp"] = sae_in @ t["W_enc"] + t["b_enc"]
    if arch == "standard":
        out["features"] = np.maximum(hp, 0.0)
    elif arch == "jumprelu":
        out["threshold"] = t["threshold"]
        out["features"] = np.maximum(hp, 0.0) * ((hp > t["threshold"]) if use_threshold else 1.0)
    elif arch == "topk":
        if cfg.get("rescale_acts_by_decoder_norm"):
            hp = out["hp"] = hp * np.linalg.norm(t["W_dec"], axis=-1)
        f = np.zeros_like(hp)
        idx = np.argsort(-hp, axis=-1, kind="stable")[..., :cfg["k"]]
        np.put_along_axis(f, idx, np.maximum(np.take_along_axis(hp, idx, -1), 0.0), -1)
        out["features"] = f
    else:
        raise ValueError(arch)
    return out


def rel_change(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |a|: how much a plausible implementation mistake would move the features."""
    return float(np.abs(a - b).max() / max(float(np.abs(a).max()), 1e-30))


def compare(lib: np.ndarray, ref: np.ndarray) -> dict:
    lib = np.asarray(lib, dtype=np.float64)
    scale = max(float(np.abs(ref).max()), 1e-30)
    return {"max_abs_diff": float(np.abs(lib - ref).max()),
            "max_abs_diff_over_max_abs": float(np.abs(lib - ref).max() / scale),
            "active_set_mismatches": int(np.sum((lib > 0) != (ref > 0)))}


# ---------------------------------------------------------------------------------------
# training and writing


def load_dataset(path: Path) -> list[DatasetEntry]:
    return [DatasetEntry(positive=e["positive"], negative=e["negative"]) for e in json.loads(path.read_text())]


def votes(features: np.ndarray, direction: np.ndarray) -> list[int]:
    """[pairs with positive > negative, pairs with positive < negative] on the feature direction."""
    proj = features @ direction / np.linalg.norm(direction)
    return [int(np.sum(proj[0::2] > proj[1::2])), int(np.sum(proj[0::2] < proj[1::2]))]


def train(model, tokenizer, sae: repeng.saes.Sae, dataset, layers, method: str, decode: bool = True):
    wrapped = repeng.saes.Sae(layers={k: TimedLayer(v) for k, v in sae.layers.items()})
    PCA_LOG.clear()
    t0 = time.perf_counter()
    vector = ControlVector.train_with_sae(model, tokenizer, wrapped, dataset, decode=decode, method=method,
                                          batch_size=BATCH_SIZE, hidden_layers=layers)
    seconds = time.perf_counter() - t0
    # read_representations iterates hidden_layers in the given order, so PCA_LOG follows it
    pca = {str(n): PCA_LOG[i] for i, n in enumerate(layers)}
    extra = {"pca": pca, "sign_votes": {}, "feature_direction_norms": {}}
    for n in layers:
        layer = wrapped.layers[n]
        fdir = layer.decode_input if decode else vector.directions[n]
        extra["sign_votes"][str(n)] = votes(layer.encoded, fdir)
        extra["feature_direction_norms"][str(n)] = float(np.linalg.norm(fdir))
        if decode:
            extra.setdefault("feature_directions_top10", {})[str(n)] = top_features(fdir)
    return vector, seconds, extra


def top_features(direction: np.ndarray, count: int = 10) -> list[list]:
    order = np.argsort(-np.abs(direction), kind="stable")[:count]
    return [[int(i), f32([direction[i]])[0]] for i in order]


def directions_json(vector: ControlVector, method: str, seconds: float, meta: dict, extra: dict) -> dict:
    keys = sorted(int(k) for k in vector.directions)
    return {
        "method": method,
        "model_type": vector.model_type,
        "training_seconds": round(seconds, 3),
        **meta,
        **extra,
        "layers": keys,
        "norms": {str(k): float(np.linalg.norm(vector.directions[k].astype(np.float64))) for k in keys},
        "directions": {str(k): f32(vector.directions[k]) for k in keys},
    }


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False) + "\n")


def cosine(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def load_model(models: str):
    tokenizer = AutoTokenizer.from_pretrained(models, gguf_file=MODEL_FILE)
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=MODEL_FILE, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def make_fixtures(args, model, tokenizer, dataset) -> None:
    out = Path(args.out)
    eleuther_dir, saelens_dir = out / "eleuther", out / "saelens"
    eleuther_dir.mkdir(parents=True, exist_ok=True)
    saelens_dir.mkdir(parents=True, exist_ok=True)

    cache: dict = {}
    install_instrumentation(cache)
    strings = [s for e in dataset for s in (e.positive, e.negative)]
    lengths = [len(tokenizer(s).input_ids) for s in strings]
    t0 = time.perf_counter()
    hiddens = repeng.extract.batched_get_hiddens(model, tokenizer, strings, ALL_LAYERS, BATCH_SIZE)
    print(f"hidden states for blocks {ALL_LAYERS}: {time.perf_counter() - t0:.1f} s")

    eleuther_info = make_eleuther(eleuther_dir, hiddens, args.latents)
    saelens_info = make_saelens(saelens_dir, hiddens, args.latents)

    meta = {
        "model_file": MODEL_FILE,
        "batch_size": BATCH_SIZE,
        "torch_threads": THREADS,
        "svd_solver": "full",
        "pairs": len(dataset),
        "dataset": "../repeng/dataset.json",
        "dataset_tokens": sum(lengths),
        "sae_compute_dtype": "float32",
        "latents": args.latents,
        "versions": versions(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
    }

    repeng_sae = load_repeng_eleuther(eleuther_dir)
    project_sae = project_pairing(repeng_sae)
    e_layers = sorted(ELEUTHER)
    eleuther_common = {
        "sae_library": "eai-sparsify",
        "sae_root": "eleuther",
        "sae_encode": "repeng EleutherSaeLayer.encode: sae.pre_acts(h) = relu((h - b_dec) @ encoder.weight^T + encoder.bias), dense, no top-k",
        "sae_decode": "repeng EleutherSaeLayer.decode: f @ W_dec (no b_dec), not renormalised",
        "sae_dtypes": {f"layers.{n}": eleuther_info[n]["dtype"] for n in e_layers},
    }
    results = {}
    for method, fname in [("pca_center", "eleuther_pca_center.json"), ("pca_diff", "eleuther_pca_diff.json")]:
        vec, secs, extra = train(model, tokenizer, project_sae, dataset, e_layers, method)
        results[fname] = directions_json(vec, method, secs, meta, {
            **eleuther_common, "pairing": "project: layer N (hidden_states[N+1]) <-> layers.N",
            "sae_folders": {str(n): f"layers.{n}" for n in e_layers}, "decoded": True, **extra})
        print(f"{fname}: {secs:.1f} s, norms {results[fname]['norms']}, votes {extra['sign_votes']}")

    vec, secs, extra = train(model, tokenizer, repeng_sae, dataset, REPENG_PAIRING_LAYERS, "pca_center")
    results["eleuther_repeng_pairing.json"] = directions_json(vec, "pca_center", secs, meta, {
        **eleuther_common,
        "pairing": "repeng 0.4.0 saes.from_eleuther: repeng layer N (hidden_states[N+1]) <-> layers.{N-1}",
        "loader": "repeng.saes.from_eleuther('local/fixture', dtype=torch.float32, layers=[10, 20, 29]) with "
                  "sys.modules['sae'] = shim (SaeConfig = sparsify.SaeConfig; Sae = sparsify.Sae + "
                  "pre_acts(x) = encode(x).pre_acts) and huggingface_hub.snapshot_download -> local folder",
        "sae_folders": {str(n): f"layers.{n - 1}" for n in REPENG_PAIRING_LAYERS}, "decoded": True, **extra})
    print(f"eleuther_repeng_pairing.json: {secs:.1f} s, votes {extra['sign_votes']}")

    vec, secs, extra = train(model, tokenizer, project_sae, dataset, e_layers, "pca_center", decode=False)
    extra["top_features"] = {str(n): top_features(vec.directions[n]) for n in e_layers}
    results["eleuther_features_pca_center.json"] = directions_json(vec, "pca_center", secs, meta, {
        **eleuther_common, "pairing": "project: layer N (hidden_states[N+1]) <-> layers.N",
        "sae_folders": {str(n): f"layers.{n}" for n in e_layers}, "decoded": False,
        "note": "decode=False: directions are repeng's unit-length PCA directions in feature space "
                f"({args.latents} latents); top_features lists [index, weight] by |weight|", **extra})
    print(f"eleuther_features_pca_center.json: {secs:.1f} s, top {extra['top_features'][str(e_layers[0])][:3]}")

    sl = load_saelens(saelens_dir)
    s_layers = [n for n, *_ in SAELENS]
    sl_sae = repeng.saes.Sae(layers={n: SaeLensLayer(sl[n]) for n in s_layers})
    vec, secs, extra = train(model, tokenizer, sl_sae, dataset, s_layers, "pca_center")
    results["saelens_pca_center.json"] = directions_json(vec, "pca_center", secs, meta, {
        "sae_library": "sae-lens", "sae_root": "saelens",
        "pairing": "project: layer N (hidden_states[N+1]) <-> blocks.N.hook_resid_post",
        "sae_folders": {str(n): hook_name(n) for n in s_layers},
        "sae_encode": "SAELens SAE.encode(h) (SAE.load_from_disk(folder, dtype='float32')): the architecture's own "
                      "activation, normalize_activations and apply_b_dec_to_input",
        "sae_decode": "f @ W_dec (no b_dec, no output de-normalisation), not renormalised",
        "saes": {hook_name(n): saelens_info[n] for n in s_layers}, "decoded": True, **extra})
    print(f"saelens_pca_center.json: {secs:.1f} s, norms {results['saelens_pca_center.json']['norms']}, "
          f"votes {extra['sign_votes']}")

    a = results["eleuther_pca_center.json"]["directions"]
    b = results["eleuther_repeng_pairing.json"]["directions"]
    pair_cos = {f"{n}_vs_{n + 1}": cosine(a[str(n)], b[str(n + 1)]) for n in e_layers}
    results["eleuther_repeng_pairing.json"]["cosine_with_project_pairing"] = pair_cos
    print(f"cosine project N vs repeng N+1 (same SAE layers.N): {pair_cos}")

    for fname, obj in results.items():
        write_json(out / fname, obj)

    # encode_check.json: row 0 = dataset[0].positive, last token
    row = {n: hiddens[n][0:1].copy() for n in ALL_LAYERS}
    check = {
        "text": dataset[0].positive,
        "row": "last real token of dataset[0].positive, from repeng's batched_get_hiddens (batch of 32, right padding)",
        "layer_convention": "hidden_states[N + 1] = output of block N",
        "compute_dtype": "float32 (bfloat16/float16 SAE weights upcast)",
        "versions": meta["versions"],
        "hidden_states": {str(n): f32(row[n][0]) for n in sorted(set(ELEUTHER) | set(s_layers))},
        "eleuther": {}, "saelens": {},
    }
    feature_dirs = results["eleuther_features_pca_center.json"]["directions"]
    for n in e_layers:
        sae = repeng_sae.layers[n + 1].sae
        folder = eleuther_dir / f"layers.{n}"
        with torch.no_grad():
            enc = sae.encode(torch.from_numpy(row[n]))
            all_pre = sae.encode(torch.from_numpy(hiddens[n])).pre_acts.numpy().astype(np.float64)
            fdir = torch.tensor(feature_dirs[str(n)])
            dec_w = (fdir @ sae.W_dec).numpy()
            dec_e = (fdir @ sae.encoder.weight).numpy()
        pre = enc.pre_acts[0].numpy()
        order = torch.argsort(enc.top_acts[0], descending=True, stable=True)
        srt = -np.sort(-all_pre, axis=1)
        check["eleuther"][f"layers.{n}"] = {
            "layer": n, "stored_dtype": eleuther_info[n]["dtype"], "k": TOPK,
            "pre_acts": f32(pre), "nonzero": int(np.sum(pre > 0)),
            "topk_indices": [int(i) for i in enc.top_indices[0][order]],
            "topk_values": f32(enc.top_acts[0][order].numpy()),
            "formula_check": compare(pre, np_sparsify_pre_acts(folder, row[n])[0]),
            "dataset_mean_nonzero_per_row": float(np.mean(np.sum(all_pre > 0, axis=1))),
            "dataset_max_pre_act": float(all_pre.max()),
            "topk_margin_min_over_dataset": float(np.min(srt[:, TOPK - 1] - srt[:, TOPK])),
            "sensitivity": {
                "pre_acts_if_b_dec_not_subtracted": rel_change(all_pre, np_sparsify_pre_acts(folder, hiddens[n], use_b_dec=False)),
                "pre_acts_if_encoder_bias_ignored": rel_change(all_pre, np_sparsify_pre_acts(folder, hiddens[n], use_bias=False)),
                "cosine_decoded_W_dec_vs_encoder_weight": cosine(dec_w, dec_e),
            },
        }
    for n, arch, *_ in SAELENS:
        sae = sl[n]
        folder = saelens_dir / hook_name(n)
        with torch.no_grad():
            feats = sae.encode(torch.from_numpy(row[n]))[0].numpy()
            all_feats = sae.encode(torch.from_numpy(hiddens[n])).numpy()
        parts = np_saelens_parts(folder, hiddens[n])
        ref_all = parts["features"]
        entry = {"layer": n, **saelens_info[n], "features": f32(feats), "nonzero": int(np.sum(feats > 0)),
                 "formula_check": compare(feats, ref_all[0]),
                 "formula_check_dataset": compare(all_feats, ref_all),
                 "dataset_mean_nonzero_per_row": float(np.mean(np.sum(all_feats > 0, axis=1))),
                 "dataset_max_feature": float(all_feats.max())}
        sens = {}
        cfg_apply = saelens_info[n]["apply_b_dec_to_input"]
        sens["features_if_apply_b_dec_to_input_flipped"] = rel_change(
            ref_all, np_saelens_parts(folder, hiddens[n], apply_b_dec=not cfg_apply)["features"])
        hp = parts["hp"]
        if arch == "jumprelu":
            thr = parts["threshold"]
            entry["dataset_mean_relu_positive_per_row"] = float(np.mean(np.sum(hp > 0, axis=1)))
            entry["threshold_margin_min_over_dataset"] = float(np.min(np.abs(hp - thr)))
            sens["features_if_threshold_ignored"] = rel_change(
                ref_all, np_saelens_parts(folder, hiddens[n], use_threshold=False)["features"])
        if arch == "topk":
            srt = -np.sort(-hp, axis=1)
            entry["topk_margin_min_over_dataset"] = float(np.min(srt[:, TOPK - 1] - srt[:, TOPK]))
        if arch == "gated":
            entry["gate_margin_min_over_dataset"] = float(np.min(np.abs(parts["gate_pre"])))
            entry["dataset_mean_gate_open_per_row"] = float(np.mean(np.sum(parts["gate_pre"] > 0, axis=1)))
            entry["dataset_mean_magnitude_positive_per_row"] = float(np.mean(np.sum(hp > 0, axis=1)))
        if saelens_info[n]["normalize_activations"] != "none":
            sens["features_if_normalize_activations_ignored"] = rel_change(
                ref_all, np_saelens_parts(folder, hiddens[n], normalize="none")["features"])
            entry["input_norm_row0"] = float(np.linalg.norm(row[n].astype(np.float64)))
        entry["sensitivity"] = sens
        check["saelens"][hook_name(n)] = entry
    write_json(out / "encode_check.json", check)
    for name, e in {**check["eleuther"], **check["saelens"]}.items():
        print(f"encode {name}: nonzero {e['nonzero']}, mean nonzero/row {e['dataset_mean_nonzero_per_row']:.1f}, "
              f"check {e['formula_check']}, sensitivity {e['sensitivity']}")

    files = sorted(p for p in out.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    for p in files:
        print(f"  {p.relative_to(out)}  {p.stat().st_size}")
    print(f"wrote {out} ({total} bytes); peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


# ---------------------------------------------------------------------------------------
# benchmark


def bench_child(args, which: str, threads: int) -> None:
    global DIAGNOSTICS
    DIAGNOSTICS = False
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        model, tokenizer = load_model(args.models)
        dataset = load_dataset(Path(args.dataset))
        install_instrumentation(None)
        repeng_sae = load_repeng_eleuther(Path(args.out) / "eleuther")
        sae = project_pairing(repeng_sae)
        if which == "synthetic":
            layer_cls = type(next(iter(sae.layers.values())))
            cfg = SparsifySaeConfig(activation="topk", k=TOPK, num_latents=BENCH_LATENTS)
            layers = {}
            for n in ELEUTHER:
                torch.manual_seed(3000 + n)
                s = ShimSae(D_IN, cfg, device="cpu", dtype=torch.float32)
                with torch.no_grad():
                    s.encoder.bias.normal_(0.0, 0.1)
                    s.b_dec.normal_(0.0, 0.1)
                layers[n] = layer_cls(repeng_layer=n, eleuther_layer=n, sae=s)
            sae = repeng.saes.Sae(layers=layers)
        latents = next(iter(sae.layers.values())).sae.num_latents
        wrapped = repeng.saes.Sae(layers={k: TimedLayer(v, keep=False) for k, v in sae.layers.items()})
        TIMES.clear()
        t0 = time.perf_counter()
        vector = ControlVector.train_with_sae(model, tokenizer, wrapped, dataset, method="pca_center",
                                              batch_size=BATCH_SIZE, hidden_layers=sorted(ELEUTHER))
        total = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    diff = None
    fixture = Path(args.out) / "eleuther_pca_center.json"
    if which == "fixture" and fixture.exists():
        ref = json.loads(fixture.read_text())["directions"]
        diff = max(float(np.abs(vector.directions[n] - np.float32(ref[str(n)])).max()) for n in ELEUTHER)
    print(json.dumps({"sae": which, "latents": latents, "threads": threads, "total": total,
                      "rss_mb": rss_mb, "max_abs_diff_vs_fixture": diff, **TIMES}))


def bench(args) -> None:
    rows = []
    for threads in (1, 2):
        for which in ("fixture", "synthetic"):
            cmd = [sys.executable, __file__, "--models", args.models, "--out", args.out,
                   "--dataset", args.dataset, "--bench-child", which, "--bench-threads", str(threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"repeng {importlib.metadata.version('repeng')} train_with_sae, pca_center, layers "
          f"{sorted(ELEUTHER)}, {BATCH_SIZE}-string batches, 256 strings, Eleuther SAEs (float32 compute); "
          f"wall seconds; peak RSS = ru_maxrss of a fresh process (model load included)")
    head = (f"{'SAE':<10}{'latents':>8}{'threads':>8}{'hidden':>9}{'encode':>9}{'pca':>9}{'decode':>9}{'other':>9}"
            f"{'total':>9}{'peak RSS MB':>13}{'max|d| vs fixture':>19}")
    print(head)
    print("-" * len(head))
    for r in rows:
        other = r["total"] - r.get("hidden", 0) - r.get("encode", 0) - r.get("pca", 0) - r.get("decode", 0)
        print(f"{r['sae']:<10}{r['latents']:>8}{r['threads']:>8}{r.get('hidden', 0):>9.2f}{r.get('encode', 0):>9.3f}"
              f"{r.get('pca', 0):>9.3f}{r.get('decode', 0):>9.4f}{other:>9.3f}{r['total']:>9.2f}{r['rss_mb']:>13.0f}"
              f"{'-' if r['max_abs_diff_vs_fixture'] is None else format(r['max_abs_diff_vs_fixture'], '.2g'):>19}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}; "
          f"torch.set_num_threads and threadpoolctl limits = threads")


def main() -> int:
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(root / ".cache/models"))
    ap.add_argument("--out", default=str(root / "Tests/RepengSteeringTests/Fixtures/sae"))
    ap.add_argument("--dataset", default=str(root / "Tests/RepengSteeringTests/Fixtures/repeng/dataset.json"))
    ap.add_argument("--latents", type=int, default=LATENTS, help="latents per fixture SAE (default 256)")
    ap.add_argument("--bench", action="store_true", help="also print train_with_sae timings")
    ap.add_argument("--bench-only", action="store_true", help="print timings (needs the fixture SAEs), write nothing")
    ap.add_argument("--bench-child", choices=["fixture", "synthetic"], help=argparse.SUPPRESS)
    ap.add_argument("--bench-threads", type=int, default=THREADS, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.bench_child:
        bench_child(args, args.bench_child, args.bench_threads)
        return 0

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    if not args.bench_only:
        with threadpool_limits(THREADS):
            model, tokenizer = load_model(args.models)
            cfg = model.config
            print(f"model: {cfg.model_type}, {cfg.num_hidden_layers} blocks, hidden {cfg.hidden_size}")
            assert cfg.hidden_size == D_IN
            make_fixtures(args, model, tokenizer, load_dataset(Path(args.dataset)))
        del model
    if args.bench or args.bench_only:
        bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
