"""Bytes per element of each precision the analyzer reports memory in."""

BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
