"""Export a run to where people run models: GGUF (llama.cpp, Ollama, LM Studio), an Ollama Modelfile, vLLM.

run_export owns the export of a run (plan, files, manifest, commands); gguf_model and gguf_adapter write GGUF
with the `gguf` package; ollama writes and reads Modelfiles; servability holds vLLM's and llama.cpp's rules.
"""
