"""Yardsticks for tests and benchmarks; nothing at run time imports this package.

* `plain`: `PerSampleLM`, the straightforward per-sample path (every sample carries its own prompt and
  audio through the model) that the fast path is checked and timed against.
* `shapes`: the released Granite Speech 3.3 2B/8B configurations (`tests/fixtures`) and a tokenizer of
  their vocabulary size, for shape tests and the GPU check.
"""
