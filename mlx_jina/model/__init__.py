"""The encoder model: the Qwen3 decoder (`qwen3`), its task LoRA adapters (`lora`), and reading
checkpoints from a folder or the hub (`hub`, `load`)."""
