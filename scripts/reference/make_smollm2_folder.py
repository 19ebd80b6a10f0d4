# Writes SmolLM2-135M-Instruct as a Hugging Face folder (config.json, model.safetensors, tokenizer files) from the bundled GGUF, with transformers; run by hand in the reference venv.
import torch, sys, os
from transformers import AutoModelForCausalLM, AutoTokenizer
d = "/work/main/.cache/models"; f = "SmolLM2-135M-Instruct.Q4_1.gguf"; out = d + "/SmolLM2-135M-Instruct-hf"
torch.set_num_threads(1)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
cfg = m.config
for k in ("quantization_config",):
    if hasattr(cfg, k): delattr(cfg, k)
fresh = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
missing = fresh.load_state_dict(m.state_dict(), strict=False)
print("load_state_dict:", missing)
fresh.save_pretrained(out); tok.save_pretrained(out)
print(sorted(os.listdir(out)))
